// The `workorders` projection (CONTRACT.md section 8): one row per work order, its status,
// stage and lines, for questions such as "which work orders are in weld?". A work order's
// status is the machine's (released is reached by an eventless transition, not an event), so
// each row keeps the order's persisted state and a batch replays its events onto it with the
// kind's own machine: the read model can never interpret an event differently from the actor.
import type { AnyMachineSnapshot } from 'xstate';
import { z } from 'zod';
import { workorder } from '../../actors/workorder.js';
import { actorId } from '../../actors/schema.js';
import { applyEvent, initialState, persistState, restoreState, type PersistedState } from '../../actors/state.js';
import type { FedEvent, Queryable } from '../journal-feed.js';
import { decodeCursor, encodeCursor, whereParser, type ProjectionHandler, type QueryPage, type Tables } from './projection.js';

const TABLES = { workorders: 'ppos_proj_workorders' } as const;

const STATUSES = ['none', 'draft', 'releasing', 'released', 'in_progress', 'completing', 'cancelling', 'completed', 'cancelled'] as const;

function rowOf(state: AnyMachineSnapshot): { status: string; stage: string | null; lines: unknown[] } {
  const view = workorder.view(state) as { status: string; stage: string | null; lines: { sku: string; qty: number; status: string }[] };
  return { status: view.status, stage: view.stage, lines: view.lines.map((l) => ({ sku: l.sku, qty: l.qty, status: l.status })) };
}

async function apply(events: readonly FedEvent[], db: Queryable, tables: Tables): Promise<void> {
  const byOrder = new Map<string, FedEvent[]>();
  for (const fed of events) {
    if (fed.kind !== 'workorder') continue;
    const list = byOrder.get(fed.id) ?? [];
    list.push(fed);
    byOrder.set(fed.id, list);
  }
  if (byOrder.size === 0) return;
  const ids = [...byOrder.keys()];
  const existing = await db.query(`SELECT id, state FROM ${tables.workorders} WHERE id = ANY($1::text[])`, [ids]);
  const stateOf = new Map(existing.rows.map((row) => [row.id as string, restoreState(workorder, row.state as PersistedState)]));
  const written: [string, AnyMachineSnapshot, Date][] = [];
  for (const [id, list] of byOrder) {
    let state = stateOf.get(id) ?? initialState(workorder);
    for (const fed of list) state = applyEvent(workorder, state, fed.event);
    written.push([id, state, list[list.length - 1]!.recordedAt]);
  }
  const rows = written.map(([id, state, at]) => ({ id, ...rowOf(state), state: persistState(workorder, state), at }));
  await db.query(
    `INSERT INTO ${tables.workorders} (id, status, stage, lines, state, updated_at)
     SELECT id, status, stage, lines, state, updated_at
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, status text, stage text, lines jsonb, state jsonb, updated_at timestamptz)
     ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, stage = EXCLUDED.stage, lines = EXCLUDED.lines, state = EXCLUDED.state, updated_at = EXCLUDED.updated_at`,
    [JSON.stringify(rows.map((r) => ({ id: r.id, status: r.status, stage: r.stage, lines: r.lines, state: r.state, updated_at: r.at.toISOString() })))],
  );
}

const whereSchema = z
  .object({
    id: actorId.optional(),
    status: z.enum(STATUSES).optional(),
  })
  .strict();

async function query(db: Queryable, where: Record<string, unknown>, limit: number, cursor: string | undefined): Promise<QueryPage> {
  const after = cursor === undefined ? null : decodeCursor(cursor);
  const result = await db.query(
    `SELECT id, status, stage, lines, updated_at FROM ${TABLES.workorders}
     WHERE ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR id > $3)
     ORDER BY id LIMIT $4`,
    [where.id ?? null, where.status ?? null, after, limit + 1],
  );
  const rows = result.rows.slice(0, limit).map((row) => ({
    id: row.id as string,
    status: row.status as string,
    stage: (row.stage as string | null) ?? null,
    lines: row.lines as unknown[],
    updatedAt: (row.updated_at as Date).toISOString(),
  }));
  return result.rows.length > limit ? { rows, next: encodeCursor(rows[rows.length - 1]!.id) } : { rows };
}

async function rowsByKey(db: Queryable, tables: Tables): Promise<Map<string, string>> {
  const result = await db.query(`SELECT id, status, stage, lines, state FROM ${tables.workorders}`);
  return new Map(result.rows.map((row) => [row.id as string, JSON.stringify([row.status, row.stage, row.lines, row.state])]));
}

export const workordersProjection: ProjectionHandler = {
  name: 'workorders',
  tables: TABLES,
  apply,
  query,
  parseWhere: whereParser(whereSchema),
  rowsByKey,
};
