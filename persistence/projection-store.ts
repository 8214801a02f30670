// Projection bookkeeping in PostgreSQL: one row per projection (and the journal export) holding
// its checkpoint and its owner. Ownership is a lease with an epoch, as for shards (leases.ts):
// a process applies a batch only while the row, locked for that transaction, still carries its
// epoch, so a reader that lost the projection can never apply or move the checkpoint again.
//
// A journal over several databases is read database by database (each has its own read order):
// the row named after the projection holds its lease and the checkpoint in the first database,
// and a row `<name>@<n>` the checkpoint in database n. Every batch locks both rows, so the
// lease's epoch fences every database's batches alike.
import type pg from 'pg';
import type { FeedPosition, Queryable } from './journal-feed.js';

/** The journal's databases a follower reads, in layout order: source i is database i + 1. */
export type FeedSources = readonly Queryable[];

/** The row holding a follower's checkpoint in source `source`. */
export const checkpointName = (name: string, source: number): string => (source === 0 ? name : `${name}@${source + 1}`);

export interface ProjectionRow {
  /** The row's name: the projection's, or `<projection>@<n>` for its checkpoint in database n. */
  readonly name: string;
  readonly projection: string;
  /** The database whose events this row's checkpoint counts (0: the first). */
  readonly source: number;
  readonly checkpoint: FeedPosition;
  readonly appliedEvents: number;
  /** The projection's owner, epoch, lease, rebuilding flag and budget: its lease row's, whichever source. */
  readonly owner: string | null;
  readonly epoch: number;
  /** Milliseconds until the owner's lease expires (negative: expired). */
  readonly remainingMs: number;
  readonly rebuilding: boolean;
  readonly budgetMs: number;
  readonly updatedAt: Date;
  /** Milliseconds since the checkpoint last moved (by the database's clock). */
  readonly idleMs: number;
}

const rowOf = (row: Record<string, unknown>): ProjectionRow => ({
  name: row.name as string,
  projection: row.projection as string,
  source: row.source as number,
  checkpoint: { tx: row.tx as string, position: Number(row.position) },
  appliedEvents: Number(row.applied_events),
  owner: (row.owner as string | null) ?? null,
  epoch: Number(row.epoch),
  remainingMs: row.remaining_ms as number,
  rebuilding: row.rebuilding as boolean,
  budgetMs: row.budget_ms as number,
  updatedAt: row.updated_at as Date,
  idleMs: row.idle_ms as number,
});

/** Checkpoint rows (c) with their projection's lease row (l): a lease row is its own. */
const ROWS = `SELECT c.name, l.name AS projection, CASE WHEN c.name = l.name THEN 0 ELSE split_part(c.name, '@', 2)::int - 1 END AS source,
  c.tx::text AS tx, c.position, c.applied_events, l.owner, l.epoch, l.rebuilding, l.budget_ms, c.updated_at,
  (extract(epoch FROM l.expires_at - now()) * 1000)::float8 AS remaining_ms,
  (extract(epoch FROM now() - c.updated_at) * 1000)::float8 AS idle_ms
  FROM ppos_projections c JOIN ppos_projections l ON l.name = split_part(c.name, '@', 1)`;

export class ProjectionStore {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * Creates the rows of these projections (and of their checkpoints in each of `sources`
   * databases), and records the lag budget each is run with.
   */
  async ensure(budgets: ReadonlyMap<string, number>, sources = 1): Promise<void> {
    const rows = [...budgets].flatMap(([name, budget]) => Array.from({ length: sources }, (_, source) => [checkpointName(name, source), budget] as const));
    await this.pool.query(
      `INSERT INTO ppos_projections (name, budget_ms) SELECT * FROM unnest($1::text[], $2::int[])
       ON CONFLICT (name) DO UPDATE SET budget_ms = EXCLUDED.budget_ms`,
      [rows.map(([name]) => name), rows.map(([, budget]) => budget)],
    );
  }

  /** Every checkpoint row, by name (a projection's own row first, then its other databases'). */
  async rows(db: Queryable = this.pool): Promise<ProjectionRow[]> {
    return (await db.query(`${ROWS} ORDER BY c.name`)).rows.map(rowOf);
  }

  /** The checkpoint row of `name` in `source`. */
  async row(name: string, db: Queryable = this.pool, source = 0): Promise<ProjectionRow | null> {
    const result = await db.query(`${ROWS} WHERE c.name = $1`, [checkpointName(name, source)]);
    return result.rows[0] ? rowOf(result.rows[0]) : null;
  }

