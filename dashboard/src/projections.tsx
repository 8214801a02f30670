// The eventual side: each projection's lag (and the journal export's) against its budget, now
// and over the last minutes, as the server samples it (src/dashboard/lag-history.ts).
import { useEffect, useState } from 'preact/hooks';
import { getJson } from './api';

interface ProjectionReport {
  readonly name: string;
  readonly position: number;
  readonly lagMs: number;
  readonly lagEvents: number;
  readonly budgetMs: number;
  readonly status: 'ok' | 'lagging' | 'stalled' | 'rebuilding';
}

interface LagView {
  readonly at: string;
  readonly reports: readonly ProjectionReport[];
  readonly history: readonly { readonly at: string; readonly lagMs: Readonly<Record<string, number>> }[];
}

const WIDTH = 240;
const HEIGHT = 40;

/** The lag over the sampled minutes as a line, the budget as a dashed line at its height. */
function LagChart({ name, budgetMs, history }: { name: string; budgetMs: number; history: LagView['history'] }) {
  const points = history.map((s) => ({ t: Date.parse(s.at), lag: s.lagMs[name] ?? 0 }));
  if (points.length < 2) return <span class="muted">collecting…</span>;
  const t0 = points[0]!.t;
  const span = Math.max(1, points[points.length - 1]!.t - t0);
  const top = Math.max(budgetMs * 1.25, ...points.map((p) => p.lag));
  const y = (lag: number): number => HEIGHT - (lag / top) * HEIGHT;
  const line = points.map((p) => `${(((p.t - t0) / span) * WIDTH).toFixed(1)},${y(p.lag).toFixed(1)}`).join(' ');
  return (
    <svg width={WIDTH} height={HEIGHT} class="lag-chart" data-testid="lag-chart" aria-label={`${name} lag over the last ${Math.round(span / 60_000)} min`}>
      <line x1="0" x2={WIDTH} y1={y(budgetMs)} y2={y(budgetMs)} class="lag-budget" />
      <polyline points={line} class="lag-line" />
    </svg>
  );
}

export function Projections() {
  const [view, setView] = useState<LagView | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stopped = false;
    const load = (): void => {
      getJson<LagView>('api/projections').then(
        (v) => {
          if (!stopped) {
            setView(v);
            setError(null);
          }
        },
        (e: Error) => !stopped && setError(e.message),
      );
    };
    load();
    const timer = setInterval(load, 2_000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  if (error) return <p class="muted">projections: {error}</p>;
  if (!view) return <p class="muted">loading…</p>;
  if (view.reports.length === 0) return <p class="muted">no projection has run yet (a node runs them: <code>ppos start --followers</code>)</p>;
  return (
    <table class="grid" data-testid="projections">
      <thead>
        <tr>
          <th>projection</th>
          <th>status</th>
          <th class="num">lag ms</th>
          <th class="num">events behind</th>
          <th class="num">budget ms</th>
          <th class="num">position</th>
          <th>lag, last minutes (dashed: budget)</th>
        </tr>
      </thead>
      <tbody>
        {view.reports.map((r) => (
          <tr key={r.name} data-testid="projection-row" data-projection={r.name} data-status={r.status}>
            <td class="mono">{r.name}</td>
            <td class={r.status === 'ok' ? '' : 'warn'}>{r.status}</td>
            <td class={`num${r.lagMs > r.budgetMs ? ' warn' : ''}`}>{r.lagMs}</td>
            <td class="num">{r.lagEvents}</td>
            <td class="num">{r.budgetMs}</td>
            <td class="num">{r.position}</td>
            <td>
              <LagChart name={r.name} budgetMs={r.budgetMs} history={view.history} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
