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
  if (kind.evolve) return replay(kind, state, [journaled]);
  const event = currentEvent(kind, journaled);
  if (!state.can(event as never)) throw new EventRefusedError(kind.kind, event);
  return kind.machine.transition(state as never, event as never, inertScope(kind.machine)) as AnyMachineSnapshot;
}

export function replay(kind: ActorKind, from: AnyMachineSnapshot, events: Iterable<DomainEvent>): AnyMachineSnapshot {
  const { evolve } = kind;
  if (!evolve) {
    let state = from;
    for (const event of events) state = applyEvent(kind, state, event);
    return state;
  }
  // A single-state machine: fold the contexts, and make one machine state of the last.
  let context = from.context as Record<string, unknown>;
  for (const journaled of events) {
    const event = currentEvent(kind, journaled);
    const next = evolve(context, event);
    if (next === undefined) throw new EventRefusedError(kind.kind, event);
    context = next;
  }
  if (context === from.context) return from;
  return kind.machine.resolveState({ value: from.value, context, historyValue: from.historyValue }) as AnyMachineSnapshot;
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
