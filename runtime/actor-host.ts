// One live actor: its committed state and the handling of one message at a time
// (the mailbox guarantees that). The order inside `handle` is the heart of the contract:
// decide on the committed state, journal, and only then move memory and reply.
import type { AnyMachineSnapshot } from 'xstate';
import type { Logger } from 'pino';
import type { ActorKind, Command, DomainEvent, Facts, SagaSettlement } from '../actors/kind.js';
import { currentVersion, withVersion } from '../actors/event-version.js';
import { decideOf, parseCommandOf } from '../actors/saga-answers.js';
import { stateAfter } from '../actors/state.js';
import {
  JournalUnavailableError,
  refKey,
  type ActorRef,
  type DedupeRecord,
  type Journal,
  type StoredReply,
  type StoredSnapshot,
  type UnitResult,
} from '../persistence/journal.js';
import { answerRepeat, fingerprint, messageIdTime, RecentReplies, RecentSet, type RememberedReply } from './dedupe.js';
import { errorReply, type Envelope, type Reply } from './envelope.js';
import { loadState, snapshotOf, type LoadedState } from './recovery.js';
import { childSpan, endSpan, traceparentOf, type Trace } from './tracing.js';

export interface ActorHostOptions {
  readonly journal: Journal;
  readonly logger: Logger;
  /** At least this many events between snapshots (and see SNAPSHOT_WEIGHT). */
  readonly snapshotEvery: number;
  readonly recentReplies: number;
  /** The actor's shard and the fencing token (lease epoch) this node holds for it. */
  readonly fence: (ref: ActorRef) => { readonly shard: number; readonly epoch: number };
  /** Called after each commit, memory already moved: sagas run their next effects, watchers get the event. */
  readonly onCommitted?: (host: ActorHost, commit: CommitNotice) => void;
  readonly metrics?: HostMetrics;
}

export interface CommitNotice {
  readonly messageId: string;
  /** Null when the command was recorded without changing state (a no-op or a rejection). */
  readonly event: DomainEvent | null;
  readonly seq: number;
  readonly reply: Reply;
  readonly recordedAt: Date;
  readonly correlationId: string | undefined;
  readonly causationId: string | undefined;
}

/**
 * The command whose event the actor journaled last: what its saga steps were caused by. A step
 * carries its correlation id (or, when it had none, its message id) and continues its trace.
 */
export interface Cause {
  readonly messageId: string;
  readonly correlationId: string | null;
  readonly traceparent: string | null;
}

export interface HostMetrics {
  appendLatency(ms: number): void;
  snapshotSaved(): void;
}

export interface Incoming {
  readonly envelope: Envelope;
  readonly receivedAt: Date;
  /** Sent by the runtime itself (a saga's answer), never by a client over NATS. */
  readonly internal?: boolean;
  /** The span that handles the message (see tracing.ts): decide and commit are its children. */
  readonly trace?: Trace;
}

/** A reply that waits for a saga to settle; the mailbox moves on meanwhile. */
export interface DeferredReply {
  /** Null: the memory was dropped before the saga settled; its outcome is not known here. */
  readonly deferred: Promise<Reply | null>;
}

/**
 * What handling a message gives: a reply now, one deferred until a saga settles, or null when
 * the outcome is unknown (a commit's answer was lost and could not be found out). Null is never
 * answered "nothing was applied" (that could be false): the sender's retry with the same id
 * learns the truth from the journal's dedupe record.
 */
export type Handled = Reply | DeferredReply | null;

export const isDeferred = (handled: Reply | DeferredReply): handled is DeferredReply => 'deferred' in handled;

