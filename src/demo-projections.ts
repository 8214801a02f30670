// The demo's last phase: the eventual side. It asks the stock projection which of the run's
// SKUs are low (a question no single actor can answer), waiting with the last command's commit
// token so the answer includes everything the demo did, checks the read model against what
// the actors themselves say, and shows each projection's lag against its budget.
import type pg from 'pg';
import { projectionReports, type ProjectionReport } from '../runtime/projection-status.js';
import { QUERY_SUBJECT_PREFIX } from '../runtime/subjects.js';
import type { PposClient } from './client.js';

export const LOW_STOCK_BELOW = 10;

export interface DemoProjections {
  /** The run's SKUs the stock projection lists with available below the threshold. */
  readonly lowStock: { readonly below: number; readonly count: number; readonly first: readonly string[] };
  /** The run's work orders by status, from the workorders projection. */
  readonly workOrdersByStatus: Record<string, number>;
  /** Every run SKU's projected available equals the actor's own. */
  readonly matchesActors: boolean;
  readonly mismatches: readonly string[];
  readonly lags: readonly Omit<ProjectionReport, 'owner'>[];
}

type QueryReply = { ok: true; rows: Record<string, unknown>[]; next?: string } | { ok: false; error: { code: string; message: string } };

/** Every row of a projection matching `where`, page by page; the first page waits for `after`. */
async function queryAll(client: PposClient, projection: string, where: Record<string, unknown>, after: string | undefined): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  let cursor: string | undefined;
  do {
    const body = { where, limit: 1_000, timeoutMs: 30_000, ...(after && !cursor ? { after } : {}), ...(cursor ? { cursor } : {}) };
    const reply = (await client.request(`${QUERY_SUBJECT_PREFIX}.${projection}`, JSON.stringify(body), 40_000)) as unknown as QueryReply;
    if (!reply.ok) throw new Error(`query ${projection}: ${reply.error.code} ${reply.error.message}`);
    rows.push(...reply.rows);
    cursor = reply.next;
  } while (cursor);
  return rows;
}

export async function demoProjections(options: {
  readonly client: PposClient;
  readonly pool: pg.Pool;
  readonly run: string;
  /** Each run SKU's available, as its actor answered `Get`. */
  readonly liveAvailable: ReadonlyMap<string, number>;
  /** The commit token of the demo's last journaled command. */
  readonly lastToken: string | undefined;
}): Promise<DemoProjections> {
  const { client, run, liveAvailable, lastToken } = options;
  const ofRun = (row: Record<string, unknown>): boolean => String(row.id).includes(`-${run}-`);
  const stock = (await queryAll(client, 'stock', {}, lastToken)).filter(ofRun);
  const mismatches: string[] = [];
  const projected = new Map(stock.map((row) => [row.id as string, row.available as number]));
  for (const [sku, available] of liveAvailable) {
    if (projected.get(sku) !== available) mismatches.push(`${sku}: actor ${available}, projection ${projected.get(sku) ?? 'missing'}`);
  }
  const low = (await queryAll(client, 'stock', { availableBelow: LOW_STOCK_BELOW }, undefined)).filter(ofRun).map((row) => row.id as string);
  const workOrdersByStatus: Record<string, number> = {};
  for (const row of (await queryAll(client, 'workorders', {}, lastToken)).filter(ofRun)) {
    const status = row.status as string;
    workOrdersByStatus[status] = (workOrdersByStatus[status] ?? 0) + 1;
  }
  const lags = (await projectionReports(options.pool)).map(({ owner: _owner, ...report }) => report);
  return {
    lowStock: { below: LOW_STOCK_BELOW, count: low.length, first: low.slice(0, 5) },
    workOrdersByStatus,
    matchesActors: mismatches.length === 0,
    mismatches: mismatches.slice(0, 5),
    lags,
  };
}
