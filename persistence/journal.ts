// The journal port: what the runtime needs from durable storage, and nothing about how.
// One PostgreSQL implementation stands behind it (the embedded default is the same code
// against a PostgreSQL that ppos starts itself).
import type { DomainEvent, TimerChanges, TimerSpec } from '../actors/kind.js';
import type { PersistedState } from '../actors/state.js';

export interface ActorRef {
  readonly kind: string;
  readonly id: string;
}

export const refKey = (ref: ActorRef): string => `${ref.kind}/${ref.id}`;

/** A reply as recorded for dedupe: the reply minus `state`, which the journal can rebuild. */
export interface StoredReply {
  readonly ok: boolean;
  readonly seq?: number;
  readonly events?: readonly DomainEvent[];
  readonly error?: { readonly code: string; readonly reason?: string; readonly message: string; readonly [k: string]: unknown };
  /** Set while a saga answering this message has not settled yet. */
  readonly pending?: boolean;
}

export interface DedupeRecord {
  readonly messageId: string;
  readonly fingerprint: string;
  readonly reply: StoredReply;
  /** The actor's seq right after this message was handled. */
  readonly seq: number;
  /** The commit token of the event its reply answered with (a reply that appended), as the first reply carried it. */
  readonly token?: string;
}

export interface JournaledEvent {
  readonly seq: number;
  readonly event: DomainEvent;
  readonly messageId: string;
  readonly correlationId: string | null;
  readonly causationId: string | null;
  /** The W3C traceparent of the span that wrote it, when the command was traced. */
  readonly traceparent: string | null;
  readonly machineVersion: number;
  readonly epoch: number;
  readonly recordedAt: Date;
}

/** One command's contribution to an append: at most one event, and its dedupe record. */
export interface DueTimer extends TimerSpec {
  readonly ref: ActorRef;
  /** The seq of the event that set it. */
  readonly setSeq: number;
}

export interface AppendEntry {
  readonly event: DomainEvent | null;
  /** The version of its type `event` is written at (absent: 1). */
  readonly eventVersion?: number | undefined;
  /** Timers the event sets and clears, written in the same commit. */
  readonly timers?: TimerChanges | undefined;
  readonly messageId: string;
  readonly fingerprint: string;
  readonly reply: StoredReply;
  readonly correlationId?: string | undefined;
  readonly causationId?: string | undefined;
  readonly traceparent?: string | undefined;
  readonly recordedAt: Date;
  /** The time the message id carries (a ULID's), if any: dedupe retention ages records by it. */
  readonly idTime?: Date | undefined;
  /** A saga's settling event also finalises the dedupe record of the command that started it. */
  readonly settles?: { readonly messageId: string; readonly reply: StoredReply } | undefined;
  /** Facts the decision took to be absent: if the journal holds one, nothing of the unit is written. */
  readonly factsAssumedAbsent?: readonly string[] | undefined;
  /** Facts the event establishes, indexed with it. */
  readonly factsEstablished?: readonly string[] | undefined;
}

interface AppendTarget {
  readonly ref: ActorRef;
  /** The seq the writer believes is the actor's last; the first event becomes expectedSeq + 1. */
  readonly expectedSeq: number;
  readonly machineVersion: number;
  /** Fencing token of the writer's lease on the actor's shard; 0 only where no leases exist. */
  readonly epoch: number;
  /** The actor's shard, whose lease epoch the append must match. */
  readonly shard: number;
}

/** A single command's append. */
export type AppendRequest = AppendTarget & AppendEntry;

/**
 * Several consecutive commands of one actor, decided one after the other on the state the
 * earlier ones produce: written all together or not at all (a hot actor's commands share a commit).
 */
export interface AppendUnit extends AppendTarget {
  readonly entries: readonly AppendEntry[];
}

export type AppendResult =
  /**
   * `tokens`: by message id, where each appended event stands in the journal's read order (the
   * commit token of its command's reply).
   */
  | { readonly status: 'committed'; readonly tokens?: ReadonlyMap<string, string> }
  /** The message id was recorded before: nothing was written. */
  | { readonly status: 'duplicate'; readonly record: DedupeRecord }
  /** Another writer appended at expectedSeq + 1: nothing was written; reload before deciding again. */
  | { readonly status: 'conflict' }
  /**
   * The message id may have been seen before, but its dedupe record is gone (retention): its
   * event is in the journal, or its id's time is older than what retention has pruned.
   * Nothing was written; deciding it again could apply it twice.
   */
  | { readonly status: 'expired-id' }
  /** The writer's epoch is not the shard's current one: ownership moved, nothing was written. */
  | { readonly status: 'fenced' }
  /** The journal cannot store a value of this command (the database refused it as data): nothing was written. */
  | { readonly status: 'invalid'; readonly message: string }
  /** A fact the decision took to be absent is in the journal: nothing was written; learn it and decide again. */
  | { readonly status: 'facts' };

