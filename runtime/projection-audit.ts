// Checking a projection against the journal, and rebuilding it from the journal. Both build the
// read model afresh from event 1 with the projection's own handler, into shadow tables, and
// compare row by row: a row edited by hand, or an event applied twice or missed, shows up as a
// row that differs (`projections_changed`, CONTRACT.md section 6).
import type pg from 'pg';
import { FEED_START, readCommitted, type FeedPosition, type Queryable } from '../persistence/journal-feed.js';
import { checkpointName, type FeedSources, type ProjectionStore } from '../persistence/projection-store.js';
import type { ProjectionHandler, Tables } from '../persistence/projections/projection.js';

const BATCH = 2_000;

export interface ProjectionAudit {
  readonly projection: string;
  /** Where the read model was compared: its checkpoint in each database, in layout order. */
  readonly checkpoints: readonly FeedPosition[];
  /** Events replayed into the shadow tables. */
  readonly eventsProcessed: number;
  /** Rows of the read model that differ from what the journal says (either side missing counts). */
  readonly rowsChanged: number;
  /** A few of them, named. */
  readonly examples: readonly string[];
}

/** Applies every committed event of `source` in (after, through] to `tables` through `target`, in batches. */
async function replayInto(
  source: Queryable,
  target: Queryable,
  handler: ProjectionHandler,
  tables: Tables,
  after: FeedPosition,
  through?: FeedPosition,
): Promise<{ last: FeedPosition; events: number }> {
  let last = after;
  let events = 0;
  for (;;) {
    const batch = await readCommitted(source, last, BATCH, through);
    if (batch.length === 0) return { last, events };
    await handler.apply(batch, target, tables);
    events += batch.length;
    const end = batch[batch.length - 1]!;
    last = { tx: end.tx, position: end.position };
  }
}

/** replayInto over every database, each from `after[i]` (through `through[i]`): where each ended, and how many events (in all, and from each). */
async function replayAll(
  sources: FeedSources,
  target: Queryable,
  handler: ProjectionHandler,
  tables: Tables,
  after: readonly FeedPosition[],
  through?: readonly FeedPosition[],
): Promise<{ last: FeedPosition[]; events: number; bySource: number[] }> {
  const last: FeedPosition[] = [];
  const bySource: number[] = [];
  for (const [index, source] of sources.entries()) {
    const done = await replayInto(source, target, handler, tables, after[index] ?? FEED_START, through?.[index]);
    last.push(done.last);
    bySource.push(done.events);
  }
  return { last, events: bySource.reduce((sum, n) => sum + n, 0), bySource };
}

/** Shadow tables shaped like the live ones: temporary (gone at commit or rollback), or real for a rebuild. */
async function createShadows(db: Queryable, handler: ProjectionHandler, suffix: string, temporary: boolean): Promise<Tables> {
  const shadows: Record<string, string> = {};
  for (const [role, live] of Object.entries(handler.tables)) {
    const shadow = `${live}${suffix}`;
    await db.query(`DROP TABLE IF EXISTS ${shadow}`);
    await db.query(`CREATE ${temporary ? 'TEMPORARY ' : ''}TABLE ${shadow} (LIKE ${live} INCLUDING ALL)`);
    shadows[role] = shadow;
  }
  return shadows;
}

function compare(live: ReadonlyMap<string, string>, fresh: ReadonlyMap<string, string>): { count: number; examples: string[] } {
  const examples: string[] = [];
  let count = 0;
  for (const key of new Set([...live.keys(), ...fresh.keys()])) {
    const a = live.get(key);
    const b = fresh.get(key);
    if (a === b) continue;
    count += 1;
    if (examples.length < 5) examples.push(a === undefined ? `${key} is missing` : b === undefined ? `${key} should not exist` : `${key} is ${a}, the journal says ${b}`);
  }
  return { count, examples };
}

/**
 * The read model as the journal says it must be at its checkpoint, against what it holds: in
 * one REPEATABLE READ transaction, so the checkpoint and the rows are seen as of one moment
 * while the projection goes on; nothing is written (the shadows are temporary, rolled back).
 */
export async function auditProjection(pool: pg.Pool, store: ProjectionStore, handler: ProjectionHandler, sources: FeedSources = [pool]): Promise<ProjectionAudit> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const checkpoints: FeedPosition[] = [];
    for (const index of sources.keys()) checkpoints.push((await store.row(handler.name, client, index))?.checkpoint ?? FEED_START);
    const shadows = await createShadows(client, handler, '_audit', true);
    // The first database read in this transaction; the others' events up to a checkpoint never change.
    const { events } = await replayAll([client, ...sources.slice(1)], client, handler, shadows, [], checkpoints);
    const differences = compare(await handler.rowsByKey(client, handler.tables), await handler.rowsByKey(client, shadows));
    return { projection: handler.name, checkpoints, eventsProcessed: events, rowsChanged: differences.count, examples: differences.examples };
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

