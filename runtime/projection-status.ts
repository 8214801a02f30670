// How far each follower of the journal (projections, the export) is behind, against its lag
// budget (CONTRACT.md section 8): what `ppos projections`, the demo and the dashboard show.
import type pg from 'pg';
import { lagBehind } from '../persistence/journal-feed.js';
import { ProjectionStore, type FeedSources, type ProjectionRow } from '../persistence/projection-store.js';

export type ProjectionStatus = 'ok' | 'lagging' | 'stalled' | 'rebuilding';

export interface ProjectionReport {
  readonly name: string;
  readonly position: number;
  readonly lagMs: number;
  readonly lagEvents: number;
  readonly budgetMs: number;
  readonly status: ProjectionStatus;
  readonly owner: string | null;
}

/**
 * Status from the row and the lag: rebuilding while a rebuild runs; stalled when events wait
 * and nobody applies them (no live owner, or no progress for ten budgets); lagging over budget.
 */
export function statusOf(row: ProjectionRow, lagMs: number, lagEvents: number): ProjectionStatus {
  if (row.rebuilding && row.remainingMs >= 0) return 'rebuilding';
  if (lagEvents > 0 && (row.owner === null || row.remainingMs < 0 || row.idleMs > Math.max(10_000, 10 * row.budgetMs))) return 'stalled';
  return lagMs > row.budgetMs ? 'lagging' : 'ok';
}

/**
 * A report per checkpoint row: a projection's own (the first database's events), and with
 * several databases one `<name>@<n>` per other database, its lag measured in that database.
 * `countUpTo`: how far to count the events waiting (a sampler that needs only the lag's age passes 1).
 */
export async function projectionReports(pool: pg.Pool, countUpTo?: number, sources: FeedSources = [pool]): Promise<ProjectionReport[]> {
  const store = new ProjectionStore(pool);
  const reports: ProjectionReport[] = [];
  for (const row of await store.rows()) {
    const source = sources[row.source];
    // A row of a database this journal no longer lists (the layout check refuses that): nothing to measure against.
    if (!source) continue;
    const { lagMs, lagEvents } = await lagBehind(source, row.checkpoint, countUpTo);
    reports.push({ name: row.name, position: row.checkpoint.position, lagMs, lagEvents, budgetMs: row.budgetMs, status: statusOf(row, lagMs, lagEvents), owner: row.owner });
  }
  return reports;
}
