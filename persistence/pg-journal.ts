// The journal in PostgreSQL. An append is one statement: the dedupe record goes in first
// and the event only joins it when the record was new, so a message already seen writes
// nothing, and the expected-seq check is the events' primary key. Many appends share one
// such statement (group commit) and so one round trip and one fsync.
import pg from 'pg';
import { withVersion } from '../actors/event-version.js';
import type { DomainEvent, TimerSpec } from '../actors/kind.js';
import { GroupCommitter, type GroupCommitOptions } from './group-commit.js';
import { PlanFreshness } from './plan-freshness.js';
import { JOURNAL_TYPES } from './pg-types.js';
import {
  JournalUnavailableError,
  type ActorRef,
  type AppendRequest,
  type AppendResult,
  type AppendUnit,
  type UnitResult,
  type DueTimer,
  type DedupeRecord,
  type Journal,
  type JournaledEvent,
  type StoredReply,
  type StoredSnapshot,
} from './journal.js';

/**
 * The event a recorded reply answered with (a successful reply that listed events: its last one,
 * at the reply's seq), joined as `e` to a dedupe row `d`: its place in the read order is the
 * commit token a repeat of the command carries, the same as the first reply's.
 */
const REPLY_EVENT_JOIN = `LEFT JOIN ppos_events e ON e.kind = d.kind AND e.actor_id = d.actor_id
    AND e.seq = (d.reply->>'seq')::bigint AND (d.reply->>'ok') = 'true' AND json_array_length(coalesce(d.reply->'events', '[]'::json)) > 0`;

