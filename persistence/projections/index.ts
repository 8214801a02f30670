// The built-in projections, by name (CONTRACT.md section 8).
import type { ProjectionHandler } from './projection.js';
import { stockProjection } from './stock.js';
import { workordersProjection } from './workorders.js';

export const builtInProjections: ReadonlyMap<string, ProjectionHandler> = new Map([
  [stockProjection.name, stockProjection],
  [workordersProjection.name, workordersProjection],
]);

/** Default lag budgets (ms): what each may fall behind the journal before it counts as lagging. */
export const DEFAULT_LAG_BUDGETS: ReadonlyMap<string, number> = new Map([
  ['stock', 2_000],
  ['workorders', 5_000],
  ['export', 2_000],
]);

export type { ProjectionHandler } from './projection.js';
