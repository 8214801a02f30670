// Stepping an actor kind's machine purely: the same functions serve live handling,
// recovery, time travel and verification, so they cannot drift apart.
import { createActor, type AnyActorScope, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';
import { currentEvent } from './event-version.js';
import type { ActorKind, DomainEvent } from './kind.js';

/**
 * One inert actor scope per machine, reused for every step. xstate's own `transition()` and
 * `initialTransition()` build a whole Actor (and actor system) on every call to get one, which
 * cost about 38 µs per event here against 7 µs with a reused scope. Reuse is safe because our
 * machines are pure (no invoke, spawn, delays or custom actions): the scope's only job is to
 * be there, and the action executor discards everything, as replay must.
 */
const inertScopes = new WeakMap<AnyStateMachine, AnyActorScope>();

function inertScope(machine: AnyStateMachine): AnyActorScope {
  let scope = inertScopes.get(machine);
  if (!scope) {
    const self = createActor(machine);
    scope = {
      self,
      id: '',
      sessionId: '',
      system: self.system,
      logger: () => undefined,
      defer: () => undefined,
      stopChild: () => undefined,
      emit: () => undefined,
      actionExecutor: () => undefined,
    } as AnyActorScope;
    inertScopes.set(machine, scope);
  }
  return scope;
}

/** The plain-JSON form of a machine state, as stored in snapshots. */
export interface PersistedState {
  readonly value: unknown;
  readonly context: Record<string, unknown>;
}

export function initialState(kind: ActorKind): AnyMachineSnapshot {
  return kind.machine.getInitialSnapshot(inertScope(kind.machine)) as AnyMachineSnapshot;
}

export class EventRefusedError extends Error {
  constructor(
    readonly kindName: string,
    readonly event: DomainEvent,
  ) {
    super(`the ${kindName} machine refuses journaled event ${event.type}: the journal and the machine disagree`);
  }
}

/**
 * Applies one journaled event, upcast to its type's current shape. Actions are discarded: effects are derived from state,
 * never replayed. A journaled event the machine refuses means the journal was written by
 * another machine version or is corrupt, so it is an error, never silently skipped.
 */
export function applyEvent(kind: ActorKind, state: AnyMachineSnapshot, journaled: DomainEvent): AnyMachineSnapshot {
  const next = stateAfter(kind, state, journaled);
  if (next === undefined) throw new EventRefusedError(kind.kind, currentEvent(kind, journaled));
  return next;
}

/**
 * The state after `journaled`, upcast to its type's current shape, or undefined when the machine
 * refuses it: what a decision asks of a new event (one evaluation, not a `can` and then a step).
 */
export function stateAfter(kind: ActorKind, state: AnyMachineSnapshot, journaled: DomainEvent): AnyMachineSnapshot | undefined {
  const event = currentEvent(kind, journaled);
  if (kind.evolve) {
    const context = kind.evolve(state.context as Record<string, unknown>, event);
    return context === undefined ? undefined : withContext(kind, state, context);
  }
  if (!state.can(event as never)) return undefined;
  return kind.machine.transition(state as never, event as never, inertScope(kind.machine)) as AnyMachineSnapshot;
}

export function replay(kind: ActorKind, from: AnyMachineSnapshot, events: Iterable<DomainEvent>): AnyMachineSnapshot {
  const { evolve } = kind;
  if (!evolve) {
    let state = from;
    for (const event of events) state = applyEvent(kind, state, event);
    return state;
  }
  // A single-state machine: fold the contexts (on a draft, when the kind has one), and make one
  // machine state of the last.
  let context = from.context as Record<string, unknown>;
  let drafted = false;
  for (const journaled of events) {
    if (!drafted && kind.drafts) {
      context = kind.drafts.draft(context);
      drafted = true;
    }
    const event = currentEvent(kind, journaled);
    const next = evolve(context, event);
    if (next === undefined) throw new EventRefusedError(kind.kind, event);
    context = next;
  }
  if (drafted) context = kind.drafts!.seal(context);
  return withContext(kind, from, context);
}

/** A single-state machine's state with another context. */
function withContext(kind: ActorKind, state: AnyMachineSnapshot, context: Record<string, unknown>): AnyMachineSnapshot {
  if (context === state.context) return state;
  return kind.machine.resolveState({ value: state.value, context, historyValue: state.historyValue }) as AnyMachineSnapshot;
}

/** The state as plain JSON: what snapshots store and state hashes cover. */
export function persistState(kind: ActorKind, state: AnyMachineSnapshot): PersistedState {
  const context = state.context as Record<string, unknown>;
  return { value: state.value, context: kind.codec ? kind.codec.encode(context) : context };
}

export function restoreState(kind: ActorKind, persisted: PersistedState): AnyMachineSnapshot {
  const context = kind.codec ? kind.codec.decode(persisted.context) : persisted.context;
  return kind.machine.resolveState({ value: persisted.value as never, context }) as AnyMachineSnapshot;
}