const APPEND_SQL = `
WITH input AS (
  SELECT * FROM json_to_recordset($1::json) AS t(
    unit integer, ord integer, expected_seq bigint, kind text, actor_id text, message_id text, fingerprint text, reply json, seq bigint,
    event_type text, event_data jsonb, event_version smallint, correlation_id text, causation_id text, traceparent text,
    machine_version integer, epoch bigint, shard integer, recorded_at timestamptz, id_time timestamptz,
    settle_message_id text, settle_reply json, facts_absent text[], facts text[], timers_set json, timers_clear text[])
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
  -- The record comes back with the outcome, so a repeat is answered without a second read.
  -- With the place of the event its reply answered with, for the repeat's commit token.
  SELECT i.unit, i.message_id, d.fingerprint, d.reply, d.seq, e.tx::text AS tx, e.position FROM input i
  JOIN ppos_dedupe d ON d.kind = i.kind AND d.actor_id = i.actor_id AND d.message_id = i.message_id
  ${REPLY_EVENT_JOIN}
), expired AS (
  -- Dedupe retention pruned every record whose id's time is below this horizon: a message id
  -- from before it, not found, may be a repeat whose record is gone. Refused, never decided again.
  SELECT DISTINCT i.unit FROM input i
  JOIN ppos_cluster h ON h.key = 'dedupe_pruned_before'
  WHERE i.id_time < to_timestamp(h.value::float8 / 1000) AND i.unit NOT IN (SELECT unit FROM seen)
), contradicted AS (
  -- The decision took a fact to be absent that the journal holds: decide again, knowing it.
  -- One probe of the facts' primary key per key, equality on all three columns, as a scalar
  -- subquery the planner cannot turn into a join: "key = ANY" of a row's array, or a join,
  -- were planned as a scan of every fact of the actor, slower with each consumed reservation.
  SELECT DISTINCT i.unit FROM input i
  WHERE cardinality(i.facts_absent) > 0
    AND EXISTS (
      SELECT 1 FROM unnest(i.facts_absent) AS a(key)
      WHERE (SELECT true FROM ppos_event_facts f WHERE f.kind = i.kind AND f.actor_id = i.actor_id AND f.key = a.key))
), stale AS (
  -- The writer decided on state older than the journal (even a command that appends nothing,
  -- e.g. a rejection, must not be recorded on a stale view): reload and decide again.
  -- Written as the first event after the expected seq in the events' primary key order (seqs
  -- are dense, so that is the one at expected_seq + 1): only the primary key serves that order,
  -- so no plan can take the message-id index, which shares its first two columns. A generic plan
  -- made without statistics did, and scanned all of the actor's events for every unit.
  SELECT i.unit FROM input i
  WHERE i.ord = 0 AND (
    SELECT e.seq FROM ppos_events e WHERE e.kind = i.kind AND e.actor_id = i.actor_id AND e.seq > i.expected_seq
    ORDER BY e.kind, e.actor_id, e.seq LIMIT 1) IS NOT NULL
), allowed AS (
  SELECT i.* FROM input i
  WHERE i.unit NOT IN (SELECT unit FROM fenced) AND i.unit NOT IN (SELECT unit FROM seen)
    AND i.unit NOT IN (SELECT unit FROM expired) AND i.unit NOT IN (SELECT unit FROM stale)
    AND i.unit NOT IN (SELECT unit FROM contradicted)
), recorded AS (
  INSERT INTO ppos_dedupe (kind, actor_id, message_id, fingerprint, reply, seq, recorded_at, id_time)
  -- No ON CONFLICT: a message id recorded concurrently (after this statement's snapshot) fails
  -- the whole statement, so a unit is never half written; the retry then sees it as seen.
  SELECT kind, actor_id, message_id, fingerprint, reply, seq, recorded_at, id_time FROM allowed
  RETURNING kind, actor_id, message_id
), appended AS (
  INSERT INTO ppos_events (kind, actor_id, seq, type, data, event_version, message_id, correlation_id, causation_id, traceparent, machine_version, epoch, shard, recorded_at)
  SELECT i.kind, i.actor_id, i.seq, i.event_type, i.event_data, i.event_version, i.message_id, i.correlation_id, i.causation_id, i.traceparent,
         i.machine_version, i.epoch, i.shard, i.recorded_at
  FROM allowed i JOIN recorded r USING (kind, actor_id, message_id)
  WHERE i.event_type IS NOT NULL
  ORDER BY i.unit, i.ord
  RETURNING kind, actor_id, message_id, position
), established AS (
  INSERT INTO ppos_event_facts (kind, actor_id, key, seq)
  SELECT i.kind, i.actor_id, f.key, i.seq FROM allowed i JOIN recorded r USING (kind, actor_id, message_id)
  CROSS JOIN unnest(i.facts) AS f(key)
  WHERE i.event_type IS NOT NULL
  -- A fact is true once and for ever: established again, it stays as it was (verify compares).
  ON CONFLICT DO NOTHING
  RETURNING 1
), timers_cleared AS (
  -- Timers the events made moot; each probed by its whole key.
  DELETE FROM ppos_timers t
  USING (SELECT i.kind, i.actor_id, c.key FROM allowed i JOIN recorded r USING (kind, actor_id, message_id)
         CROSS JOIN unnest(i.timers_clear) AS c(key) WHERE i.event_type IS NOT NULL) gone
  WHERE t.kind = gone.kind AND t.actor_id = gone.actor_id AND t.key = gone.key
  RETURNING 1
), timers_set AS (
  -- Timers the events set, in the same commit (a unit's changes are netted per key first,
  -- so no key is both set and cleared here).
  INSERT INTO ppos_timers (kind, actor_id, key, shard, set_seq, due_at, command)
  SELECT i.kind, i.actor_id, t.key, i.shard, i.seq, to_timestamp(t.due_at / 1000.0), t.command
  FROM allowed i JOIN recorded r USING (kind, actor_id, message_id)
  CROSS JOIN json_to_recordset(i.timers_set) AS t(key text, due_at float8, command jsonb)
  WHERE i.event_type IS NOT NULL
  ON CONFLICT (kind, actor_id, key) DO UPDATE SET shard = EXCLUDED.shard, set_seq = EXCLUDED.set_seq, due_at = EXCLUDED.due_at, command = EXCLUDED.command
  RETURNING 1
), settled AS (
  UPDATE ppos_dedupe d SET reply = i.settle_reply
  FROM allowed i JOIN recorded r USING (kind, actor_id, message_id)
  WHERE i.settle_message_id IS NOT NULL
    AND d.kind = i.kind AND d.actor_id = i.actor_id AND d.message_id = i.settle_message_id
  RETURNING 1
)
SELECT unit, 'fenced' AS outcome, NULL AS message_id, NULL AS fingerprint, NULL::json AS reply, NULL::bigint AS seq, NULL AS tx, NULL::bigint AS position,
       NULL AS kind, NULL AS actor_id FROM fenced
UNION ALL SELECT unit, 'seen', message_id, fingerprint, reply, seq, tx, position, NULL, NULL FROM seen WHERE unit NOT IN (SELECT unit FROM fenced)
UNION ALL SELECT unit, 'expired', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM expired WHERE unit NOT IN (SELECT unit FROM fenced)
UNION ALL SELECT unit, 'stale', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM stale
  WHERE unit NOT IN (SELECT unit FROM fenced) AND unit NOT IN (SELECT unit FROM seen) AND unit NOT IN (SELECT unit FROM expired)
UNION ALL SELECT unit, 'facts', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM contradicted
  WHERE unit NOT IN (SELECT unit FROM fenced) AND unit NOT IN (SELECT unit FROM seen) AND unit NOT IN (SELECT unit FROM expired)
    AND unit NOT IN (SELECT unit FROM stale)
-- Where each appended event stands in the journal's read order (transaction id, position):
-- the commit token its command's reply carries, which a query can wait for (read-your-writes).
-- The unit an event belongs to is found by the caller from its actor and message id: joined
-- here, two CTEs without statistics were joined by a nested loop, n² comparisons (10 ms for a
-- 256-command batch).
UNION ALL SELECT NULL, 'event', a.message_id, NULL, NULL, NULL, pg_current_xact_id()::text, a.position, a.kind, a.actor_id
  FROM appended a`;