/** A command decided on some state, not yet journaled. */
interface Decided {
  readonly incoming: Incoming;
  readonly command: Command;
  readonly print: string;
  readonly event: DomainEvent | null;
  readonly next: AnyMachineSnapshot;
  /** The actor's seq after this command. */
  readonly seq: number;
  readonly stored: StoredReply;
  readonly settlement: SagaSettlement | null;
  readonly opensSaga: boolean;
  /** The settled reply of the saga this command settles, recorded in the same statement. */
  readonly settles?: { readonly messageId: string; readonly reply: StoredReply };
  /** Facts the decision took to be absent: the journal refuses the unit if one is present. */
  readonly assumed: readonly string[];
  /** Facts its event establishes, indexed by the journal in the same statement. */
  readonly established: readonly string[];
  /** The traceparent journaled with its event: the span of the command that wrote it. */
  readonly traceparent: string | undefined;
}

/**
 * A snapshot of a large state is written once the journal written since the last one weighs
 * this many times the last one (as stored, compressed): snapshot writes stay about 1/25 of the
 * journal's whatever the state's size, and an activation replays at most that much journal.
 */
export const SNAPSHOT_WEIGHT = 25;
/** What one command adds to the journal on disk (event, dedupe record, indexes), measured by the bench. */
const JOURNAL_BYTES_PER_COMMAND = 800;
/** Below this a snapshot is cheap whatever the cadence: `snapshotEvery` alone decides. */
const SMALL_SNAPSHOT_BYTES = 16 * 1024;

const reloading = (): Reply => errorReply('UNAVAILABLE', 'actor is reloading after a journal failure; nothing was applied, retry');
const ownedElsewhere = (ref: ActorRef): Reply =>
  errorReply('UNAVAILABLE', `${ref.kind}/${ref.id} is now owned elsewhere; nothing was applied, retry`);

/** Client commands whose saga is still open here, and whoever waits for their reply. */
interface OpenSaga {
  readonly fingerprint: string;
  /** `repeat`: a redelivery of the command, answered with `duplicate: true`. */
  readonly waiters: { readonly wake: (reply: Reply | null) => void; readonly repeat: boolean }[];
}

export class ActorHost {
  private state: AnyMachineSnapshot;
  private seqValue: number;
  private snapshotSeqValue: number;
  /** Size of the last snapshot in the journal, and the journal written since it (estimated). */
  private snapshotBytes: number;
  private journalBytesSinceSnapshot = 0;
  private readonly recent: RecentReplies;
  private readonly openSagas = new Map<string, OpenSaga>();
  /** Facts this actor's journal is known to hold (its own recent events, and lookups): a bounded cache. */
  private readonly knownFacts = new RecentSet(4_096);
  /** Set when memory may disagree with the journal; the registry then drops this host. */
  broken = false;
  messagesHandled = 0;
  /** What caused the last event journaled here, when this memory saw it (after activation: unknown until one is). */
  lastCause: Cause | undefined;
  readonly activatedAt = new Date();

  constructor(
    readonly ref: ActorRef,
    readonly kind: ActorKind,
    loaded: LoadedState,
    private readonly options: ActorHostOptions,
  ) {
    this.state = loaded.state;
    this.seqValue = loaded.seq;
    this.snapshotSeqValue = loaded.snapshotSeq;
    this.snapshotBytes = loaded.snapshotBytes;
    this.journalBytesSinceSnapshot = (loaded.seq - loaded.snapshotSeq) * JOURNAL_BYTES_PER_COMMAND;
    this.recent = new RecentReplies(options.recentReplies);
  }

  static async activate(ref: ActorRef, kind: ActorKind, options: ActorHostOptions): Promise<{ host: ActorHost; loaded: LoadedState }> {
    const loaded = await loadState(options.journal, kind, ref);
    for (const rejected of loaded.rejectedSnapshots) {
      options.logger.warn({ actor: `${ref.kind}/${ref.id}`, snapshotSeq: rejected.seq, problem: rejected.problem }, 'snapshot skipped; replayed instead');
    }
    return { host: new ActorHost(ref, kind, loaded, options), loaded };
  }

  get seq(): number {
    return this.seqValue;
  }

  get snapshotSeq(): number {
    return this.snapshotSeqValue;
  }

