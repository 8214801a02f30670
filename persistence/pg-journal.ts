// The journal in PostgreSQL. An append is one statement: the dedupe record goes in first
// and the event only joins it when the record was new, so a message already seen writes
// nothing, and the expected-seq check is the events' primary key. Many appends share one
// such statement (group commit) and so one round trip and one fsync.
import pg from 'pg';
import { GroupCommitter, type GroupCommitOptions } from './group-commit.js';
import {
  JournalUnavailableError,
  type ActorRef,
  type AppendRequest,
  type AppendResult,
  type AppendUnit,
  type UnitResult,
  type DedupeRecord,
  type Journal,
  type JournaledEvent,
  type StoredReply,
  type StoredSnapshot,
} from './journal.js';

const APPEND_SQL = `
WITH input AS (
  SELECT * FROM json_to_recordset($1::json) AS t(
    unit integer, ord integer, expected_seq bigint, kind text, actor_id text, message_id text, fingerprint text, reply json, seq bigint,
    event_type text, event_data jsonb, correlation_id text, causation_id text,
    machine_version integer, epoch bigint, shard integer, recorded_at timestamptz,
    settle_message_id text, settle_reply json)
), fence AS MATERIALIZED (
  -- FOR SHARE: an append either commits before a takeover bumps the shard's epoch (which waits
  -- for it), or sees the new epoch and writes nothing. A stale owner cannot append.
  -- In shard order, as every statement that locks lease rows does (leases.ts): locked in the
  -- order a scan met them, an append and a lease renewal deadlocked now and then under load,
  -- stalling every commit for the deadlock timeout (1 s) before one of them was cancelled.
  SELECT l.shard, l.epoch FROM ppos_shard_leases l WHERE l.shard IN (SELECT shard FROM input) ORDER BY l.shard FOR SHARE
), fenced AS (
  SELECT DISTINCT i.unit FROM input i LEFT JOIN fence f ON f.shard = i.shard
  WHERE NOT ((f.shard IS NULL AND i.epoch = 0) OR f.epoch IS NOT DISTINCT FROM i.epoch)
), seen AS (
  -- A unit is all or nothing: one of its message ids recorded before means none of it applies.
  SELECT i.unit, i.message_id FROM input i
  JOIN ppos_dedupe d ON d.kind = i.kind AND d.actor_id = i.actor_id AND d.message_id = i.message_id
), stale AS (
  -- The writer decided on state older than the journal (even a command that appends nothing,
  -- e.g. a rejection, must not be recorded on a stale view): reload and decide again.
  SELECT i.unit FROM input i
  WHERE i.ord = 0 AND EXISTS (SELECT 1 FROM ppos_events e WHERE e.kind = i.kind AND e.actor_id = i.actor_id AND e.seq = i.expected_seq + 1)
), allowed AS (
  SELECT i.* FROM input i
  WHERE i.unit NOT IN (SELECT unit FROM fenced) AND i.unit NOT IN (SELECT unit FROM seen) AND i.unit NOT IN (SELECT unit FROM stale)
), recorded AS (
  INSERT INTO ppos_dedupe (kind, actor_id, message_id, fingerprint, reply, seq, recorded_at)
  -- No ON CONFLICT: a message id recorded concurrently (after this statement's snapshot) fails
  -- the whole statement, so a unit is never half written; the retry then sees it as seen.
  SELECT kind, actor_id, message_id, fingerprint, reply, seq, recorded_at FROM allowed
  RETURNING kind, actor_id, message_id
), appended AS (
  INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, correlation_id, causation_id, machine_version, epoch, shard, recorded_at)
  SELECT i.kind, i.actor_id, i.seq, i.event_type, i.event_data, i.message_id, i.correlation_id, i.causation_id,
         i.machine_version, i.epoch, i.shard, i.recorded_at
  FROM allowed i JOIN recorded r USING (kind, actor_id, message_id)
  WHERE i.event_type IS NOT NULL
  ORDER BY i.unit, i.ord
  RETURNING 1
), settled AS (
  UPDATE ppos_dedupe d SET reply = i.settle_reply
  FROM allowed i JOIN recorded r USING (kind, actor_id, message_id)
  WHERE i.settle_message_id IS NOT NULL
    AND d.kind = i.kind AND d.actor_id = i.actor_id AND d.message_id = i.settle_message_id
  RETURNING 1
)
SELECT DISTINCT unit, 'fenced' AS outcome, NULL AS message_id FROM fenced
UNION ALL SELECT unit, 'seen', message_id FROM seen WHERE unit NOT IN (SELECT unit FROM fenced)
UNION ALL SELECT unit, 'stale', NULL FROM stale WHERE unit NOT IN (SELECT unit FROM fenced) AND unit NOT IN (SELECT unit FROM seen)`;

