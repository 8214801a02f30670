// What every actor kind declares, in one place (cf. Akka's EventSourcedBehavior):
// its machine, how commands are parsed and decided, and how its state is shown.
// Everything here is pure: no clock, no randomness, no I/O.
import type { AnyStateMachine, AnyMachineSnapshot } from 'xstate';
import type { z } from 'zod';

/** A journaled domain event: a type plus plain JSON data. */
export interface DomainEvent {
  readonly type: string;
  readonly [field: string]: unknown;
}

/** A command after validation: its type and a payload that matched the kind's schema. */
export interface Command {
  readonly type: string;
  readonly payload: Record<string, unknown>;
}

export type ParseResult =
  | { readonly ok: true; readonly command: Command }
  | { readonly ok: false; readonly code: 'BAD_REQUEST' | 'UNKNOWN_COMMAND'; readonly message: string };

/**
 * What a command decides, given the state. At most one event per command, so a message id
 * names exactly one journal row and "no message id in two events" is checkable.
 */
export type Decision =
  | { readonly outcome: 'accept'; readonly event: DomainEvent | null }
  | { readonly outcome: 'reject'; readonly reason: string; readonly message: string };

/** A command one actor sends to another as part of a saga. */
export interface OutboundCommand {
  readonly kind: string;
  readonly id: string;
  /** Deterministic, so every re-send after a crash or timeout is deduplicated by the target. */
  readonly messageId: string;
  readonly type: string;
  readonly payload: Record<string, unknown>;
  /** Echoed back in the answer, so the sender knows which step it answers. */
  readonly tag: Record<string, unknown>;
}

/** The internal command that carries another actor's answer back into the saga's actor. */
export const ANSWER_COMMAND = '@Answer';

/** Payload of an ANSWER_COMMAND: the outbound command's tag plus the outcome. */
export interface AnswerPayload {
  readonly tag: Record<string, unknown>;
  readonly ok: boolean;
  readonly reason?: string;
}

/** A saga (started by one client command) finished with this event: the reply that command gets. */
export interface SagaSettlement {
  readonly messageId: string;
  readonly outcome: { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly message: string; readonly details?: Record<string, unknown> };
}

/**
 * Facts about an actor's past that its state does not hold (so that memory does not grow with
 * history): each is a key some journaled event established (`ActorKind.eventFacts`), and the
 * runtime answers from the journal's index of them.
 */
export interface Facts {
  has(key: string): boolean;
}

/** For decisions that need no facts, and for tools that only replay. */
export const NO_FACTS: Facts = { has: () => false };

/** The state as plain JSON (snapshots, hashes, tools) and back, for a context that is not plain JSON itself. */
export interface StateCodec {
  encode(context: Record<string, unknown>): Record<string, unknown>;
  decode(persisted: Record<string, unknown>): Record<string, unknown>;
}

export interface InvariantFailure {
  readonly invariant: string;
  readonly detail: string;
}

/** A durable timer: fires `command` (internal, with a deterministic id) at `dueAt` (ms since the epoch). */
export interface TimerSpec {
  readonly key: string;
  readonly dueAt: number;
  readonly command: { readonly type: string; readonly payload: Record<string, unknown> };
}

export interface TimerChanges {
  readonly set: readonly TimerSpec[];
  readonly clear: readonly string[];
}

/** An actor's replayed state, as a cross-actor invariant reads it. */
export interface ActorContext {
  readonly kind: string;
  readonly id: string;
  readonly value: unknown;
  readonly context: unknown;
}

export interface CrossFailure {
  readonly actor?: string;
  readonly detail: string;
}

/** An invariant over many actors' states (of any kinds), checked by `ppos verify --all` once sagas settle. */
export interface CrossInvariant {
  readonly name: string;
  check(actors: Iterable<ActorContext>): CrossFailure[];
}