  get current(): AnyMachineSnapshot {
    return this.state;
  }

  /** True while a client waits on one of this actor's sagas: it must not be passivated. */
  get hasWaiters(): boolean {
    return this.openSagas.size > 0;
  }

  recentMessageIds(limit: number): string[] {
    return this.recent.recentIds(limit);
  }

  get rememberedReplies(): number {
    return this.recent.size;
  }

  /**
   * This memory is being dropped while clients wait for sagas. Their commands *were* applied
   * (the saga started), so "UNAVAILABLE, nothing was applied" would be false: they get no
   * answer, and their retry with the same id waits for (or gets) the settled reply.
   */
  abandon(): void {
    for (const saga of this.openSagas.values()) {
      for (const { wake } of saga.waiters) wake(null);
    }
    this.openSagas.clear();
  }

  async handle(incoming: Incoming): Promise<Handled> {
    return (await this.handleBatch([incoming]))[0]!;
  }

  /**
   * Handles consecutive messages of the mailbox. Consecutive plain commands are decided one
   * after the other, each on the state the previous ones produce, and journaled as one unit in
   * one commit (all or nothing); memory moves and replies go out only once it has landed. A hot
   * actor so pays one commit per batch, not per command. Queries and repeats are answered on
   * committed state; a command that starts or settles a saga is a unit of its own.
   */
  async handleBatch(items: readonly Incoming[]): Promise<Handled[]> {
    const results: Handled[] = new Array(items.length);
    let i = 0;
    while (i < items.length) {
      if (this.broken) {
        // Memory may be behind the journal now: the rest must be retried on a reloaded actor.
        for (; i < items.length; i += 1) results[i] = reloading();
        break;
      }
      const { unit, next } = this.collectUnit(items, i, results);
      if (unit.length > 0) {
        const handled = await this.commit(unit.map((u) => u.decided));
        handled.forEach((h, k) => {
          results[unit[k]!.index] = h;
        });
      }
      i = next;
    }
    return results;
  }

  /**
   * From `start` on: answers what needs no decision into `results`, and decides the longest run
   * of commands that can share one commit. Returns that unit and where the next one starts.
   */
  private collectUnit(items: readonly Incoming[], start: number, results: Handled[]): { unit: { index: number; decided: Decided }[]; next: number } {
    const unit: { index: number; decided: Decided }[] = [];
    const ids = new Set<string>();
    // Facts the unit's earlier commands establish, not yet journaled: the later ones must see them.
    const unitFacts = new Set<string>();
    let state = this.state;
    let seq = this.seqValue;
    let j = start;
    for (; j < items.length; j += 1) {
      const item = items[j]!;
      // The same id twice: the repeat must see the first one's committed outcome.
      if (ids.has(item.envelope.id)) break;
      const pre = this.preflight(item);
      if ('answer' in pre) {
        // A query answers from committed state: it waits for the commands before it.
        if (pre.query && unit.length > 0) break;
        this.messagesHandled += 1;
        results[j] = pre.answer;
        continue;
      }
      const decided = this.decideOn(state, seq, item, pre.command, pre.print, unitFacts);
      const alone = decided.settlement !== null || decided.opensSaga;
      if (alone && unit.length > 0) break;
      this.messagesHandled += 1;
      unit.push({ index: j, decided });
      ids.add(item.envelope.id);
      state = decided.next;
      seq = decided.seq;
      for (const fact of decided.established) unitFacts.add(fact);
      if (alone) return { unit, next: j + 1 };
    }
    return { unit, next: j };
  }

