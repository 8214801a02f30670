// An actor kind's state chart, drawn from its XState machine definition (states and
// transitions as the server reads them) and laid out by dagre. Transitions that stay in their
// state (context changes only) are listed inside the state's box.
import { graphlib, layout } from '@dagrejs/dagre';
import { useMemo } from 'preact/hooks';
import type { ChartTransition, StateChart as Chart } from './api';

const CHAR_WIDTH = 6.6;
const LINE_HEIGHT = 14;

interface Box {
  readonly title: string;
  readonly path: string;
  readonly key: string;
  readonly internal: readonly string[];
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly initial: boolean;
  readonly final: boolean;
}

interface Arrow {
  readonly id: string;
  readonly title: string;
  readonly points: readonly { x: number; y: number }[];
  readonly label: string;
  readonly labelX: number;
  readonly labelY: number;
  readonly source: string;
  readonly target: string;
}

/** Edges carry the event name; guards go in the tooltip, so the chart stays narrow enough to read. */
const transitionTitle = (t: ChartTransition): string => (t.guard ? `${t.event} [${t.guard}]` : t.event);

function computeLayout(chart: Chart): { boxes: Box[]; arrows: Arrow[]; width: number; height: number } {
  // Only the leaves are drawn as boxes; compound parents are named in their children's paths.
  const parents = new Set(chart.states.map((s) => s.parent).filter((p): p is string => p !== null));
  const leaves = chart.states.filter((s) => !parents.has(s.path));
  const root = chart.states.find((s) => s.parent === null);
  const g = new graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 22, ranksep: 48, edgesep: 10, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  const internal = new Map<string, string[]>();
  for (const t of chart.transitions) {
    if (t.target !== null && t.target !== t.source) continue;
    const names = internal.get(t.source) ?? [];
    if (!names.includes(t.event)) names.push(t.event);
    internal.set(t.source, names);
  }
  const titles = new Map<string, string[]>();
  for (const t of chart.transitions) {
    const key = `${t.source}->${t.target ?? t.source}`;
    titles.set(key, [...(titles.get(key) ?? []), transitionTitle(t)]);
  }
  for (const leaf of leaves) {
    const lines = internal.get(leaf.path) ?? [];
    const width = Math.max(90, leaf.path.length * (CHAR_WIDTH + 1.4) + 24, ...lines.map((l) => l.length * CHAR_WIDTH + 20));
    g.setNode(leaf.path, { width, height: 30 + lines.length * LINE_HEIGHT + (lines.length ? 6 : 0) });
  }
  // One edge per source and target, naming every event that takes it.
  const edges = new Map<string, { source: string; target: string; events: string[] }>();
  for (const t of chart.transitions) {
    if (t.target === null || t.target === t.source || !g.hasNode(t.source) || !g.hasNode(t.target)) continue;
    const key = `${t.source}->${t.target}`;
    const edge = edges.get(key) ?? { source: t.source, target: t.target, events: [] };
    if (!edge.events.includes(t.event)) edge.events.push(t.event);
    edges.set(key, edge);
  }
  for (const [key, edge] of edges) {
    const label = edge.events.join(', ');
    g.setEdge(edge.source, edge.target, { label, width: label.length * CHAR_WIDTH, height: LINE_HEIGHT, labelpos: 'c' }, key);
  }
  layout(g);
  const boxes: Box[] = leaves.map((leaf) => {
    const n = g.node(leaf.path) as { x: number; y: number; width: number; height: number };
    return {
      title: chart.transitions.filter((t) => t.source === leaf.path && (t.target === null || t.target === leaf.path)).map(transitionTitle).join('\n'),
      path: leaf.path,
      key: leaf.path,
      internal: internal.get(leaf.path) ?? [],
      x: n.x - n.width / 2,
      y: n.y - n.height / 2,
      width: n.width,
      height: n.height,
      initial: root?.initial === leaf.key,
      final: leaf.type === 'final',
    };
  });
  const arrows: Arrow[] = g.edges().map((e) => {
    const edge = g.edge(e) as { points: { x: number; y: number }[]; label: string; x: number; y: number };
    return { id: e.name ?? `${e.v}-${e.w}`, title: (titles.get(`${e.v}->${e.w}`) ?? []).join('\n'), points: edge.points, label: edge.label, labelX: edge.x, labelY: edge.y, source: e.v, target: e.w };
  });
  const graph = g.graph() as { width?: number; height?: number };
  return { boxes, arrows, width: graph.width ?? 200, height: graph.height ?? 80 };
}

const pathD = (points: readonly { x: number; y: number }[]): string =>
  points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');

export function StateChart({ chart, active }: { chart: Chart; active: readonly string[] }) {
  const drawn = useMemo(() => computeLayout(chart), [chart]);
  const isActive = (path: string): boolean => active.includes(path);
  return (
    <svg
      class="chart"
      data-testid="state-chart"
      viewBox={`0 0 ${drawn.width} ${drawn.height}`}
      style={{ width: '100%', maxWidth: `${drawn.width}px`, height: 'auto' }}
      role="img"
      aria-label={`state chart of ${chart.id}`}
    >
      <defs>
        <marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
        </marker>
      </defs>
      {drawn.arrows.map((a) => (
        <g key={a.id} class={isActive(a.source) ? 'edge edge-from-active' : 'edge'}>
          <title>{a.title}</title>
          <path d={pathD(a.points)} marker-end="url(#arrowhead)" />
          <text x={a.labelX} y={a.labelY + 4} text-anchor="middle">
            {a.label}
          </text>
        </g>
      ))}
      {drawn.boxes.map((b) => (
        <g
          key={b.path}
          class={`state${isActive(b.path) ? ' state-active' : ''}${b.final ? ' state-final' : ''}`}
          data-testid={`chart-state-${b.path}`}
          data-active={isActive(b.path) ? 'true' : 'false'}
        >
          {b.title && <title>{b.title}</title>}
          <rect x={b.x} y={b.y} width={b.width} height={b.height} rx="8" />
          {b.final && <rect class="final-ring" x={b.x + 3} y={b.y + 3} width={b.width - 6} height={b.height - 6} rx="6" />}
          <text class="state-name" x={b.x + b.width / 2} y={b.y + 19} text-anchor="middle">
            {b.initial ? `→ ${b.key}` : b.key}
          </text>
          {b.internal.map((line, i) => (
            <text key={line} class="state-internal" x={b.x + 10} y={b.y + 36 + i * LINE_HEIGHT}>
              {line}
            </text>
          ))}
        </g>
      ))}
    </svg>
  );
}