const EVENT_COLUMNS = 'seq, type, data, event_version, message_id, correlation_id, causation_id, traceparent, machine_version, epoch, recorded_at';


export interface PgJournalOptions {
  readonly connectionString: string;
  readonly poolSize?: number;
  readonly groupCommit?: Partial<GroupCommitOptions>;
  /** Called for pool-level errors (an idle connection dropped); they must never crash a node. */
  readonly onPoolError?: (error: Error) => void;
  /** How long to look for the outcome of a commit whose connection broke (default 10 s). */
  readonly outcomeLookupMs?: number;
}

interface PgError extends Error {
  code?: string;
  constraint?: string;
}

const isSqlError = (error: unknown): error is PgError =>
  error instanceof Error && typeof (error as PgError).code === 'string' && /^[0-9A-Z]{5}$/.test((error as PgError).code ?? '');

/**
 * Whether a failure of a statement that was sent leaves its outcome unknown. The server reporting
 * an error for the statement means it did not commit — except when it reports that it is
 * shutting this connection down (57P01 admin shutdown, 57P02 crash shutdown: pg_terminate_backend,
 * a restart), which can come after the commit. A broken connection (08xxx, or no SQLSTATE at all:
 * a reset socket) never tells.
 */
function outcomeUnknown(error: unknown): boolean {
  if (!isSqlError(error)) return true;
  const code = error.code!;
  return code.startsWith('08') || code === '57P01' || code === '57P02';
}

/** A statement sent, whose commit may or may not have landed; `backendPid` ran it. */
class CommitOutcomeUnknown extends Error {
  constructor(
    readonly backendPid: number | undefined,
    readonly failure: unknown,
  ) {
    super(failure instanceof Error ? failure.message : String(failure));
  }
}

/** The journal could not be reached before anything was sent: certainly not committed. */
function notReached(error: unknown): JournalUnavailableError {
  const message = error instanceof Error ? error.message : String(error);
  return new JournalUnavailableError(`journal unavailable: ${message}`, false, { cause: error });
}

function eventRow(row: Record<string, unknown>): JournaledEvent {
  return {
    seq: row.seq as number,
    event: withVersion({ ...(row.data as Record<string, unknown>), type: row.type as string }, row.event_version as number | null),
    messageId: row.message_id as string,
    correlationId: (row.correlation_id as string | null) ?? null,
    causationId: (row.causation_id as string | null) ?? null,
    traceparent: (row.traceparent as string | null) ?? null,
    machineVersion: row.machine_version as number,
    epoch: row.epoch as number,
    recordedAt: row.recorded_at as Date,
  };
}

/**
 * Each timer key's last change in the unit, at the entry that made it: a hold set and closed in
 * one unit writes nothing, one closed and set again is set.
 */
function nettedTimers(unit: AppendUnit): { set: TimerSpec[]; clear: string[] }[] {
  const last = new Map<string, { ord: number; set: TimerSpec | null }>();
  unit.entries.forEach((entry, ord) => {
    for (const key of entry.timers?.clear ?? []) last.set(key, { ord, set: null });
    for (const timer of entry.timers?.set ?? []) last.set(timer.key, { ord, set: timer });
  });
  const byEntry = unit.entries.map(() => ({ set: [] as TimerSpec[], clear: [] as string[] }));
  for (const [key, change] of last) {
    if (change.set) byEntry[change.ord]!.set.push(change.set);
    else byEntry[change.ord]!.clear.push(key);
  }
  return byEntry;
}

function unitRows(unit: AppendUnit, index: number): Record<string, unknown>[] {
  let seq = unit.expectedSeq;
  const timers = nettedTimers(unit);
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
      event_version: entry.event && entry.eventVersion !== undefined && entry.eventVersion !== 1 ? entry.eventVersion : null,
      correlation_id: entry.correlationId ?? null,
      causation_id: entry.causationId ?? null,
      traceparent: entry.traceparent ?? null,
      machine_version: unit.machineVersion,
      epoch: unit.epoch,
      shard: unit.shard,
      recorded_at: entry.recordedAt.toISOString(),
      id_time: entry.idTime?.toISOString() ?? null,
      settle_message_id: entry.settles?.messageId ?? null,
      settle_reply: entry.settles?.reply ?? null,
      facts_absent: entry.factsAssumedAbsent ?? [],
      facts: entry.factsEstablished ?? [],
      timers_set: timers[ord]!.set.map((t) => {
        // Deadlines are whole milliseconds (the timer's id and the stored time agree exactly).
        if (!Number.isSafeInteger(t.dueAt)) throw new Error(`${unit.ref.kind}/${unit.ref.id}: timer ${t.key} is due at ${t.dueAt}, not a whole millisecond`);
        return { key: t.key, due_at: t.dueAt, command: t.command };
      }),
      timers_clear: timers[ord]!.clear,
    };
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface AppendOutcomeRow {
  /** Null for an appended event: found from its actor and message id (`unitOfEvent`). */
  readonly unit: number | null;
  readonly outcome: 'fenced' | 'seen' | 'expired' | 'stale' | 'facts' | 'event';
  readonly message_id: string | null;
  readonly fingerprint: string | null;
  readonly reply: StoredReply | null;
  readonly seq: number | null;
  /** Of an appended event, or of the event a recorded reply answered with. */
  readonly tx: string | null;
  readonly position: number | null;
  /** Of an appended event. */
  readonly kind: string | null;
  readonly actor_id: string | null;
}

