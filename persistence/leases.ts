// Shard leases and node membership in PostgreSQL. Every lease carries an epoch (fencing
// token) that only grows; the journal refuses an append whose epoch is not the shard's
// current one (pg-journal.ts), so a paused or partitioned node can never append, whatever its
// clock says. Expiry is judged by the database's clock alone.
//
// With the journal over several databases (database-layout.ts) a shard's lease row lives in its
// own database, beside the events its fencing guards; membership (ppos_nodes) lives in the
// first. A statement never spans two databases, and a database that does not answer costs only
// its own shards: the others are renewed, read and taken as usual.
import type pg from 'pg';
import { groupByDatabase, recordLayout, shardsOfDatabase, type DatabaseLayout } from './database-layout.js';
import { askEach, someAnswered, withinMs } from './time-limit.js';

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

export interface RenewResult {
  /** Extended at the same epoch. A held shard in neither list was lost. */
  readonly renewed: GrantedLease[];
  /** Shards whose database did not answer: neither extended nor known lost. */
  readonly unanswered: number[];
}

/** Where leases and membership live: one pool for everything, or the journal's databases in layout order. */
export interface LeaseDatabases {
  /** ppos_nodes: the first database. */
  readonly membership: pg.Pool;
  /** The databases of the journal in layout order; shard s's lease row is in databaseOfShard(s). */
  readonly journals: readonly pg.Pool[];
}

/**
 * Locks the lease rows of the shards in $2 (an int[]) in shard order, before an UPDATE changes
 * them. Appends lock the same rows FOR SHARE in shard order too (pg-journal.ts); statements that
 * lock them in whatever order a scan meets them can deadlock each other.
 */
const LOCK_IN_ORDER = 'SELECT shard FROM ppos_shard_leases WHERE shard = ANY($2::int[]) ORDER BY shard FOR NO KEY UPDATE';

export class LeaseStore {
  private readonly membership: pg.Pool;
  private readonly journals: readonly pg.Pool[];
  private readonly answerWithinMs: number;
  private shardCount = 0;

  /**
   * `answerWithinMs`: with several databases, how long one may take to answer a lease or
   * membership statement before it counts as not answering (shorter than a lease's safety
   * margin, so a silent database cannot hold up the renewal of the others' shards).
   */
  constructor(databases: pg.Pool | LeaseDatabases, options: { answerWithinMs?: number } = {}) {
    const split = 'membership' in databases ? databases : { membership: databases, journals: [databases] };
    this.membership = split.membership;
    this.journals = split.journals;
    this.answerWithinMs = options.answerWithinMs ?? 2_000;
  }

  /**
   * The time limit each database gets, with several (a silent one must not hold up the others');
   * none with one: there are no others, and a slow answer is better than none.
   */
  private get limitMs(): number | undefined {
    return this.journals.length > 1 ? this.answerWithinMs : undefined;
  }

  /** A statement on the membership database. */
  private member(sql: string, values: unknown[]): Promise<pg.QueryResult> {
    const query = this.membership.query(sql, values);
    return this.limitMs === undefined ? query : withinMs(this.limitMs, query, 'the first database');
  }

  private get layout(): DatabaseLayout {
    if (this.shardCount === 0) throw new Error('LeaseStore: ensureShards first');
    return { databases: this.journals.length, shards: this.shardCount };
  }

  /** Leases or shards grouped by the database their rows live in. */
  private byDatabase<T extends { readonly shard: number }>(items: readonly T[]): Map<number, T[]> {
    return groupByDatabase(items, this.layout, (item) => item.shard);
  }

  /**
   * Checks (or records, the first time) every database's place in the layout, then creates the
   * lease rows of the shards each holds. Refuses another shard count, list or order of databases.
   */
  async ensureShards(shardCount: number): Promise<void> {
    await recordLayout(this.journals, shardCount);
    this.shardCount = shardCount;
    const layout = this.layout;
    for (const [index, pool] of this.journals.entries()) {
      await pool.query(
        'INSERT INTO ppos_shard_leases (shard, owner, epoch, expires_at) SELECT s, NULL, 0, now() FROM unnest($1::int[]) s ON CONFLICT DO NOTHING',
        [shardsOfDatabase(index, layout)],
      );
    }
  }

