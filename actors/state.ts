// Stepping an actor kind's machine purely: the same functions serve live handling,
// recovery, time travel and verification, so they cannot drift apart.
import { initialTransition, transition, type AnyMachineSnapshot } from 'xstate';
import type { ActorKind, DomainEvent } from './kind.js';

/** The plain-JSON form of a machine state, as stored in snapshots. */
export interface PersistedState {
  readonly value: unknown;
  readonly context: Record<string, unknown>;
}

export function initialState(kind: ActorKind): AnyMachineSnapshot {
  return initialTransition(kind.machine)[0] as AnyMachineSnapshot;
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
 * Applies one journaled event. Actions are discarded: effects are derived from state,
 * never replayed. A journaled event the machine refuses means the journal was written by
 * another machine version or is corrupt, so it is an error, never silently skipped.
 */
export function applyEvent(kind: ActorKind, state: AnyMachineSnapshot, event: DomainEvent): AnyMachineSnapshot {
  if (!state.can(event as never)) throw new EventRefusedError(kind.kind, event);
  return transition(kind.machine, state as never, event as never)[0] as AnyMachineSnapshot;
}

export function replay(kind: ActorKind, from: AnyMachineSnapshot, events: Iterable<DomainEvent>): AnyMachineSnapshot {
  let state = from;
  for (const event of events) state = applyEvent(kind, state, event);
  return state;
}

export function persistState(state: AnyMachineSnapshot): PersistedState {
  return { value: state.value, context: state.context as Record<string, unknown> };
}

export function restoreState(kind: ActorKind, persisted: PersistedState): AnyMachineSnapshot {
  return kind.machine.resolveState({ value: persisted.value as never, context: persisted.context }) as AnyMachineSnapshot;
}