/** A dedupe record as read with REPLY_EVENT_JOIN's event place. */
interface DedupeRow {
  readonly fingerprint: string;
  readonly reply: StoredReply;
  readonly seq: number;
  readonly tx: string | null;
  readonly position: number | null;
}

function recordOf(messageId: string, row: DedupeRow): DedupeRecord {
  const token = tokenOf(row);
  return { messageId, fingerprint: row.fingerprint, reply: row.reply, seq: row.seq, ...(token ? { token } : {}) };
}

const tokenOf = (row: { tx: string | null; position: number | string | null }): string | undefined =>
  row.tx === null || row.position === null ? undefined : commitToken(row.tx, Number(row.position));

/** The statement returns what did not commit, and where what did stands: each unit's result. */
function outcomesOf(batch: readonly AppendUnit[], rows: readonly AppendOutcomeRow[]): UnitResult[] {
  // A message id names one command of an actor, so with the actor it names one unit that wrote
  // (two units that both wrote it would have failed the statement on the unique keys); a unit the
  // statement refused wrote nothing, whatever it carried.
  const refused = new Set(rows.flatMap((row) => (row.outcome === 'event' || row.unit === null ? [] : [row.unit])));
  const key = (kind: string, actorId: string, messageId: string): string => `${kind}\u0000${actorId}\u0000${messageId}`;
  const unitOfEvent = new Map<string, number>();
  batch.forEach((unit, index) => {
    if (refused.has(index)) return;
    for (const entry of unit.entries) if (entry.event) unitOfEvent.set(key(unit.ref.kind, unit.ref.id, entry.messageId), index);
  });
  const tokens = new Map<number, Map<string, string>>();
  for (const row of rows) {
    if (row.outcome !== 'event') continue;
    const unit = unitOfEvent.get(key(row.kind!, row.actor_id!, row.message_id!));
    // Every event appended came from this batch; never throw here: the batch has committed.
    if (unit === undefined) continue;
    const ofUnit = tokens.get(unit) ?? new Map<string, string>();
    ofUnit.set(row.message_id!, tokenOf(row)!);
    tokens.set(unit, ofUnit);
  }
  const results: UnitResult[] = batch.map((_, unit) => ({ status: 'committed', tokens: tokens.get(unit) ?? new Map() }));
  const repeats = new Map<number, DedupeRecord[]>();
  for (const row of rows) {
    if (row.outcome === 'event' || row.unit === null) continue;
    if (row.outcome === 'fenced') results[row.unit] = { status: 'fenced' };
    else if (row.outcome === 'expired') results[row.unit] = { status: 'expired-id' };
    else if (row.outcome === 'stale') results[row.unit] = { status: 'conflict' };
    else if (row.outcome === 'facts') results[row.unit] = { status: 'facts' };
    else {
      const records = repeats.get(row.unit) ?? [];
      records.push(recordOf(row.message_id!, row as DedupeRow));
      repeats.set(row.unit, records);
    }
  }
  for (const [unit, records] of repeats) results[unit] = { status: 'duplicate', records };
  return results;
}

/** Opaque to clients: the commit's transaction id and its last event's position. */
export const commitToken = (tx: string, position: number, database = 0): string =>
  Buffer.from(database === 0 ? `${tx}.${position}` : `${database}.${tx}.${position}`).toString('base64url');

/**
 * A commit token's database (the journal's databases in layout order), transaction and position.
 * A token of the first database names none: tokens from before several databases still parse.
 */
export function parseCommitToken(token: string): { database: number; tx: bigint; position: number } | null {
  const match = /^(?:(\d{1,4})\.)?(\d{1,20})\.(\d{1,18})$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
  return match ? { database: match[1] === undefined ? 0 : Number(match[1]), tx: BigInt(match[2]!), position: Number(match[3]) } : null;
}

/** A token this database's journal gave, as the journal of several databases gives it: naming its database. */
export function tokenOfDatabase(token: string, database: number): string {
  if (database === 0) return token;
  const parsed = parseCommitToken(token);
  return parsed ? commitToken(parsed.tx.toString(), parsed.position, database) : token;
}

