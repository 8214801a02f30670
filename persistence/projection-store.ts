// Projection bookkeeping in PostgreSQL: one row per projection (and the journal export) holding
// its checkpoint and its owner. Ownership is a lease with an epoch, as for shards (leases.ts):
// a process applies a batch only while the row, locked for that transaction, still carries its
// epoch, so a reader that lost the projection can never apply or move the checkpoint again.
import type pg from 'pg';
import type { FeedPosition, Queryable } from './journal-feed.js';

export interface ProjectionRow {
  readonly name: string;
  readonly checkpoint: FeedPosition;
  readonly appliedEvents: number;
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

const COLUMNS = `name, tx::text AS tx, position, applied_events, owner, epoch, rebuilding, budget_ms, updated_at,
  (extract(epoch FROM expires_at - now()) * 1000)::float8 AS remaining_ms,
  (extract(epoch FROM now() - updated_at) * 1000)::float8 AS idle_ms`;

export class ProjectionStore {
  constructor(private readonly pool: pg.Pool) {}

  /** Creates the rows of these projections, and records the lag budget each is run with. */
  async ensure(budgets: ReadonlyMap<string, number>): Promise<void> {
    await this.pool.query(
      `INSERT INTO ppos_projections (name, budget_ms) SELECT * FROM unnest($1::text[], $2::int[])
       ON CONFLICT (name) DO UPDATE SET budget_ms = EXCLUDED.budget_ms`,
      [[...budgets.keys()], [...budgets.values()]],
    );
  }

  async rows(): Promise<ProjectionRow[]> {
    return (await this.pool.query(`SELECT ${COLUMNS} FROM ppos_projections ORDER BY name`)).rows.map(rowOf);
  }

  async row(name: string, db: Queryable = this.pool): Promise<ProjectionRow | null> {
    const result = await db.query(`SELECT ${COLUMNS} FROM ppos_projections WHERE name = $1`, [name]);
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
  async beginBatch(client: pg.PoolClient, name: string, epoch: number): Promise<FeedPosition | null> {
    // A simple-protocol query (several statements) carries no parameters: the name is quoted.
    const results = (await client.query(
      `BEGIN; SET LOCAL synchronous_commit = off;
       SELECT tx::text AS tx, position, epoch, rebuilding FROM ppos_projections WHERE name = ${client.escapeLiteral(name)} FOR UPDATE`,
    )) as unknown as pg.QueryResult[];
    const row = results[results.length - 1]!.rows[0] as { tx: string; position: string | number; epoch: string | number; rebuilding: boolean } | undefined;
    if (!row || Number(row.epoch) !== epoch || row.rebuilding) return null;
    return { tx: row.tx, position: Number(row.position) };
  }

  /** Moves the checkpoint past the batch applied, with what it applied, and commits: one round trip. */
  async commitBatch(client: pg.PoolClient, name: string, to: FeedPosition, applied: number): Promise<void> {
    if (!/^\d+$/.test(to.tx) || !Number.isSafeInteger(to.position) || !Number.isSafeInteger(applied)) {
      throw new Error(`not a checkpoint: ${JSON.stringify({ to, applied })}`);
    }
    await client.query(
      `UPDATE ppos_projections SET tx = '${to.tx}'::xid8, position = ${to.position}, applied_events = applied_events + ${applied}, updated_at = now()
       WHERE name = ${client.escapeLiteral(name)}; COMMIT`,
    );
  }

}