  /** What can be answered without deciding: bad input, queries, repeats, waits on open sagas. */
  private preflight(incoming: Incoming): { answer: Reply | DeferredReply; query: boolean } | { command: Command; print: string } {
    const { envelope } = incoming;
    const parsed = parseCommandOf(this.kind, envelope.type, envelope.payload, incoming.internal ?? false);
    if (!parsed.ok) return { answer: errorReply(parsed.code, parsed.message), query: false };
    const command = parsed.command;
    if (this.kind.queries.has(command.type)) return { answer: this.okReply(this.seqValue, [], this.state, command), query: true };
    const print = fingerprint(command.type, command.payload);
    const open = this.openSagas.get(envelope.id);
    if (open) return { answer: this.waitForSaga(envelope.id, open.fingerprint, print), query: false };
    const remembered = this.recent.get(envelope.id);
    if (remembered) return { answer: this.repeat(remembered, print, envelope.id), query: false };
    return { command, print };
  }

  /**
   * Decides `command` on `state` (committed, or speculative inside a batch). Pure but for the
   * facts it asks for: those known present (this actor's own, or looked up) answer yes; any
   * other is taken as absent and recorded, and the journal refuses the commit if it is not.
   */
  private decideOn(state: AnyMachineSnapshot, seq: number, incoming: Incoming, command: Command, print: string, unitFacts: ReadonlySet<string> = new Set()): Decided {
    if (!incoming.trace) return this.decideUntraced(state, seq, incoming, command, print, unitFacts);
    const decide = childSpan(incoming.trace.context, 'ppos.decide');
    let decided: Decided | undefined;
    try {
      decided = this.decideUntraced(state, seq, incoming, command, print, unitFacts);
      return decided;
    } finally {
      // A refusal is the command's answer, not a failure of the span.
      const refusal = decided?.stored.error;
      endSpan(decide.span, decided === undefined ? { ok: false, code: 'THREW' } : refusal ? { ok: true, code: refusal.reason ?? refusal.code } : { ok: true });
    }
  }

  private decideUntraced(state: AnyMachineSnapshot, seq: number, incoming: Incoming, command: Command, print: string, unitFacts: ReadonlySet<string>): Decided {
    const { envelope } = incoming;
    const assumed: string[] = [];
    const facts: Facts = {
      has: (key) => {
        if (unitFacts.has(key) || this.knownFacts.has(key)) return true;
        assumed.push(key);
        return false;
      },
    };
    const decision = decideOf(this.kind, state, command, this.ref.id, envelope.id, facts, incoming.receivedAt.getTime());
    const traceparent = incoming.trace && traceparentOf(incoming.trace.context);
    const unchanged = { incoming, command, print, event: null, next: state, seq, settlement: null, opensSaga: false, assumed, established: [], traceparent };
    if (decision.outcome === 'reject') {
      return { ...unchanged, stored: { ok: false, error: { code: 'REJECTED', reason: decision.reason, message: decision.message } } };
    }
    // Decided now, so in its type's current shape: marked so, it is never upcast.
    const event = decision.event && withVersion(decision.event, currentVersion(this.kind, decision.event.type));
    const after = event ? stateAfter(this.kind, state, event) : state;
    if (after === undefined) {
      const message = `${command.type} is not allowed in state ${JSON.stringify(state.value)}`;
      return { ...unchanged, stored: { ok: false, error: { code: 'REJECTED', reason: 'INVALID_STATE', message } } };
    }
    const next = after;
    const nextSeq = seq + (event ? 1 : 0);
    const settlement = event ? (this.kind.settlement?.(state, next) ?? null) : null;
    const opensSaga = event !== null && this.kind.openSaga?.(state) !== envelope.id && this.kind.openSaga?.(next) === envelope.id;
    const stored: StoredReply = { ok: true, seq: nextSeq, events: event ? [event] : [], ...(opensSaga ? { pending: true } : {}) };
    const established = event ? (this.kind.eventFacts?.(event) ?? []) : [];
    return { incoming, command, print, event, next, seq: nextSeq, stored, settlement, opensSaga, assumed, established, traceparent };
  }