const EVENT_COLUMNS = 'seq, type, data, message_id, correlation_id, causation_id, machine_version, epoch, recorded_at';

// bigint columns (seq, epoch, position) stay far below 2^53: read them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (text) => Number.parseInt(text, 10));

export interface PgJournalOptions {
  readonly connectionString: string;
  readonly poolSize?: number;
  readonly groupCommit?: Partial<GroupCommitOptions>;
  /** Called for pool-level errors (an idle connection dropped); they must never crash a node. */
  readonly onPoolError?: (error: Error) => void;
}

interface PgError extends Error {
  code?: string;
  constraint?: string;
}

const isSqlError = (error: unknown): error is PgError =>
  error instanceof Error && typeof (error as PgError).code === 'string' && /^[0-9A-Z]{5}$/.test((error as PgError).code ?? '');

/**
 * A failure the server reported for the statement means it did not commit; a broken
 * connection (or a connection-class SQLSTATE) leaves the outcome of a sent commit unknown.
 */
function unavailable(error: unknown, statementSent: boolean): JournalUnavailableError {
  const definite = isSqlError(error) && !error.code!.startsWith('08');
  const message = error instanceof Error ? error.message : String(error);
  return new JournalUnavailableError(`journal unavailable: ${message}`, statementSent && !definite, { cause: error });
}

function eventRow(row: Record<string, unknown>): JournaledEvent {
  return {
    seq: row.seq as number,
    event: { ...(row.data as Record<string, unknown>), type: row.type as string },
    messageId: row.message_id as string,
    correlationId: (row.correlation_id as string | null) ?? null,
    causationId: (row.causation_id as string | null) ?? null,
    machineVersion: row.machine_version as number,
    epoch: row.epoch as number,
    recordedAt: row.recorded_at as Date,
  };
}

function unitRows(unit: AppendUnit, index: number): Record<string, unknown>[] {
  let seq = unit.expectedSeq;
  return unit.entries.map((entry, ord) => {
    const { type, ...data } = entry.event ?? { type: null };
    if (entry.event) seq += 1;
    return {
      unit: index,
      ord,
      expected_seq: unit.expectedSeq,
      kind: unit.ref.kind,
      actor_id: unit.ref.id,
      message_id: entry.messageId,
      fingerprint: entry.fingerprint,
      reply: entry.reply,
      seq,
      event_type: type,
      event_data: entry.event ? data : null,
      correlation_id: entry.correlationId ?? null,
      causation_id: entry.causationId ?? null,
      machine_version: unit.machineVersion,
      epoch: unit.epoch,
      shard: unit.shard,
      recorded_at: entry.recordedAt.toISOString(),
      settle_message_id: entry.settles?.messageId ?? null,
      settle_reply: entry.settles?.reply ?? null,
    };
  });
}

export class PgJournal implements Journal {
  readonly pool: pg.Pool;
  private readonly committer: GroupCommitter<AppendUnit, UnitResult>;

