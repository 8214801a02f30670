// After a chaos run: the driver's own log of acknowledged answers against the journal, read
// with plain SQL. A command journals at most one event under its own message id; a saga's
// settled answer also lists the events its answers appended, which carry their own ids.
import pg from 'pg';
import stringify from 'safe-stable-stringify';
import { actorKinds } from '../actors/index.js';
import type { WorkOrderContext } from '../actors/workorder.js';
import type { Journal, StoredReply } from '../persistence/journal.js';
import { RESERVED_ID_PREFIX, type Reply } from '../runtime/envelope.js';
import { loadState } from '../runtime/recovery.js';
import type { CommandRecord } from './workload.js';

export interface Invariant {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface LedgerFindings {
  readonly invariants: Invariant[];
  readonly eventsJournaled: number;
  readonly unackedApplied: number;
  readonly unackedNotApplied: number;
}

interface EventRow {
  kind: string;
  actor_id: string;
  seq: number;
  type: string;
  data: Record<string, unknown>;
  message_id: string;
}

interface DedupeRow {
  kind: string;
  actor_id: string;
  message_id: string;
  reply: StoredReply;
}

/** Ids the runtime itself uses for saga steps and their answers (the reserved `ppos:` prefix). */
const internalId = (messageId: string): boolean => messageId.startsWith(RESERVED_ID_PREFIX);

/** Events a first answer says its own message id journaled: a settled SHORTAGE still journaled its ReleaseStarted. */
function ownEvents(record: CommandRecord, reply: Reply): number {
  if (record.type === 'Get') return 0;
  if (reply.ok) return reply.events.length > 0 ? 1 : 0;
  return record.ref.kind === 'workorder' && record.type === 'Release' && reply.error.reason === 'SHORTAGE' ? 1 : 0;
}

function sameRecorded(stored: StoredReply, reply: Reply): boolean {
  if (stored.pending) return false;
  if (stored.ok && reply.ok) return stored.seq === reply.seq && stringify(stored.events ?? []) === stringify(reply.events);
  if (!stored.ok && !reply.ok) return stored.error?.code === reply.error.code && stored.error?.reason === reply.error.reason;
  return false;
}

/** Rows of `sql` from every database of the journal, one list (each actor's rows come from one database). */
export async function rowsOfAll<R extends pg.QueryResultRow>(pools: readonly pg.Pool[], sql: string): Promise<R[]> {
  return (await Promise.all(pools.map(async (pool) => (await pool.query<R>(sql)).rows))).flat();
}

const byActorThenSeq = (a: { kind?: string; actor_id: string; seq: number }, b: { kind?: string; actor_id: string; seq: number }): number =>
  (a.kind ?? '') !== (b.kind ?? '') ? ((a.kind ?? '') < (b.kind ?? '') ? -1 : 1) : a.actor_id !== b.actor_id ? (a.actor_id < b.actor_id ? -1 : 1) : a.seq - b.seq;

function invariant(name: string, failures: string[], okDetail: string): Invariant {
  const shown = failures.slice(0, 5).join('; ');
  return { name, ok: failures.length === 0, detail: failures.length === 0 ? okDetail : `${failures.length} failure(s): ${shown}` };
}

export async function checkLedger(admins: readonly pg.Pool[], ledger: ReadonlyMap<string, CommandRecord>): Promise<LedgerFindings> {
  const events = (await rowsOfAll<EventRow>(admins, 'SELECT kind, actor_id, seq, type, data, message_id FROM ppos_events')).sort(byActorThenSeq);
  const dedupe = await rowsOfAll<DedupeRow>(admins, 'SELECT kind, actor_id, message_id, reply FROM ppos_dedupe');
  const bySeq = new Map<string, EventRow>();
  const byMessage = new Map<string, EventRow[]>();
  for (const row of events) {
    bySeq.set(`${row.kind}/${row.actor_id}/${row.seq}`, row);
    const key = `${row.kind}/${row.actor_id}/${row.message_id}`;
    byMessage.set(key, [...(byMessage.get(key) ?? []), row]);
  }
  const recorded = new Map(dedupe.map((row) => [`${row.kind}/${row.actor_id}/${row.message_id}`, row]));
  const asEvent = (row: EventRow): string => stringify({ ...row.data, type: row.type }) ?? '';

  const exactlyOnce: string[] = [];
  const repliesRecorded: string[] = [];
  const repeats: string[] = [];
  const unackedTwice: string[] = [];
  const falseRefusals: string[] = [];
  let unackedApplied = 0;
  let unackedNotApplied = 0;
  let acked = 0;
  for (const record of ledger.values()) {
    const key = `${record.ref.kind}/${record.ref.id}/${record.messageId}`;
    const own = byMessage.get(key) ?? [];
    const reply = record.first;
    if (record.mismatch) repeats.push(`${key}: ${record.mismatch}`);
    if (record.falseRefusal) falseRefusals.push(`${key}: ${record.falseRefusal}`);
    if (!reply) {
      if (own.length > 1) unackedTwice.push(`${key} has ${own.length} events`);
      if (own.length > 0) unackedApplied += 1;
      else unackedNotApplied += 1;
      continue;
    }
    acked += 1;
    const expected = ownEvents(record, reply);
    if (own.length !== expected) {
      exactlyOnce.push(`${key} (${record.type}) answered ${reply.ok ? 'ok' : reply.error.reason} but has ${own.length} event(s) under its id, expected ${expected}`);
      continue;
    }
    if (reply.ok && reply.events.length > 0) {
      // The answer's events are exactly the journal's, ending at the answer's seq.
      const start = reply.seq - reply.events.length + 1;
      if (own[0]!.seq !== start) exactlyOnce.push(`${key}: its event is at seq ${own[0]!.seq}, the answer says ${start}`);
      reply.events.forEach((event, i) => {
        const row = bySeq.get(`${record.ref.kind}/${record.ref.id}/${start + i}`);
        if (!row || asEvent(row) !== stringify(event)) exactlyOnce.push(`${key}: answered event ${i + 1} differs from journal event ${start + i}`);
      });
    }
    const stored = recorded.get(key);
    if (record.type === 'Get') {
      if (stored) repliesRecorded.push(`${key}: a query was recorded`);
    } else if (!stored) repliesRecorded.push(`${key}: no dedupe record for an acknowledged command`);
    else if (!sameRecorded(stored.reply, reply)) repliesRecorded.push(`${key}: recorded ${stringify(stored.reply)} but answered ${stringify(reply)}`);
  }

  // Nothing in the journal that no client sent (or sent to another actor).
  const phantoms: string[] = [];
  for (const [key, rows] of byMessage) {
    const messageId = rows[0]!.message_id;
    if (internalId(messageId)) continue;
    const record = ledger.get(messageId);
    if (!record || `${record.ref.kind}/${record.ref.id}/${messageId}` !== key) phantoms.push(`${key}: no client sent it here`);
  }
  for (const row of dedupe) {
    if (internalId(row.message_id)) continue;
    const record = ledger.get(row.message_id);
    if (!record || record.ref.kind !== row.kind || record.ref.id !== row.actor_id) phantoms.push(`dedupe ${row.kind}/${row.actor_id}/${row.message_id}: no client sent it here`);
  }

  // No reservation opened twice without being closed in between (whatever the message ids).
  const reopened: string[] = [];
  const open = new Set<string>();
  for (const row of events) {
    if (row.kind !== 'inventory') continue;
    const reservation = `${row.actor_id}/${String(row.data.reservationId)}`;
    if (row.type === 'Reserved') {
      if (open.has(reservation)) reopened.push(`reservation ${reservation} opened twice`);
      open.add(reservation);
    } else if (row.type === 'Released' || row.type === 'Consumed' || row.type === 'HoldExpired') open.delete(reservation);
  }

  return {
    eventsJournaled: events.length,
    unackedApplied,
    unackedNotApplied,
    invariants: [
      invariant('acked_effects_exactly_once', exactlyOnce, `${acked} acknowledged commands, each effect in the journal once`),
      invariant('acked_replies_recorded', repliesRecorded, 'every acknowledged answer is the recorded first reply'),
      invariant('repeats_answer_like_the_first', repeats, 'every repeat and late duplicate got the first answer'),
      invariant('unacked_applied_at_most_once', unackedTwice, `${unackedApplied} unacknowledged applied once, ${unackedNotApplied} not at all`),
      invariant('unavailable_means_not_applied', falseRefusals, 'no command answered UNAVAILABLE or OVERLOADED had been applied'),
      invariant('no_phantom_effects', phantoms, 'every journaled client message was sent by a client to that actor'),
      invariant('no_reservation_opened_twice', reopened, 'no reservation held twice'),
    ],
  };
}

/** Every saga settled: no starting command still pending, and no work order left mid-saga. */
export async function checkSagasSettled(journal: Journal): Promise<Invariant> {
  const failures: string[] = [];
  for (const ref of await journal.openSagas()) failures.push(`${ref.kind}/${ref.id} has a pending saga reply`);
  const kind = actorKinds.get('workorder')!;
  const orders = await journal.listActors('workorder');
  for (const ref of orders) {
    const loaded = await loadState(journal, kind, ref);
    const saga = (loaded.state.context as WorkOrderContext).saga;
    if (saga) failures.push(`workorder/${ref.id} is still in its ${saga.kind} saga`);
  }
  return invariant('sagas_settled', failures, `${orders.length} work orders, none mid-saga`);
}

interface HoldRow {
  readonly actor_id: string;
  readonly seq: number;
  readonly type: string;
  readonly reservation_id: string;
  readonly expires_at: string | null;
  readonly recorded_ms: number;
}

/**
 * Holds with a deadline: each closed at most once (the journal's replay refuses a second close,
 * so it is counted here), none expired before its deadline, and none still open longer than
 * `lateMs` past it, with nodes running. `nowMs`: the database's clock at the check.
 */
export async function checkHolds(admins: readonly pg.Pool[], lateMs: number): Promise<Invariant & { holds: number; expired: number }> {
  const rows = (
    await rowsOfAll<HoldRow>(
      admins,
      `SELECT actor_id, seq, type, data->>'reservationId' AS reservation_id, data->>'expiresAt' AS expires_at,
              (extract(epoch FROM recorded_at) * 1000)::float8 AS recorded_ms
       FROM ppos_events WHERE kind = 'inventory' AND type IN ('Reserved', 'Released', 'Consumed', 'HoldExpired')`,
    )
  ).sort(byActorThenSeq);
  const nowMs = Number((await admins[0]!.query<{ now_ms: number }>('SELECT (extract(epoch FROM now()) * 1000)::float8 AS now_ms')).rows[0]!.now_ms);
  const failures: string[] = [];
  const open = new Map<string, { expiresAt: number | null; closes: number }>();
  let holds = 0;
  let expired = 0;
  for (const row of rows) {
    const key = `${row.actor_id}/${row.reservation_id}`;
    if (row.type === 'Reserved') {
      const expiresAt = row.expires_at === null ? null : Number(row.expires_at);
      if (expiresAt !== null) holds += 1;
      open.set(key, { expiresAt, closes: 0 });
      continue;
    }
    const hold = open.get(key);
    if (row.type === 'HoldExpired') {
      expired += 1;
      if (!hold || hold.expiresAt === null) failures.push(`${key}: HoldExpired at seq ${row.seq} for no hold with a deadline`);
      // Recorded at the firing's receipt, by the clock the deadline was set by.
      else if (row.recorded_ms < hold.expiresAt) failures.push(`${key}: expired ${Math.round(hold.expiresAt - row.recorded_ms)} ms before its deadline`);
    }
    if (hold) {
      hold.closes += 1;
      if (hold.closes > 1) failures.push(`${key}: closed ${hold.closes} times`);
      open.delete(key);
    }
  }
  for (const [key, hold] of open) {
    if (hold.expiresAt !== null && hold.expiresAt + lateMs < nowMs) failures.push(`${key}: still open ${Math.round(nowMs - hold.expiresAt)} ms past its deadline`);
  }
  return {
    ...invariant('holds_expire_once_on_time', failures, `${holds} holds with a deadline, ${expired} expired, none early, none twice, none open ${lateMs / 1000} s past its deadline`),
    holds,
    expired,
  };
}