  /**
   * The one commit path: journals a unit (one command, or a batch's plain commands) and answers
   * each of its commands. Journal first, memory second; a unit that did not commit as a whole is
   * taken apart, and each command decided again, alone, on committed state.
   */
  private async commit(unit: readonly Decided[], attempt = 0): Promise<Handled[]> {
    let decided = unit;
    if (unit.length === 1 && unit[0]!.settlement) {
      const prepared = await this.withSettledReply(unit[0]!);
      if (!('decided' in prepared)) return [prepared.reply];
      decided = [prepared.decided];
    }
    let result: UnitResult;
    const appendStarted = performance.now();
    // One commit, a span in each traced command's trace.
    const commitSpans = decided.flatMap((d) => (d.incoming.trace ? [childSpan(d.incoming.trace.context, 'ppos.journal.commit', undefined, { 'ppos.batch': decided.length }).span] : []));
    try {
      result = await this.options.journal.appendUnit({
        ref: this.ref,
        expectedSeq: this.seqValue,
        machineVersion: this.kind.machineVersion,
        ...this.options.fence(this.ref),
        entries: decided.map((d) => ({
          event: d.event,
          ...(d.event ? { eventVersion: currentVersion(this.kind, d.event.type) } : {}),
          // Timers the event sets or makes moot: in the same commit as the event.
          ...(d.event && this.kind.timerChanges ? { timers: this.kind.timerChanges(d.event) } : {}),
          messageId: d.incoming.envelope.id,
          idTime: messageIdTime(d.incoming.envelope.id),
          fingerprint: d.print,
          reply: d.stored,
          correlationId: d.incoming.envelope.correlationId,
          causationId: d.incoming.envelope.causationId,
          traceparent: d.traceparent,
          recordedAt: d.incoming.receivedAt,
          settles: d.settles,
          factsAssumedAbsent: d.assumed,
          factsEstablished: d.established,
        })),
      });
    } catch (error) {
      for (const span of commitSpans) endSpan(span, { ok: false, code: 'UNAVAILABLE', message: (error as Error).message });
      if (!(error instanceof JournalUnavailableError) || error.ambiguous) {
        // The commit may have landed: drop this memory so the next message reloads from the
        // journal, and answer nothing for these commands (see `Handled`).
        this.broken = true;
        this.options.logger.warn({ actor: refKey(this.ref), messageIds: decided.map((d) => d.incoming.envelope.id), err: (error as Error).message }, 'commit outcome unknown; not answered, a retry with the same id is answered from the journal');
        return decided.map(() => null);
      }
      return decided.map(() => errorReply('UNAVAILABLE', `${error.message}; nothing was applied, retry with the same id`));
    }
    this.options.metrics?.appendLatency(performance.now() - appendStarted);
    for (const span of commitSpans) endSpan(span, { ok: true, code: result.status });
    if (result.status === 'committed') return this.applyCommitted(decided, result.tokens ?? new Map());
    if (result.status === 'fenced') {
      // Ownership moved under us: this memory belongs to the past owner's view.
      this.broken = true;
      return decided.map(() => ownedElsewhere(this.ref));
    }
    if (decided.length > 1) return this.oneByOne(decided);
    const only = decided[0]!;
    const messageId = only.incoming.envelope.id;
    switch (result.status) {
      case 'duplicate': {
        const record = result.records[0]!;
        // The journal recorded this message past what memory holds: a commit this actor never
        // saw land (an append whose outcome was lost). Memory is behind the journal; drop it,
        // or a no-op decided next on the older state would slip past the journal's seq check.
        if (Math.max(record.seq, record.reply.seq ?? 0) > this.seqValue) this.broken = true;
        return [await this.answerRecorded(record, only.print, messageId, only.command)];
      }
      case 'conflict':
        return [await this.afterConflict(only, attempt)];
      case 'facts':
        return [await this.afterFacts(only, attempt)];
      case 'expired-id':
        return [
          errorReply('ID_REUSED', `message id ${messageId} may have been used here before, but dedupe retention has forgotten it; it is refused rather than decided again: send the command with a new id`, {
            reason: 'ID_EXPIRED',
          }),
        ];
      case 'invalid':
        return [errorReply('BAD_REQUEST', result.message)];
    }
  }