  constructor(options: PgJournalOptions) {
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolSize ?? 8,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'ppos',
      // Statements are prepared by name (parsed once per connection), but always planned for
      // the batch at hand: after five runs PostgreSQL would otherwise switch the append to a
      // generic plan chosen while the tables were small, and keep it as they grow. Measured
      // here: that cached plan made a 32-row append take 12 ms instead of 3 (bench, hot SKU).
      // A startup option (PostgreSQL 12 or later), added to PGOPTIONS rather than replacing it;
      // an `options` parameter in the database URL takes the place of both.
      options: [process.env.PGOPTIONS, '-c plan_cache_mode=force_custom_plan'].filter(Boolean).join(' '),
    });
    this.pool.on('error', (error) => options.onPoolError?.(error));
    // The pool hands a client over with no 'error' listener until its borrower adds one, a
    // microtask later: a FATAL error in the same socket read as the end of the connection's
    // startup (pg_terminate_backend, an admin restart) would be emitted to nobody and crash the
    // node. Every client listens from birth; its borrower still sees the failure (not queryable).
    this.pool.on('connect', (client) => client.on('error', (error) => options.onPoolError?.(error)));
    this.committer = new GroupCommitter((batch) => this.flush(batch), {
      maxBatch: options.groupCommit?.maxBatch ?? 256,
      maxInFlight: options.groupCommit?.maxInFlight ?? 4,
      lingerMs: options.groupCommit?.lingerMs ?? 0,
    });
  }

  async append(request: AppendRequest): Promise<AppendResult> {
    const { ref, expectedSeq, machineVersion, epoch, shard, ...entry } = request;
    const result = await this.appendUnit({ ref, expectedSeq, machineVersion, epoch, shard, entries: [entry] });
    if (result.status !== 'duplicate') return result;
    return { status: 'duplicate', record: result.records[0]! };
  }

  appendUnit(unit: AppendUnit): Promise<UnitResult> {
    return this.committer.submit(unit);
  }

  private async flush(batch: readonly AppendUnit[]): Promise<(UnitResult | Error)[]> {
    try {
      return await this.appendTogether(batch);
    } catch (error) {
      if (!(isSqlError(error) && error.code !== undefined && !error.code.startsWith('08'))) {
        return batch.map(() => (error instanceof JournalUnavailableError ? error : unavailable(error, true)));
      }
      // The statement failed as a whole and wrote nothing; when several actors shared it,
      // try each alone so one actor's conflict fails only that actor's append.
      const results: (UnitResult | Error)[] = [];
      for (const unit of batch) results.push(await this.appendAlone(unit, batch.length === 1 ? error : undefined));
      return results;
    }
  }

  /** One unit on its own statement (after `failed`, if it already failed alone once). */
  private async appendAlone(unit: AppendUnit, failed?: unknown): Promise<UnitResult | Error> {
    let error = failed;
    // A message id recorded by a commit that landed after the statement's snapshot fails it on
    // the dedupe key: once more, and the statement sees that id as a repeat.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (error !== undefined && !(isSqlError(error) && error.code === '23505' && error.constraint === 'ppos_dedupe_pkey')) break;
      try {
        return (await this.appendTogether([unit]))[0]!;
      } catch (single) {
        error = single;
      }
    }
    return this.classifySingleFailure(error);
  }

  private classifySingleFailure(error: unknown): UnitResult | Error {
    if (isSqlError(error) && error.code === '23505') {
      if (error.constraint === 'ppos_events_pkey') return { status: 'conflict' };
      if (error.constraint === 'ppos_events_message_id') return { status: 'expired-id' };
    }
    return unavailable(error, true);
  }

  private async appendTogether(batch: readonly AppendUnit[]): Promise<UnitResult[]> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw unavailable(error, false);
    }
    let rows: { unit: number; outcome: 'fenced' | 'seen' | 'stale'; message_id: string | null }[];
    let broken: unknown;
    // A checked-out client has no pool listener: a connection reset mid-query would be an
    // unhandled 'error' event and take the whole node down. The query itself rejects too.
    const onError = (error: Error): void => {
      broken ??= error;
    };
    client.on('error', onError);
    try {
      const result = await client.query({ name: 'ppos_append', text: APPEND_SQL, values: [JSON.stringify(batch.flatMap(unitRows))] });
      rows = result.rows;
    } catch (error) {
      if (!isSqlError(error) || error.code!.startsWith('08')) broken = error;
      throw error;
    } finally {
      client.off('error', onError);
      client.release(broken instanceof Error ? broken : undefined);
    }
    // Only what did not commit comes back: fenced units, and message ids recorded before.
    const fenced = new Set<number>();
    const stale = new Set<number>();
    const repeats = new Map<number, string[]>();
    for (const row of rows) {
      if (row.outcome === 'fenced') fenced.add(row.unit);
      else if (row.outcome === 'stale') stale.add(row.unit);
      else repeats.set(row.unit, [...(repeats.get(row.unit) ?? []), row.message_id!]);
    }
    const results: UnitResult[] = [];
    for (const [index, unit] of batch.entries()) {
      if (fenced.has(index)) {
        results.push({ status: 'fenced' });
        continue;
      }
      if (stale.has(index)) {
        results.push({ status: 'conflict' });
        continue;
      }
      const repeated = repeats.get(index);
      if (!repeated) {
        results.push({ status: 'committed' });
        continue;
      }
      const records: DedupeRecord[] = [];
      for (const messageId of repeated) {
        const record = await this.findDedupe(unit.ref, messageId);
        if (!record) throw new JournalUnavailableError('dedupe record vanished between insert and read', false);
        records.push(record);
      }
      results.push({ status: 'duplicate', records });
    }
    return results;
  }

  private async query(text: string, values: unknown[]): Promise<pg.QueryResult> {
    try {
      return await this.pool.query(text, values);
    } catch (error) {
      throw isSqlError(error) && !error.code!.startsWith('08') ? error : unavailable(error, false);
    }
  }

  async readEvents(ref: ActorRef, afterSeq: number, toSeq = Number.MAX_SAFE_INTEGER): Promise<JournaledEvent[]> {
    const events: JournaledEvent[] = [];
    // Paged so a 100k-event actor never needs one huge result set.
    const page = 10_000;
    let from = afterSeq;
    for (;;) {
      const result = await this.query(
        `SELECT ${EVENT_COLUMNS} FROM ppos_events WHERE kind = $1 AND actor_id = $2 AND seq > $3 AND seq <= $4 ORDER BY seq LIMIT $5`,
        [ref.kind, ref.id, from, toSeq, page],
      );
      for (const row of result.rows) events.push(eventRow(row));
      if (result.rows.length < page) return events;
      from = events[events.length - 1]!.seq;
    }
  }

  async headSeq(ref: ActorRef): Promise<number> {
    const result = await this.query('SELECT coalesce(max(seq), 0) AS seq FROM ppos_events WHERE kind = $1 AND actor_id = $2', [ref.kind, ref.id]);
    return result.rows[0].seq as number;
  }

  async snapshots(ref: ActorRef, machineVersion: number, atOrBeforeSeq = Number.MAX_SAFE_INTEGER, limit = 3): Promise<StoredSnapshot[]> {
    const result = await this.query(
      `SELECT seq, machine_version, state, hash FROM ppos_snapshots
       WHERE kind = $1 AND actor_id = $2 AND machine_version = $3 AND seq <= $4 ORDER BY seq DESC LIMIT $5`,
      [ref.kind, ref.id, machineVersion, atOrBeforeSeq, limit],
    );
    return result.rows.map((row) => ({ seq: row.seq, machineVersion: row.machine_version, state: row.state, hash: row.hash }));
  }

  async saveSnapshot(ref: ActorRef, snapshot: StoredSnapshot): Promise<void> {
    await this.query(
      `INSERT INTO ppos_snapshots (kind, actor_id, seq, machine_version, state, hash) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT DO NOTHING`,
      [ref.kind, ref.id, snapshot.seq, snapshot.machineVersion, JSON.stringify(snapshot.state), snapshot.hash],
    );
  }

  async findDedupe(ref: ActorRef, messageId: string): Promise<DedupeRecord | null> {
    const result = await this.query('SELECT fingerprint, reply, seq FROM ppos_dedupe WHERE kind = $1 AND actor_id = $2 AND message_id = $3', [
      ref.kind,
      ref.id,
      messageId,
    ]);
    const row = result.rows[0];
    return row ? { messageId, fingerprint: row.fingerprint, reply: row.reply as StoredReply, seq: row.seq } : null;
  }

  async listActors(kind?: string): Promise<ActorRef[]> {
    const result = await this.query(
      `SELECT kind, actor_id FROM ppos_events WHERE $1::text IS NULL OR kind = $1 GROUP BY kind, actor_id
       UNION SELECT kind, actor_id FROM ppos_dedupe WHERE $1::text IS NULL OR kind = $1 GROUP BY kind, actor_id
       ORDER BY kind, actor_id`,
      [kind ?? null],
    );
    return result.rows.map((row) => ({ kind: row.kind, id: row.actor_id }));
  }

  async noteDuplicate(ref: ActorRef, messageId: string): Promise<void> {
    await this.query('UPDATE ppos_dedupe SET duplicates = duplicates + 1 WHERE kind = $1 AND actor_id = $2 AND message_id = $3', [
      ref.kind,
      ref.id,
      messageId,
    ]);
  }

  async duplicatesAnswered(): Promise<number> {
    const result = await this.query('SELECT coalesce(sum(duplicates), 0)::bigint AS n FROM ppos_dedupe', []);
    return result.rows[0].n as number;
  }

  async openSagas(): Promise<ActorRef[]> {
    const result = await this.query(
      `SELECT DISTINCT kind, actor_id FROM ppos_dedupe WHERE (reply->>'pending') = 'true' ORDER BY kind, actor_id`,
      [],
    );
    return result.rows.map((row) => ({ kind: row.kind, id: row.actor_id }));
  }

  async pruneDedupe(olderThanHours: number): Promise<number> {
    // A record still waiting for its saga to settle is never pruned.
    const result = await this.query(
      `DELETE FROM ppos_dedupe WHERE recorded_at < now() - make_interval(hours => $1) AND (reply->>'pending') IS DISTINCT FROM 'true'`,
      [olderThanHours],
    );
    return result.rowCount ?? 0;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