  /**
   * Takes the projection when it is free, expired (a rebuild that died included), or held under
   * this node id by its current incarnation (a restarted node takes its own back at once); the
   * epoch grows by one.
   */
  async acquire(name: string, node: string, incarnation: string, ttlMs: number): Promise<number | null> {
    const result = await this.pool.query(
      `UPDATE ppos_projections p SET owner = $2, owner_incarnation = $3, epoch = p.epoch + 1, rebuilding = false,
         expires_at = now() + make_interval(secs => $4::float8 / 1000)
       WHERE p.name = $1 AND (NOT p.rebuilding OR p.expires_at < now())
         AND (p.owner IS NULL OR p.expires_at < now()
              OR (p.owner = $2 AND EXISTS (SELECT 1 FROM ppos_nodes n WHERE n.node_id = $2 AND n.incarnation = $3)))
       RETURNING p.epoch`,
      [name, node, incarnation, ttlMs],
    );
    return result.rows[0] ? Number(result.rows[0].epoch) : null;
  }

  /** Extends the lease at the same epoch; false when it was lost. */
  async renew(name: string, incarnation: string, epoch: number, ttlMs: number): Promise<boolean> {
    const result = await this.pool.query(
      `UPDATE ppos_projections SET expires_at = now() + make_interval(secs => $4::float8 / 1000)
       WHERE name = $1 AND owner_incarnation = $2 AND epoch = $3 AND NOT rebuilding`,
      [name, incarnation, epoch, ttlMs],
    );
    return result.rowCount === 1;
  }

  async release(name: string, incarnation: string, epoch: number): Promise<void> {
    await this.pool.query(
      'UPDATE ppos_projections SET owner = NULL, owner_incarnation = NULL, expires_at = now() WHERE name = $1 AND owner_incarnation = $2 AND epoch = $3',
      [name, incarnation, epoch],
    );
  }

  /**
   * Opens a batch's transaction and locks the projection's row in it, in one round trip (a
   * batch runs every few tens of milliseconds per follower, and each round trip costs both
   * processes): the checkpoint, or null when the epoch is no longer ours (another process took
   * the projection: apply nothing, and roll back). Asynchronous commit: a batch's rows and its
   * checkpoint commit or vanish together, so a batch lost in a database crash is applied again
   * from the old checkpoint; waiting for the WAL flush would only take flushes from the appends
   * of commands.
   */
  async beginBatch(client: pg.PoolClient, name: string, epoch: number, source = 0): Promise<FeedPosition | null> {
    // A simple-protocol query (several statements) carries no parameters: the names are quoted.
    // Both rows locked in name order (the lease row sorts first), as every batch locks them.
    const checkpoint = checkpointName(name, source);
    const results = (await client.query(
      `BEGIN; SET LOCAL synchronous_commit = off;
       SELECT name, tx::text AS tx, position, epoch, rebuilding FROM ppos_projections
       WHERE name IN (${client.escapeLiteral(name)}, ${client.escapeLiteral(checkpoint)}) ORDER BY name FOR UPDATE`,
    )) as unknown as pg.QueryResult[];
    const rows = results[results.length - 1]!.rows as { name: string; tx: string; position: string | number; epoch: string | number; rebuilding: boolean }[];
    const lease = rows.find((row) => row.name === name);
    const at = rows.find((row) => row.name === checkpoint);
    if (!lease || !at || Number(lease.epoch) !== epoch || lease.rebuilding) return null;
    return { tx: at.tx, position: Number(at.position) };
  }

  /** Moves the checkpoint in `source` past the batch applied, with what it applied, and commits: one round trip. */
  async commitBatch(client: pg.PoolClient, name: string, to: FeedPosition, applied: number, source = 0): Promise<void> {
    if (!/^\d+$/.test(to.tx) || !Number.isSafeInteger(to.position) || !Number.isSafeInteger(applied)) {
      throw new Error(`not a checkpoint: ${JSON.stringify({ to, applied })}`);
    }
    await client.query(
      `UPDATE ppos_projections SET tx = '${to.tx}'::xid8, position = ${to.position}, applied_events = applied_events + ${applied}, updated_at = now()
       WHERE name = ${client.escapeLiteral(checkpointName(name, source))}; COMMIT`,
    );
  }
}