  /** Someone else appended to this actor's journal: reload, and decide once more on fresh state. */
  private async afterConflict(decided: Decided, attempt: number): Promise<Handled> {
    if (attempt > 0) {
      this.broken = true;
      return errorReply('UNAVAILABLE', 'another writer keeps appending to this actor; nothing was applied');
    }
    this.options.logger.warn({ actor: refKey(this.ref), seq: this.seqValue }, 'journal conflict; reloading');
    try {
      const reloaded = await loadState(this.options.journal, this.kind, this.ref);
      this.state = reloaded.state;
      this.seqValue = reloaded.seq;
      this.snapshotSeqValue = reloaded.snapshotSeq;
      this.snapshotBytes = reloaded.snapshotBytes;
    } catch (error) {
      this.broken = true;
      return errorReply('UNAVAILABLE', `could not reload after a journal conflict: ${(error as Error).message}`);
    }
    const again = this.decideOn(this.state, this.seqValue, decided.incoming, decided.command, decided.print);
    return (await this.commit([again], attempt + 1))[0]!;
  }

  /** A fact the decision took to be absent is in the journal: learn it, and decide once more. */
  private async afterFacts(decided: Decided, attempt: number): Promise<Handled> {
    if (attempt > 0 || !(await this.learnFacts(decided.assumed))) {
      return errorReply('UNAVAILABLE', 'could not read the facts this command depends on; nothing was applied, retry');
    }
    const again = this.decideOn(this.state, this.seqValue, decided.incoming, decided.command, decided.print);
    return (await this.commit([again], attempt + 1))[0]!;
  }

  /** Looks facts up in the journal and remembers those present; false when the journal cannot say. */
  private async learnFacts(keys: readonly string[]): Promise<boolean> {
    try {
      for (const key of await this.options.journal.presentFacts(this.ref, keys)) this.knownFacts.add(key);
      return true;
    } catch {
      return false;
    }
  }

  /** Nothing of the unit was written (a repeat the journal knew, a conflict, a bad value, a fact): each command alone. */
  private async oneByOne(unit: readonly Decided[]): Promise<Handled[]> {
    if (!(await this.learnFacts(unit.flatMap((d) => d.assumed)))) {
      return unit.map(() => errorReply('UNAVAILABLE', 'could not read the facts these commands depend on; nothing was applied, retry'));
    }
    const handled: Handled[] = [];
    for (const d of unit) {
      if (this.broken) {
        handled.push(reloading());
        continue;
      }
      const again = this.decideOn(this.state, this.seqValue, d.incoming, d.command, d.print);
      handled.push((await this.commit([again]))[0]!);
    }
    return handled;
  }

  /** The unit is in the journal: memory moves through each command's result, in order, then the replies. */
  private applyCommitted(unit: readonly Decided[], tokens: ReadonlyMap<string, string>): Handled[] {
    const handled: Handled[] = [];
    for (const d of unit) {
      const messageId = d.incoming.envelope.id;
      this.state = d.next;
      this.seqValue = d.seq;
      // A command that appended carries its event's commit token (CONTRACT.md section 3).
      const token = d.event ? tokens.get(messageId) : undefined;
      const reply = this.toReply(d.stored, d.next, d.command, token);
      for (const fact of d.established) this.knownFacts.add(fact);
      if (d.event) this.lastCause = { messageId, correlationId: d.incoming.envelope.correlationId ?? null, traceparent: d.traceparent ?? null };
      if (d.opensSaga && d.stored.pending) {
        handled.push(this.waitForSaga(messageId, d.print, d.print, false));
      } else {
        this.recent.remember(messageId, { fingerprint: d.print, reply });
        handled.push(reply);
      }
      // The settled reply ends with this event: its token is this event's.
      if (d.settles) this.finishSaga(d.settles.messageId, d.settles.reply, d.next, tokens.get(messageId));
      this.options.onCommitted?.(this, {
        messageId,
        event: d.event,
        seq: d.seq,
        reply,
        recordedAt: d.incoming.receivedAt,
        correlationId: d.incoming.envelope.correlationId,
        causationId: d.incoming.envelope.causationId,
      });
    }
    this.journalBytesSinceSnapshot += unit.length * JOURNAL_BYTES_PER_COMMAND;
    this.maybeSnapshot();
    return handled;
  }