  /**
   * Makes this process the node id's one incarnation, not draining (a node restarted after a
   * crash mid-drain takes shards again). A process still running under the same id is fenced
   * out: its heartbeats, renewals and acquisitions no longer match (see `heartbeat`).
   * Returns the incarnation it replaced, if that one heartbeated within `ttlMs`.
   */
  async register(node: string, incarnation: string, ttlMs: number): Promise<{ incarnation: string; heartbeatAgoMs: number } | null> {
    const result = await this.member(
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
    const result = await this.member(
      `INSERT INTO ppos_nodes (node_id, incarnation, started_at, heartbeat_at, draining) VALUES ($1, $2, now(), now(), $3)
       ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now(), draining = ppos_nodes.draining OR $3
       WHERE ppos_nodes.incarnation = $2`,
      [node, incarnation, draining],
    );
    return result.rowCount === 1;
  }

  /** Nodes that heartbeated within `ttlMs` and are not draining, sorted. */
  async liveNodes(ttlMs: number): Promise<string[]> {
    const result = await this.member(
      `SELECT node_id FROM ppos_nodes WHERE heartbeat_at > now() - make_interval(secs => $1::float8 / 1000) AND NOT draining ORDER BY node_id`,
      [ttlMs],
    );
    return result.rows.map((row) => row.node_id as string);
  }

  /** The lease rows of every database that answered, by shard; a database that did not leaves its shards out. */
  async leases(): Promise<Lease[]> {
    const each = await askEach(
      this.journals,
      (pool) =>
        pool.query(
          `SELECT shard, owner, owner_incarnation, epoch, (extract(epoch FROM expires_at - now()) * 1000)::float8 AS remaining_ms
           FROM ppos_shard_leases ORDER BY shard`,
        ),
      this.limitMs,
    );
    return someAnswered(each)
      .flatMap((result) => result.rows)
      .map((row) => ({
        shard: row.shard,
        owner: row.owner,
        ownerIncarnation: row.owner_incarnation,
        epoch: row.epoch,
        remainingMs: row.remaining_ms,
      }))
      .sort((a, b) => a.shard - b.shard);
  }

  /**
   * Takes the shards that are free, expired, or held under this node id (a restarted node with
   * the same id takes its shards back at once) — the last only by the id's current incarnation,
   * so a process that another one replaced cannot take them back. Each taken shard's epoch
   * grows by one. In the first database the incarnation is checked in the same statement; in
   * the others (ppos_nodes is not there) just before: a process replaced in between may take a
   * shard back once, and loses it at its next heartbeat. The epoch fences it either way.
   * Shards of a database that does not answer are not taken (the others are).
   */
  async acquire(node: string, incarnation: string, shards: readonly number[], ttlMs: number): Promise<GrantedLease[]> {
    if (shards.length === 0) return [];
    const groups = this.byDatabase(shards.map((shard) => ({ shard })));
    const elsewhere = [...groups.keys()].some((index) => index > 0);
    const member = elsewhere
      ? ((await this.member('SELECT 1 FROM ppos_nodes WHERE node_id = $1 AND incarnation = $2', [node, incarnation])).rowCount ?? 0) > 0
      : false;
    return this.inEachDatabase(groups, async (pool, group, index) => {
      if (index > 0 && !member) return [];
      const result = await pool.query(
        `WITH locked AS MATERIALIZED (${LOCK_IN_ORDER})
         UPDATE ppos_shard_leases l
         SET owner = $1, owner_incarnation = $4, epoch = l.epoch + 1, expires_at = now() + make_interval(secs => $3::float8 / 1000)
         FROM locked WHERE l.shard = locked.shard
           AND ($5::boolean OR EXISTS (SELECT 1 FROM ppos_nodes n WHERE n.node_id = $1 AND n.incarnation = $4))
           AND (l.owner IS NULL OR l.owner = $1 OR l.expires_at < now())
         RETURNING l.shard, l.epoch`,
        [node, group.map((g) => g.shard), ttlMs, incarnation, index > 0],
      );
      return result.rows.map((row) => ({ shard: row.shard as number, epoch: row.epoch as number }));
    }).then(({ results }) => results);
  }

  /**
   * Extends leases this process still holds at the same epoch; see RenewResult. `onAnswer` hears
   * each database's renewals as soon as that database answers: a slow one must not hold up
   * the use of the others'.
   */
  async renew(node: string, incarnation: string, held: readonly GrantedLease[], ttlMs: number, onAnswer?: (renewed: GrantedLease[]) => void): Promise<RenewResult> {
    if (held.length === 0) return { renewed: [], unanswered: [] };
    const groups = this.byDatabase(held);
    const { results, failed } = await this.inEachDatabase(
      groups,
      async (pool, group) => {
        const result = await pool.query(
          `WITH locked AS MATERIALIZED (${LOCK_IN_ORDER})
           UPDATE ppos_shard_leases l SET expires_at = now() + make_interval(secs => $4::float8 / 1000)
           FROM locked JOIN unnest($2::int[], $3::bigint[]) AS h(shard, epoch) ON h.shard = locked.shard
           WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1 AND l.owner_incarnation = $5
           RETURNING l.shard, l.epoch`,
          [node, group.map((l) => l.shard), group.map((l) => l.epoch), ttlMs, incarnation],
        );
        const renewed = result.rows.map((row) => ({ shard: row.shard as number, epoch: row.epoch as number }));
        onAnswer?.(renewed);
        return renewed;
      },
      { throwWhenAllFail: false },
    );
    return { renewed: results, unanswered: failed.flatMap((index) => groups.get(index)!.map((l) => l.shard)) };
  }

  /** Gives a shard up at once (a clean handoff): the next owner need not wait for expiry. Throws only when no database answered. */
  async release(node: string, incarnation: string, leases: readonly GrantedLease[]): Promise<void> {
    if (leases.length === 0) return;
    await this.inEachDatabase(this.byDatabase(leases), async (pool, group) => {
      await pool.query(
        `WITH locked AS MATERIALIZED (${LOCK_IN_ORDER})
         UPDATE ppos_shard_leases l SET owner = NULL, owner_incarnation = NULL, expires_at = now()
         FROM locked JOIN unnest($2::int[], $3::bigint[]) AS h(shard, epoch) ON h.shard = locked.shard
         WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1 AND l.owner_incarnation = $4`,
        [node, group.map((l) => l.shard), group.map((l) => l.epoch), incarnation],
      );
      return [];
    });
    // The leases of a database that did not answer expire on their own; the others were released.
  }

  /**
   * Runs `work` on each database's group at once. A database that fails leaves its results out
   * (and is named in `failed`); when every database failed, the first error is thrown.
   */
  private async inEachDatabase<T extends { readonly shard: number }, R>(
    groups: ReadonlyMap<number, T[]>,
    work: (pool: pg.Pool, group: T[], index: number) => Promise<R[]>,
    { throwWhenAllFail = true } = {},
  ): Promise<{ results: R[]; failed: number[] }> {
    const indexes = [...groups.keys()];
    const each = await askEach(indexes, (index) => work(this.journals[index]!, groups.get(index)!, index), this.limitMs);
    return { results: (throwWhenAllFail ? someAnswered(each) : each.answers).flat(), failed: each.failed.map((i) => indexes[i]!) };
  }

  /** Leaves the member list, unless another process has taken the node id over meanwhile. */
  async leave(node: string, incarnation: string): Promise<void> {
    await this.member('DELETE FROM ppos_nodes WHERE node_id = $1 AND incarnation = $2', [node, incarnation]);
  }
}
