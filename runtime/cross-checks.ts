// Invariants that span actors, checked by `ppos verify --all` over every replayed state: those
// the hosted kinds register (ActorKind.crossInvariants), each once by name.
import type { ActorKind } from '../actors/kind.js';
import type { CrossActorCheck } from './verify.js';

export function crossActorChecks(kinds: ReadonlyMap<string, ActorKind>): CrossActorCheck[] {
  const byName = new Map(
    [...kinds.values()].flatMap((kind) => kind.crossInvariants ?? []).map((invariant) => [invariant.name, invariant] as const),
  );
  return [...byName.values()].map((invariant) => (states) => ({
    check: invariant.name,
    failures: invariant.check([...states.values()].map(({ ref, state }) => ({ kind: ref.kind, id: ref.id, value: state.value, context: state.context }))),
  }));
}