  /**
   * A saga that settles with this command's event: its starting command's reply is final now,
   * and is recorded in the same statement as the event, so no crash can separate the two.
   */
  private async withSettledReply(decided: Decided): Promise<{ decided: Decided } | { reply: Reply }> {
    const reply = await this.settledReply(decided.settlement!, decided.event!, decided.seq);
    if (reply === null) return { reply: errorReply('UNAVAILABLE', 'could not read the saga to settle it; nothing was applied, retry') };
    // Started and settled by one command: its own reply is the settled one.
    if (decided.settlement!.messageId === decided.incoming.envelope.id) return { decided: { ...decided, stored: reply } };
    return { decided: { ...decided, settles: { messageId: decided.settlement!.messageId, reply } } };
  }

  /** The final reply of a saga's starting command: every event from its start to `lastEvent`. */
  private async settledReply(settlement: SagaSettlement, lastEvent: DomainEvent, lastSeq: number): Promise<StoredReply | null> {
    if (!settlement.outcome.ok) {
      const { reason, message, details } = settlement.outcome;
      return { ok: false, error: { code: 'REJECTED', reason, message, ...(details ?? {}) } };
    }
    try {
      const start = await this.options.journal.findDedupe(this.ref, settlement.messageId);
      const startSeq = start?.seq ?? lastSeq;
      const earlier = startSeq < lastSeq ? await this.options.journal.readEvents(this.ref, startSeq - 1, lastSeq - 1) : [];
      return { ok: true, seq: lastSeq, events: [...earlier.map((e) => e.event), lastEvent] };
    } catch {
      return null;
    }
  }

  private finishSaga(messageId: string, stored: StoredReply, state: AnyMachineSnapshot, token: string | undefined): void {
    const reply = this.toReply(stored, state, undefined, token);
    const open = this.openSagas.get(messageId);
    this.openSagas.delete(messageId);
    if (!open) return;
    this.recent.remember(messageId, { fingerprint: open.fingerprint, reply });
    for (const { wake, repeat } of open.waiters) wake(repeat ? { ...reply, duplicate: true } : reply);
  }

  /** Waits for the open saga of `messageId`; a repeat of the command waits for the same reply. */
  private waitForSaga(messageId: string, sagaFingerprint: string, incomingFingerprint: string, repeat = true): Reply | DeferredReply {
    if (sagaFingerprint !== incomingFingerprint) {
      return { ok: false, duplicate: true, error: { code: 'ID_REUSED', message: `message id ${messageId} was already used here for a different command` } };
    }
    let open = this.openSagas.get(messageId);
    if (!open) {
      open = { fingerprint: sagaFingerprint, waiters: [] };
      this.openSagas.set(messageId, open);
    }
    const saga = open;
    return { deferred: new Promise<Reply | null>((wake) => saga.waiters.push({ wake, repeat })) };
  }