export interface ActorKind {
  readonly kind: string;
  /** Bumped whenever the machine or context shape changes; snapshots of other versions are ignored. */
  readonly machineVersion: number;
  readonly machine: AnyStateMachine;
  /**
   * For a machine with a single state whose transitions only assign context: those transitions as
   * one pure function, undefined where the machine refuses the event. The machine is built from
   * it, so the two cannot disagree; events are applied with it (live, replay, time travel) rather
   * than by stepping the machine, which costs several times more per event.
   */
  evolve?(context: Record<string, unknown>, event: DomainEvent): Record<string, unknown> | undefined;
  /**
   * With `evolve`, for folding many events at once (replay): a context whose persistent parts
   * change in place (`draft`), and back to one that never changes again (`seal`). The fold then
   * copies what it touches once, not a path per event. Only the fold ever holds a draft.
   */
  readonly drafts?: {
    draft(context: Record<string, unknown>): Record<string, unknown>;
    seal(context: Record<string, unknown>): Record<string, unknown>;
  };
  /** Commands answered from state without journaling anything. */
  readonly queries: ReadonlySet<string>;
  readonly commands: ReadonlySet<string>;
  /** The payload schema of each command, as tools describe it (nodes advertise them as JSON Schema). */
  readonly commandSchemas?: Readonly<Record<string, z.ZodType>>;
  /** Parses a command of the kind's own (answers to its saga steps are the runtime's: `answers`). */
  parseCommand(type: string, payload: unknown): ParseResult;
  /**
   * `messageId` is the deciding message's id: a saga records which client command it answers.
   * `facts` answers what the state no longer holds (see `eventFacts`).
   */
  decide(state: AnyMachineSnapshot, command: Command, actorId: string, messageId: string, facts: Facts, receivedAt?: number): Decision;
  /** Commands only the runtime sends (a timer firing), by type: parsed only when internal. */
  readonly internalCommands?: Readonly<Record<string, z.ZodType<Record<string, unknown>>>>;
  /**
   * The timers an event sets (written in the same commit, fired later as the internal command
   * they name) and the ones it makes moot (removed in the same commit), by key.
   */
  timerChanges?(event: DomainEvent): TimerChanges;
  /** Every timer the state says is pending (for inspection, time travel and verify). */
  pendingTimers?(state: AnyMachineSnapshot): TimerSpec[];
  /** Keys of the facts an event establishes (e.g. `consumed:<reservation id>`), indexed by the journal. */
  eventFacts?(event: DomainEvent): readonly string[];
  /**
   * What a client sees, bounded whatever the actor's history: in a command's reply (`about`, the
   * command), as a query's answer (`about`, the query, which may ask for a page), and on inspection.
   */
  view(state: AnyMachineSnapshot, about?: Command): Record<string, unknown>;
  /** Present when the machine's context is not plain JSON (e.g. holds a persistent tree). */
  readonly codec?: StateCodec;
  /**
   * The context as inspection shows it, bounded (a page of a long collection, chosen by `page`);
   * absent: the whole persisted context, for kinds whose context is small by construction.
   */
  inspectContext?(state: AnyMachineSnapshot, page: Record<string, unknown>): Record<string, unknown>;
  /**
   * For a kind whose sagas send commands to other actors (`pendingEffects`): the runtime brings
   * each answer back as the internal command ANSWER_COMMAND, checks it (`tag` is the schema of
   * the tags this kind puts on its steps), and asks `decide`. No client can send it.
   */
  readonly answers?: {
    readonly tag: z.ZodType<Record<string, unknown>>;
    decide(state: AnyMachineSnapshot, answer: AnswerPayload): Decision;
  };
  /** Commands this actor still owes other actors, derived from journaled state only. */
  pendingEffects?(state: AnyMachineSnapshot, actorId: string): OutboundCommand[];
  /** The message id of the client command whose saga is open in this state, if any. */
  openSaga?(state: AnyMachineSnapshot): string | null;
  /** The saga that `before → after` settled, if it did. */
  settlement?(before: AnyMachineSnapshot, after: AnyMachineSnapshot): SagaSettlement | null;
  /** The version events of `type` are written at (absent: 1 for every type); see event-version.ts. */
  eventVersion?(type: string): number;
  /** `event`, written at `fromVersion` of its type, in the shape of version `fromVersion + 1`. Throws when it cannot. */
  upcast?(event: DomainEvent, fromVersion: number): DomainEvent;
  /** At least this many events between snapshots, for this kind (absent: the node's `--snapshot-every`). */
  readonly snapshotEvery?: number;
  /** Invariants across actors this kind takes part in; `verify --all` checks each once, by name. */
  readonly crossInvariants?: readonly CrossInvariant[];
  /** Names of the domain invariants `invariantFailures` checks. */
  readonly invariants: readonly string[];
  /** Domain invariants that must hold after every event; each failure names its invariant. */
  invariantFailures(state: AnyMachineSnapshot): InvariantFailure[];
}
