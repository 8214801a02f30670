// Shard leases and node membership in PostgreSQL. Every lease carries an epoch (fencing
// token) that only grows; the journal refuses an append whose epoch is not the shard's
// current one (pg-journal.ts), so a paused or partitioned node can never append, whatever its
// clock says. Expiry is judged by the database's clock alone.
import type pg from 'pg';

export interface Lease {
  readonly shard: number;
  readonly owner: string | null;
  /** The process holding it under `owner`'s id: where its commands are forwarded. */
  readonly ownerIncarnation: string | null;
  readonly epoch: number;
  /** Milliseconds until the lease expires by the database's clock (negative: expired). */
  readonly remainingMs: number;
}

export interface GrantedLease {
  readonly shard: number;
  readonly epoch: number;
}

/**
 * Locks the lease rows of the shards in $2 (an int[]) in shard order, before an UPDATE changes
 * them. Appends lock the same rows FOR SHARE in shard order too (pg-journal.ts); statements that
 * lock them in whatever order a scan meets them can deadlock each other.
 */
const LOCK_IN_ORDER = 'SELECT shard FROM ppos_shard_leases WHERE shard = ANY($2::int[]) ORDER BY shard FOR NO KEY UPDATE';

export class LeaseStore {
  constructor(private readonly pool: pg.Pool) {}