/** A rebuild holds the projection by a lease it renews, so one that dies frees it for the runners. */
const REBUILD_LEASE_MS = 30_000;

/**
 * Rebuilds a projection from event 1: fences its runners out (the row is marked rebuilding,
 * its epoch bumped, leased to this rebuild), builds shadow tables up to the frozen checkpoint
 * and counts the rows the live ones got wrong, carries the shadows on to the journal's
 * horizon, then swaps them in and moves the checkpoint, in one transaction. The runners take
 * the projection back from there. A rebuild that dies leaves the live tables as they were;
 * its lease runs out and the runners go on with them.
 */
export async function rebuildProjection(
  pool: pg.Pool,
  handler: ProjectionHandler,
  rebuilder = `rebuild:${process.pid}`,
  sources: FeedSources = [pool],
): Promise<ProjectionAudit> {
  // A projection no node has run yet is built from nothing, like any other.
  const rowNames = [...sources.keys()].map((index) => checkpointName(handler.name, index));
  await pool.query('INSERT INTO ppos_projections (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING', [rowNames]);
  const fence = await pool.query(
    `UPDATE ppos_projections SET rebuilding = true, epoch = epoch + 1, owner = $2, owner_incarnation = NULL,
       expires_at = now() + make_interval(secs => $3::float8 / 1000)
     WHERE name = $1 AND (NOT rebuilding OR expires_at < now())
     RETURNING epoch`,
    [handler.name, rebuilder, REBUILD_LEASE_MS],
  );
  if (fence.rowCount !== 1) throw new Error(`projection ${handler.name} is already being rebuilt`);
  const epoch = Number(fence.rows[0].epoch);
  // Fenced: a runner's batch in flight held the lease row and committed before the fence did;
  // no batch commits after it, so these checkpoints stay where they are.
  const at = await pool.query('SELECT name, tx::text AS tx, position FROM ppos_projections WHERE name = ANY($1::text[])', [rowNames]);
  const frozen: FeedPosition[] = rowNames.map((name) => {
    const row = at.rows.find((r) => r.name === name)!;
    return { tx: row.tx as string, position: Number(row.position) };
  });
  const renewal = setInterval(() => {
    void pool
      .query('UPDATE ppos_projections SET expires_at = now() + make_interval(secs => $3::float8 / 1000) WHERE name = $1 AND epoch = $2 AND rebuilding', [handler.name, epoch, REBUILD_LEASE_MS])
      .catch(() => undefined);
  }, REBUILD_LEASE_MS / 6);
  try {
    const shadows = await createShadows(pool, handler, '_rebuild', false);
    const upToFrozen = await replayAll(sources, pool, handler, shadows, [], frozen);
    const differences = compare(await handler.rowsByKey(pool, handler.tables), await handler.rowsByKey(pool, shadows));
    const caughtUp = await replayAll(sources, pool, handler, shadows, upToFrozen.last);
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const held = await client.query('SELECT epoch FROM ppos_projections WHERE name = $1 FOR UPDATE', [handler.name]);
      if (Number(held.rows[0]?.epoch) !== epoch) throw new Error(`projection ${handler.name} was taken over while it was being rebuilt; nothing was swapped in`);
      const tail = await replayAll([client, ...sources.slice(1)], client, handler, shadows, caughtUp.last);
      for (const [role, live] of Object.entries(handler.tables)) {
        await client.query(`DROP TABLE ${live}`);
        await client.query(`ALTER TABLE ${shadows[role]!} RENAME TO ${live}`);
      }
      const applied = rowNames.map((_, i) => upToFrozen.bySource[i]! + caughtUp.bySource[i]! + tail.bySource[i]!);
      await client.query(
        `UPDATE ppos_projections p SET tx = c.tx::xid8, position = c.position, applied_events = c.applied, updated_at = now()
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS c(name, tx, position, applied) WHERE p.name = c.name`,
        [rowNames, tail.last.map((p) => p.tx), tail.last.map((p) => p.position), applied],
      );
      await client.query('UPDATE ppos_projections SET rebuilding = false, owner = NULL, expires_at = now() WHERE name = $1', [handler.name]);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
    return { projection: handler.name, checkpoints: frozen, eventsProcessed: upToFrozen.events, rowsChanged: differences.count, examples: differences.examples };
  } catch (error) {
    // Left as it was: the runners may take it again.
    await pool
      .query('UPDATE ppos_projections SET rebuilding = false, owner = NULL, expires_at = now() WHERE name = $1 AND epoch = $2', [handler.name, epoch])
      .catch(() => undefined);
    throw error;
  } finally {
    clearInterval(renewal);
  }
}
