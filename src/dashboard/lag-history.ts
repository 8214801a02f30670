// The projections' lag over the last minutes, sampled by the dashboard server so a page that
// opens late still draws the recent past (CONTRACT.md section 8: lag against the budget).
import type { ProjectionReport } from '../../runtime/projection-status.js';

export interface LagSample {
  readonly at: string;
  /** Lag in ms by projection name. */
  readonly lagMs: Readonly<Record<string, number>>;
}

export interface LagView {
  readonly at: string;
  readonly reports: readonly Omit<ProjectionReport, 'owner'>[];
  readonly history: readonly LagSample[];
}

export class LagHistory {
  private readonly samples: LagSample[] = [];
  private latest: readonly Omit<ProjectionReport, 'owner'>[] = [];

  constructor(private readonly keepMs = 10 * 60_000) {}

  record(reports: readonly ProjectionReport[], at = new Date()): void {
    this.latest = reports.map(({ owner: _owner, ...report }) => report);
    this.samples.push({ at: at.toISOString(), lagMs: Object.fromEntries(reports.map((r) => [r.name, r.lagMs])) });
    const oldest = at.getTime() - this.keepMs;
    while (this.samples.length > 0 && Date.parse(this.samples[0]!.at) < oldest) this.samples.shift();
  }

  view(): LagView {
    return { at: this.samples[this.samples.length - 1]?.at ?? new Date().toISOString(), reports: this.latest, history: [...this.samples] };
  }
}