export type UnitResult =
  | Exclude<AppendResult, { status: 'duplicate' }>
  /** Some of the unit's message ids were recorded before: nothing of the unit was written. */
  | { readonly status: 'duplicate'; readonly records: readonly DedupeRecord[] };

export interface StoredSnapshot {
  readonly seq: number;
  readonly machineVersion: number;
  readonly state: PersistedState;
  readonly hash: string;
  /** Bytes the snapshot takes in the journal (as stored, compressed or not); known once stored. */
  readonly bytes?: number;
}

/**
 * The journal could not be reached or did not answer. `ambiguous`: a commit may have landed and
 * the journal could not find out whether it did (the caller must not say "nothing was applied").
 */
export class JournalUnavailableError extends Error {
  constructor(
    message: string,
    readonly ambiguous: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface Journal {
  append(request: AppendRequest): Promise<AppendResult>;
  appendUnit(unit: AppendUnit): Promise<UnitResult>;
  /** Events with afterSeq < seq <= toSeq (toSeq defaults to the last), in seq order. */
  readEvents(ref: ActorRef, afterSeq: number, toSeq?: number): Promise<JournaledEvent[]>;
  /** The same events with only what replay needs (seq and event): the lean read of activation. */
  readEventsForReplay(ref: ActorRef, afterSeq: number, toSeq?: number): Promise<{ readonly seq: number; readonly event: DomainEvent }[]>;
  /** Events written by the commands of one trace (a W3C trace id: 32 hex digits), across actors, in append order. */
  eventsOfTrace(traceId: string, limit: number): Promise<(JournaledEvent & ActorRef)[]>;
  headSeq(ref: ActorRef): Promise<number>;
  /** Snapshots of this machine version at or before `atOrBeforeSeq`, newest first. */
  snapshots(ref: ActorRef, machineVersion: number, atOrBeforeSeq?: number, limit?: number): Promise<StoredSnapshot[]>;
  /** Stores a snapshot; resolves with the bytes it takes in the journal. */
  saveSnapshot(ref: ActorRef, snapshot: StoredSnapshot): Promise<number>;
  findDedupe(ref: ActorRef, messageId: string): Promise<DedupeRecord | null>;
  /** Which of `keys` the actor's journal holds as facts (see ActorKind.eventFacts). */
  presentFacts(ref: ActorRef, keys: readonly string[]): Promise<string[]>;
  /** Every fact of the actor's journal, with the seq of the event that established it (for verify). */
  factsOf(ref: ActorRef): Promise<Map<string, number>>;
  /** Every actor with at least one journaled event or dedupe record, optionally of one kind. */
  listActors(kind?: string): Promise<ActorRef[]>;
  /** Counts a repeat delivery answered from the dedupe record (best effort). */
  noteDuplicate(ref: ActorRef, messageId: string): Promise<void>;
  /** Repeat deliveries answered without being applied, over all actors. */
  duplicatesAnswered(): Promise<number>;
  /** Actors with a saga that has not settled (its starting command's record is still pending). */
  openSagas(): Promise<ActorRef[]>;
  /**
   * Deletes settled dedupe records whose message id's time is older than `olderThanHours` by
   * the database's clock, and moves the horizon below which a repeat is refused; returns how many.
   */
  pruneDedupe(olderThanHours: number): Promise<number>;
  /** Timers due by `nowMs` on these shards, the most overdue first, at most `limit`. */
  dueTimers(shards: readonly number[], nowMs: number, limit: number): Promise<DueTimer[]>;
  /** How many timers of these shards are past their deadline and not fired yet, counted up to `countUpTo` (the backlog). */
  overdueTimers(shards: readonly number[], nowMs: number, countUpTo: number): Promise<number>;
  /** Removes a fired timer, unless it was set again meanwhile (another deadline). */
  dropFiredTimer(timer: DueTimer): Promise<void>;
  /** An actor's pending timers as stored, soonest first, at most `limit`. */
  timersOf(ref: ActorRef, limit: number): Promise<TimerSpec[]>;
  close(): Promise<void>;
}