  /** A message id the journal had recorded (after a restart, or past this cache). */
  private async answerRecorded(record: DedupeRecord, print: string, messageId: string, command: Command): Promise<Reply | DeferredReply> {
    if (record.reply.pending) {
      // Its saga is still running (this activation resumes it): wait for the settled reply.
      if (this.kind.openSaga?.(this.state) === messageId) return this.waitForSaga(messageId, record.fingerprint, print);
      // Applied, but memory does not show its saga: memory is behind the journal. Reload; say
      // nothing ("not applied" would be false), and the retry finds the saga.
      this.broken = true;
      return { deferred: Promise.resolve(null) };
    }
    let reply: Reply;
    // A settled saga's reply is at its settling event; the record's own seq stays at its start.
    const answeredAt = record.reply.seq ?? record.seq;
    if (!record.reply.ok || answeredAt === this.seqValue) {
      reply = this.toReply(record.reply, this.state, command, record.token);
    } else {
      // The first reply carried the state as it was right after it; rebuild exactly that.
      try {
        const then = await loadState(this.options.journal, this.kind, this.ref, answeredAt);
        reply = this.okReply(answeredAt, record.reply.events ?? [], then.state, command, record.token);
      } catch (error) {
        // A repeat of a command that was applied: "not applied" would be false, so no answer now.
        this.options.logger.warn({ actor: refKey(this.ref), messageId, err: (error as Error).message }, 'could not rebuild a recorded reply; not answered');
        return { deferred: Promise.resolve(null) };
      }
    }
    const entry = { fingerprint: record.fingerprint, reply };
    this.recent.remember(messageId, entry);
    return this.repeat(entry, print, messageId);
  }

  private repeat(entry: RememberedReply, print: string, messageId: string): Reply {
    const answer = answerRepeat(entry, print, messageId);
    if (answer.ok || answer.error.code !== 'ID_REUSED') {
      this.options.journal.noteDuplicate(this.ref, messageId).catch(() => undefined); // evidence only
    }
    return answer;
  }

  /** A recorded reply as sent: `state` is the actor's as it was right after the command (`about`). */
  /** `token`: the commit token of the reply's last event, for a reply that lists events. */
  private toReply(stored: StoredReply, state: AnyMachineSnapshot, about?: Command, token?: string): Reply {
    if (!stored.ok) return { ok: false, duplicate: false, error: stored.error as never };
    return this.okReply(stored.seq ?? this.seqValue, stored.events ?? [], state, about, token);
  }

  private okReply(seq: number, events: readonly DomainEvent[], state: AnyMachineSnapshot, about?: Command, token?: string): Reply {
    const withToken = token !== undefined && events.length > 0 ? { token } : {};
    return { ok: true, duplicate: false, seq, events, state: this.kind.view(state, about), ...withToken };
  }

  /** Saves a snapshot of the committed state now (e.g. before a handoff), unless one is current. */
  async snapshotNow(): Promise<void> {
    if (this.seqValue === 0 || this.seqValue === this.snapshotSeqValue) return;
    const snapshot = this.takeSnapshot();
    this.snapshotBytes = await this.options.journal.saveSnapshot(this.ref, snapshot);
    this.options.metrics?.snapshotSaved();
  }

  /**
   * Snapshot cost amortised O(1) per event: at least `snapshotEvery` events apart, and for a
   * large state only once the journal written since outweighs the last snapshot SNAPSHOT_WEIGHT
   * times (a large state is snapshotted rarely, a small one every `snapshotEvery` events).
   */
  private maybeSnapshot(): void {
    if (this.seqValue - this.snapshotSeqValue < (this.kind.snapshotEvery ?? this.options.snapshotEvery)) return;
    if (this.snapshotBytes > SMALL_SNAPSHOT_BYTES && this.journalBytesSinceSnapshot < SNAPSHOT_WEIGHT * this.snapshotBytes) return;
    const snapshot = this.takeSnapshot();
    // A snapshot is only an optimisation: losing one costs replay time, never correctness.
    this.options.journal.saveSnapshot(this.ref, snapshot).then(
      (bytes) => {
        this.snapshotBytes = bytes;
        this.options.metrics?.snapshotSaved();
      },
      (error: Error) => {
        this.options.logger.warn({ actor: refKey(this.ref), seq: snapshot.seq, err: error.message }, 'snapshot not saved');
      },
    );
  }

  private takeSnapshot(): StoredSnapshot {
    const snapshot = snapshotOf(this.kind, this.state, this.seqValue);
    this.snapshotSeqValue = snapshot.seq;
    this.journalBytesSinceSnapshot = 0;
    return snapshot;
  }
}