export class PgJournal implements Journal {
  readonly pool: pg.Pool;
  private readonly appendPool: pg.Pool;
  private readonly planFreshness: PlanFreshness;
  private readonly committer: GroupCommitter<AppendUnit, UnitResult>;
  private readonly outcomeLookupMs: number;

  constructor(options: PgJournalOptions) {
    this.outcomeLookupMs = options.outcomeLookupMs ?? 10_000;
    const inFlight = options.groupCommit?.maxInFlight ?? 4;
    const poolOf = (max: number, planCacheMode: string): pg.Pool => {
      const pool = new pg.Pool({
        connectionString: options.connectionString,
        types: JOURNAL_TYPES,
        max,
        connectionTimeoutMillis: 5_000,
        idleTimeoutMillis: 30_000,
        keepAlive: true,
        application_name: 'ppos',
        // A startup option (PostgreSQL 12 or later), added to PGOPTIONS rather than replacing
        // it; an `options` parameter in the database URL takes the place of both.
        options: [process.env.PGOPTIONS, `-c plan_cache_mode=${planCacheMode}`].filter(Boolean).join(' '),
      });
      pool.on('error', (error) => options.onPoolError?.(error));
      // The pool hands a client over with no 'error' listener until its borrower adds one, a
      // microtask later: a FATAL error in the same socket read as the end of the connection's
      // startup (pg_terminate_backend, an admin restart) would be emitted to nobody and crash the
      // node. Every client listens from birth; its borrower still sees the failure (not queryable).
      pool.on('connect', (client) => client.on('error', (error) => options.onPoolError?.(error)));
      return pool;
    };
    // `poolSize` counts both pools. The appends: one connection per commit in flight (fewer when
    // the size is small: commits then wait for one), the statement on a generic plan kept fresh
    // as the tables grow (plan-freshness.ts). The rest, at least two: reads and everything
    // else, every statement planned for the values at hand.
    const poolSize = options.poolSize ?? 8;
    const appendConnections = Math.max(1, Math.min(inFlight, poolSize - 2));
    this.pool = poolOf(Math.max(2, poolSize - appendConnections), 'force_custom_plan');
    this.appendPool = poolOf(appendConnections, 'force_generic_plan');
    this.planFreshness = new PlanFreshness(this.pool);
    this.committer = new GroupCommitter((batch) => this.flush(batch), {
      maxBatch: options.groupCommit?.maxBatch ?? 256,
      maxInFlight: inFlight,
      lingerMs: options.groupCommit?.lingerMs ?? 0,
      ...(options.groupCommit?.onFlushed ? { onFlushed: options.groupCommit.onFlushed } : {}),
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

  /** One result per unit, always: one unit's failure never decides another's answer. */
  private async flush(batch: readonly AppendUnit[]): Promise<(UnitResult | Error)[]> {
    try {
      return await this.appendTogether(batch);
    } catch (error) {
      if (error instanceof CommitOutcomeUnknown) return this.findOutcomes(batch, error);
      if (error instanceof JournalUnavailableError) return batch.map(() => error);
      // The statement failed as a whole and wrote nothing; when several actors shared it,
      // try each alone so one actor's conflict or bad value fails only that actor's append.
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
        if (single instanceof CommitOutcomeUnknown) return (await this.findOutcomes([unit], single))[0]!;
        if (single instanceof JournalUnavailableError) return single;
        error = single;
      }
    }
    return this.classifySingleFailure(error);
  }

  /** A definite failure of one unit alone: nothing of it was written. */
  private classifySingleFailure(error: unknown): UnitResult | Error {
    if (isSqlError(error)) {
      if (error.code === '23505' && error.constraint === 'ppos_events_pkey') return { status: 'conflict' };
      if (error.code === '23505' && error.constraint === 'ppos_events_message_id') return { status: 'expired-id' };
      // Class 22 (data exception): a value of this command the journal cannot store, such as
      // text PostgreSQL refuses. The command is bad, not the journal: retrying cannot help.
      if (error.code!.startsWith('22')) return { status: 'invalid', message: `the journal cannot store this command: ${error.message}` };
    }
    const message = error instanceof Error ? error.message : String(error);
    return new JournalUnavailableError(`journal unavailable: ${message}`, false, { cause: error });
  }

  /**
   * The connection broke after the statement was sent: find out, per unit, whether it committed.
   * First the backend that ran it must be gone or idle (else a commit could still land after the
   * look), then the dedupe records of each unit's message ids tell. Every one there exactly as
   * this unit wrote it (fingerprint, seq, reply, time received): it committed. None there: it
   * did not. Some there, but not as written: they were recorded before, by the commands these
   * repeat, and this unit wrote nothing (the statement would have answered `seen`); it is a
   * duplicate, answered from those records, never with the repeat's own new decision. When none
   * of this can be learnt in time, the unit's outcome stays unknown (an ambiguous error), and
   * its command is not answered "not applied".
   */
  private async findOutcomes(units: readonly AppendUnit[], unknown: CommitOutcomeUnknown): Promise<(UnitResult | Error)[]> {
    const lost = `journal connection lost while committing: ${unknown.message}`;
    if (unknown.backendPid === undefined) return units.map(() => new JournalUnavailableError(lost, true, { cause: unknown.failure }));
    const written = units.flatMap((unit, index) => unitRows(unit, index));
    const column = (name: string): unknown[] => written.map((row) => row[name]);
    // Retried until the deadline: the database may be briefly unreachable (the very reason the
    // connection broke), and the answer is worth a wait; the sender's retry covers a longer one.
    for (const deadline = Date.now() + this.outcomeLookupMs; Date.now() < deadline; await sleep(100)) {
      try {
        if (await this.backendBusy(unknown.backendPid)) continue;
        const found = await this.query(
          `SELECT i.ord, d.fingerprint, d.reply, d.seq, e.tx::text AS tx, e.position,
                  (d.fingerprint = i.fingerprint AND d.seq = i.seq AND d.reply::jsonb = i.reply::jsonb AND d.recorded_at = i.recorded_at) AS as_written
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::json[], $7::timestamptz[])
             WITH ORDINALITY AS i(kind, actor_id, message_id, fingerprint, seq, reply, recorded_at, ord)
           JOIN ppos_dedupe d ON d.kind = i.kind AND d.actor_id = i.actor_id AND d.message_id = i.message_id
           ${REPLY_EVENT_JOIN}`,
          [
            column('kind'),
            column('actor_id'),
            column('message_id'),
            column('fingerprint'),
            column('seq'),
            written.map((row) => JSON.stringify(row.reply)),
            column('recorded_at'),
          ],
        );
        const records = new Map(found.rows.map((row) => [Number(row.ord) - 1, row as DedupeRow & { as_written: boolean }]));
        const outcomes = units.map((_, index) => {
          const rows = written.map((row, at) => ({ row, at })).filter(({ row }) => row.unit === index);
          const present = rows.filter(({ at }) => records.has(at));
          if (present.length === 0) return 'absent' as const;
          return present.length === rows.length && present.every(({ at }) => records.get(at)!.as_written) ? ('committed' as const) : present.map(({ row, at }) => recordOf(row.message_id as string, records.get(at)!));
        });
        // The committed units' events: their places in the read order are their replies' tokens.
        const appended = written.filter((row) => outcomes[row.unit as number] === 'committed' && row.event_type !== null);
        const placed = await this.query(
          `SELECT e.message_id, e.tx::text AS tx, e.position FROM unnest($1::text[], $2::text[], $3::text[]) AS r(kind, actor_id, message_id)
           JOIN ppos_events e ON e.kind = r.kind AND e.actor_id = r.actor_id AND e.message_id = r.message_id`,
          [appended.map((a) => a.kind), appended.map((a) => a.actor_id), appended.map((a) => a.message_id)],
        );
        const tokens = new Map(placed.rows.map((row) => [row.message_id as string, tokenOf(row as { tx: string; position: number })!]));
        return outcomes.map((outcome): UnitResult | Error => {
          if (outcome === 'absent') return new JournalUnavailableError(`${lost}; it did not commit`, false, { cause: unknown.failure });
          if (outcome === 'committed') return { status: 'committed', tokens };
          return { status: 'duplicate', records: outcome };
        });
      } catch {
        // not reachable yet: look again
      }
    }
    return units.map(() => new JournalUnavailableError(`${lost}; whether it committed could not be found out`, true, { cause: unknown.failure }));
  }

  /** Whether a backend still runs a statement (a statement sent before its connection broke). */
  private async backendBusy(pid: number): Promise<boolean> {
    const result = await this.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state IS DISTINCT FROM 'idle'`, [pid]);
    return (result.rowCount ?? 0) > 0;
  }

  private async appendTogether(batch: readonly AppendUnit[]): Promise<UnitResult[]> {
    let client: pg.PoolClient;
    try {
      client = await this.appendPool.connect();
    } catch (error) {
      throw notReached(error);
    }
    let rows: AppendOutcomeRow[];
    let broken: unknown;
    // A checked-out client has no pool listener: a connection reset mid-query would be an
    // unhandled 'error' event and take the whole node down. The query itself rejects too.
    const onError = (error: Error): void => {
      broken ??= error;
    };
    client.on('error', onError);
    const backendPid = (client as unknown as { processID?: number }).processID;
    try {
      await this.planFreshness.prepare(client);
    } catch (error) {
      // Nothing that writes was sent: the append did not happen.
      client.off('error', onError);
      client.release(error instanceof Error ? error : true);
      throw notReached(error);
    }
    try {
      const result = await client.query({ name: 'ppos_append', text: APPEND_SQL, values: [JSON.stringify(batch.flatMap(unitRows))] });
      rows = result.rows;
    } catch (error) {
      // A connection the server is closing (57P01 admin shutdown, 57P02 crash shutdown: the
      // error comes before the socket ends) must not go back to the pool, where the next append
      // would take it at once and fail on it.
      if (!isSqlError(error) || error.code!.startsWith('08') || error.code!.startsWith('57P')) broken = error;
      throw outcomeUnknown(error) ? new CommitOutcomeUnknown(backendPid, error) : error;
    } finally {
      client.off('error', onError);
      client.release(broken instanceof Error ? broken : undefined);
    }
    return outcomesOf(batch, rows);
  }

  /** Reads (and writes that are safe to repeat): a broken connection is simply "unavailable". */
  private async query(text: string, values: unknown[]): Promise<pg.QueryResult> {
    try {
      return await this.pool.query(text, values);
    } catch (error) {
      throw isSqlError(error) && !error.code!.startsWith('08') ? error : notReached(error);
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

  async eventsOfTrace(traceId: string, limit: number): Promise<(JournaledEvent & ActorRef)[]> {
    // The expression and predicate of the partial index ppos_events_trace (migration 9).
    const result = await this.query(
      `SELECT kind, actor_id, ${EVENT_COLUMNS} FROM ppos_events
       WHERE substr(traceparent, 4, 32) = $1 AND traceparent IS NOT NULL ORDER BY position LIMIT $2`,
      [traceId, limit],
    );
    return result.rows.map((row) => ({ kind: row.kind as string, id: row.actor_id as string, ...eventRow(row) }));
  }

  async readEventsForReplay(ref: ActorRef, afterSeq: number, toSeq = Number.MAX_SAFE_INTEGER): Promise<{ seq: number; event: DomainEvent }[]> {
    const events: { seq: number; event: DomainEvent }[] = [];
    const page = 10_000;
    let from = afterSeq;
    for (;;) {
      // The event's data as one json text with its type folded in: one parse per row, no dates.
      const result = await this.query(
        `SELECT seq, jsonb_set(data, '{type}', to_jsonb(type)) AS event, event_version FROM ppos_events
         WHERE kind = $1 AND actor_id = $2 AND seq > $3 AND seq <= $4 ORDER BY seq LIMIT $5`,
        [ref.kind, ref.id, from, toSeq, page],
      );
      for (const row of result.rows) events.push({ seq: row.seq as number, event: withVersion(row.event as DomainEvent, row.event_version as number | null) });
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
      `SELECT seq, machine_version, state, hash, pg_column_size(state) AS bytes FROM ppos_snapshots
       WHERE kind = $1 AND actor_id = $2 AND machine_version = $3 AND seq <= $4 ORDER BY seq DESC LIMIT $5`,
      [ref.kind, ref.id, machineVersion, atOrBeforeSeq, limit],
    );
    return result.rows.map((row) => ({ seq: row.seq, machineVersion: row.machine_version, state: row.state, hash: row.hash, bytes: row.bytes }));
  }

  async saveSnapshot(ref: ActorRef, snapshot: StoredSnapshot): Promise<number> {
    await this.query(
      `INSERT INTO ppos_snapshots (kind, actor_id, seq, machine_version, state, hash) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
      [ref.kind, ref.id, snapshot.seq, snapshot.machineVersion, JSON.stringify(snapshot.state), snapshot.hash],
    );
    // As stored (compressed): RETURNING would give the size before compression.
    const stored = await this.query('SELECT pg_column_size(state) AS bytes FROM ppos_snapshots WHERE kind = $1 AND actor_id = $2 AND machine_version = $3 AND seq = $4', [
      ref.kind,
      ref.id,
      snapshot.machineVersion,
      snapshot.seq,
    ]);
    return (stored.rows[0]?.bytes as number | undefined) ?? 0;
  }

  async findDedupe(ref: ActorRef, messageId: string): Promise<DedupeRecord | null> {
    const result = await this.query(
      `SELECT d.fingerprint, d.reply, d.seq, e.tx::text AS tx, e.position FROM ppos_dedupe d ${REPLY_EVENT_JOIN}
       WHERE d.kind = $1 AND d.actor_id = $2 AND d.message_id = $3`,
      [ref.kind, ref.id, messageId],
    );
    const row = result.rows[0] as DedupeRow | undefined;
    return row ? recordOf(messageId, row) : null;
  }

  async presentFacts(ref: ActorRef, keys: readonly string[]): Promise<string[]> {
    if (keys.length === 0) return [];
    const result = await this.query('SELECT key FROM ppos_event_facts WHERE kind = $1 AND actor_id = $2 AND key = ANY($3::text[])', [ref.kind, ref.id, keys]);
    return result.rows.map((row) => row.key as string);
  }

  async factsOf(ref: ActorRef): Promise<Map<string, number>> {
    const result = await this.query('SELECT key, seq FROM ppos_event_facts WHERE kind = $1 AND actor_id = $2', [ref.kind, ref.id]);
    return new Map(result.rows.map((row) => [row.key as string, row.seq as number]));
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

  async overdueTimers(shards: readonly number[], nowMs: number, countUpTo: number): Promise<number> {
    if (shards.length === 0) return 0;
    // The same index ranges as dueTimers, each cut at `countUpTo`: a scrape never counts a whole backlog.
    const result = await this.query(
      `SELECT least($3::bigint, coalesce(sum(n), 0))::int AS overdue FROM unnest($1::int[]) AS s(shard)
       CROSS JOIN LATERAL (
         SELECT count(*) AS n FROM (SELECT 1 FROM ppos_timers WHERE shard = s.shard AND due_at <= to_timestamp($2::float8 / 1000) LIMIT $3) o
       ) c`,
      [shards, nowMs, countUpTo],
    );
    return result.rows[0].overdue as number;
  }

  async dueTimers(shards: readonly number[], nowMs: number, limit: number): Promise<DueTimer[]> {
    if (shards.length === 0) return [];
    // Per shard, an index range on (shard, due_at) read in order and cut at `limit`; then the
    // most overdue of those: never a sort of a whole backlog.
    const result = await this.query(
      `SELECT t.kind, t.actor_id, t.key, t.set_seq, (extract(epoch FROM t.due_at) * 1000)::float8 AS due_ms, t.command
       FROM unnest($1::int[]) AS s(shard)
       CROSS JOIN LATERAL (
         SELECT * FROM ppos_timers WHERE shard = s.shard AND due_at <= to_timestamp($2::float8 / 1000) ORDER BY due_at LIMIT $3
       ) t
       ORDER BY t.due_at LIMIT $3`,
      [shards, nowMs, limit],
    );
    return result.rows.map((row) => ({
      ref: { kind: row.kind as string, id: row.actor_id as string },
      key: row.key as string,
      dueAt: Math.round(row.due_ms as number),
      setSeq: Number(row.set_seq),
      command: row.command as TimerSpec['command'],
    }));
  }

  async dropFiredTimer(timer: DueTimer): Promise<void> {
    await this.query(
      // Only the timer that fired: one set again since (another event) stays.
      'DELETE FROM ppos_timers WHERE kind = $1 AND actor_id = $2 AND key = $3 AND set_seq = $4',
      [timer.ref.kind, timer.ref.id, timer.key, timer.setSeq],
    );
  }

  async timersOf(ref: ActorRef, limit: number): Promise<TimerSpec[]> {
    const result = await this.query(
      `SELECT key, (extract(epoch FROM due_at) * 1000)::float8 AS due_ms, command FROM ppos_timers
       WHERE kind = $1 AND actor_id = $2 ORDER BY due_at, key LIMIT $3`,
      [ref.kind, ref.id, limit],
    );
    return result.rows.map((row) => ({ key: row.key as string, dueAt: Math.round(row.due_ms as number), command: row.command as TimerSpec['command'] }));
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
    // One transaction, one clock (the database's): the horizon moves with the deletion, so an
    // append sees either both (the repeat is refused as expired) or neither (it is seen).
    // Records of ids without a time are kept; a record still waiting for its saga is never pruned.
    const client = await this.pool.connect().catch((error: unknown) => {
      throw notReached(error);
    });
    const ignore = (): void => undefined;
    client.on('error', ignore);
    try {
      await client.query('BEGIN');
      const horizon = await client.query(
        // Stored as epoch milliseconds: text that reads back the same under any session's DateStyle.
        `INSERT INTO ppos_cluster (key, value) VALUES ('dedupe_pruned_before', floor(extract(epoch FROM now() - make_interval(secs => $1::float8 * 3600)) * 1000)::bigint::text)
         ON CONFLICT (key) DO UPDATE SET value = greatest(ppos_cluster.value::bigint, EXCLUDED.value::bigint)::text
         RETURNING value`,
        [olderThanHours],
      );
      const removed = await client.query(
        // Timer firings' records too, by when they were recorded: their ids carry no time, and
        // a timer is gone (its row removed) once its firing is recorded, so none is fired again.
        `DELETE FROM ppos_dedupe WHERE (id_time < to_timestamp($1::float8 / 1000) OR (message_id LIKE 'ppos:timer:%' AND recorded_at < to_timestamp($1::float8 / 1000)))
           AND (reply->>'pending') IS DISTINCT FROM 'true'`,
        [horizon.rows[0].value],
      );
      await client.query('COMMIT');
      return removed.rowCount ?? 0;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw isSqlError(error) && !error.code!.startsWith('08') ? error : notReached(error);
    } finally {
      client.off('error', ignore);
      client.release();
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.appendPool.end(), this.pool.end()]);
  }
}