  /** Creates the shard rows once; refuses a shard count that differs from the database's. */
  async ensureShards(shardCount: number): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO ppos_cluster (key, value) VALUES ('shards', $1) ON CONFLICT (key) DO NOTHING`, [String(shardCount)]);
      const stored = Number((await client.query(`SELECT value FROM ppos_cluster WHERE key = 'shards'`)).rows[0].value);
      if (stored !== shardCount) {
        throw new Error(`this journal is sharded ${stored} ways; start every node with --shards ${stored}`);
      }
      await client.query(
        'INSERT INTO ppos_shard_leases (shard, owner, epoch, expires_at) SELECT s, NULL, 0, now() FROM generate_series(0, $1::int - 1) s ON CONFLICT DO NOTHING',
        [shardCount],
      );
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * Makes this process the node id's one incarnation, not draining (a node restarted after a
   * crash mid-drain takes shards again). A process still running under the same id is fenced
   * out: its heartbeats, renewals and acquisitions no longer match (see `heartbeat`).
   * Returns the incarnation it replaced, if that one heartbeated within `ttlMs`.
   */
  async register(node: string, incarnation: string, ttlMs: number): Promise<{ incarnation: string; heartbeatAgoMs: number } | null> {
    const result = await this.pool.query(
      `WITH previous AS (
         SELECT incarnation, (extract(epoch FROM now() - heartbeat_at) * 1000)::float8 AS ago_ms FROM ppos_nodes WHERE node_id = $1 FOR UPDATE
       ), upserted AS (
         INSERT INTO ppos_nodes (node_id, incarnation, started_at, heartbeat_at, draining) VALUES ($1, $2, now(), now(), false)
         ON CONFLICT (node_id) DO UPDATE SET incarnation = $2, started_at = now(), heartbeat_at = now(), draining = false
       )
       SELECT incarnation, ago_ms FROM previous`,
      [node, incarnation],
    );
    const row = result.rows[0] as { incarnation: string | null; ago_ms: number } | undefined;
    if (!row || row.incarnation === null || row.incarnation === incarnation || row.ago_ms > ttlMs) return null;
    return { incarnation: row.incarnation, heartbeatAgoMs: Math.round(row.ago_ms) };
  }

  /** False when another process has registered under this node id since: this one must stop. */
  async heartbeat(node: string, incarnation: string, draining: boolean): Promise<boolean> {
    // A row deleted by hand is simply written again; one that names another incarnation is not.
    const result = await this.pool.query(
      `INSERT INTO ppos_nodes (node_id, incarnation, started_at, heartbeat_at, draining) VALUES ($1, $2, now(), now(), $3)
       ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now(), draining = ppos_nodes.draining OR $3
       WHERE ppos_nodes.incarnation = $2`,
      [node, incarnation, draining],
    );
    return result.rowCount === 1;
  }

  /** Nodes that heartbeated within `ttlMs` and are not draining, sorted. */
  async liveNodes(ttlMs: number): Promise<string[]> {
    const result = await this.pool.query(
      `SELECT node_id FROM ppos_nodes WHERE heartbeat_at > now() - make_interval(secs => $1::float8 / 1000) AND NOT draining ORDER BY node_id`,
      [ttlMs],
    );
    return result.rows.map((row) => row.node_id as string);
  }

  async leases(): Promise<Lease[]> {
    const result = await this.pool.query(
      `SELECT shard, owner, owner_incarnation, epoch, (extract(epoch FROM expires_at - now()) * 1000)::float8 AS remaining_ms
       FROM ppos_shard_leases ORDER BY shard`,
    );
    return result.rows.map((row) => ({
      shard: row.shard,
      owner: row.owner,
      ownerIncarnation: row.owner_incarnation,
      epoch: row.epoch,
      remainingMs: row.remaining_ms,
    }));
  }

  /**
   * Takes the shards that are free, expired, or held under this node id (a restarted node with
   * the same id takes its shards back at once) — the last only by the id's current incarnation,
   * so a process that another one replaced cannot take them back. Each taken shard's epoch
   * grows by one.
   */
  async acquire(node: string, incarnation: string, shards: readonly number[], ttlMs: number): Promise<GrantedLease[]> {
    if (shards.length === 0) return [];
    const result = await this.pool.query(
      `WITH locked AS MATERIALIZED (${LOCK_IN_ORDER})
       UPDATE ppos_shard_leases l
       SET owner = $1, owner_incarnation = $4, epoch = l.epoch + 1, expires_at = now() + make_interval(secs => $3::float8 / 1000)
       FROM locked WHERE l.shard = locked.shard
         AND EXISTS (SELECT 1 FROM ppos_nodes n WHERE n.node_id = $1 AND n.incarnation = $4)
         AND (l.owner IS NULL OR l.owner = $1 OR l.expires_at < now())
       RETURNING l.shard, l.epoch`,
      [node, shards, ttlMs, incarnation],
    );
    return result.rows.map((row) => ({ shard: row.shard, epoch: row.epoch }));
  }

  /** Extends leases this process still holds at the same epoch; a shard missing from the answer is lost. */
  async renew(node: string, incarnation: string, held: readonly GrantedLease[], ttlMs: number): Promise<GrantedLease[]> {
    if (held.length === 0) return [];
    const result = await this.pool.query(
      `WITH locked AS MATERIALIZED (${LOCK_IN_ORDER})
       UPDATE ppos_shard_leases l SET expires_at = now() + make_interval(secs => $4::float8 / 1000)
       FROM locked JOIN unnest($2::int[], $3::bigint[]) AS h(shard, epoch) ON h.shard = locked.shard
       WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1 AND l.owner_incarnation = $5
       RETURNING l.shard, l.epoch`,
      [node, held.map((l) => l.shard), held.map((l) => l.epoch), ttlMs, incarnation],
    );
    return result.rows.map((row) => ({ shard: row.shard, epoch: row.epoch }));
  }

  /** Gives a shard up at once (a clean handoff): the next owner need not wait for expiry. */
  async release(node: string, incarnation: string, leases: readonly GrantedLease[]): Promise<void> {
    if (leases.length === 0) return;
    await this.pool.query(
      `WITH locked AS MATERIALIZED (${LOCK_IN_ORDER})
       UPDATE ppos_shard_leases l SET owner = NULL, owner_incarnation = NULL, expires_at = now()
       FROM locked JOIN unnest($2::int[], $3::bigint[]) AS h(shard, epoch) ON h.shard = locked.shard
       WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1 AND l.owner_incarnation = $4`,
      [node, leases.map((l) => l.shard), leases.map((l) => l.epoch), incarnation],
    );
  }

  /** Leaves the member list, unless another process has taken the node id over meanwhile. */
  async leave(node: string, incarnation: string): Promise<void> {
    await this.pool.query('DELETE FROM ppos_nodes WHERE node_id = $1 AND incarnation = $2', [node, incarnation]);
  }
}
