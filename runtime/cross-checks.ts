// Invariants that span actors, checked by `ppos verify` over every replayed state.
import { reservationsMatchWorkOrders } from '../actors/cross-invariants.js';
import type { CrossActorCheck } from './verify.js';

const reservationInvariant: CrossActorCheck = (states) => ({
  check: 'workorder_reservations_match_inventory',
  failures: reservationsMatchWorkOrders(
    [...states.values()].map(({ ref, state }) => ({ kind: ref.kind, id: ref.id, value: state.value, context: state.context })),
  ),
});

export const crossActorChecks: readonly CrossActorCheck[] = [reservationInvariant];
