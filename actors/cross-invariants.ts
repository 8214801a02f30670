// The contract's cross-actor invariant, as a pure function over replayed states: once every
// saga has settled, the open reservations carrying a workOrderId are exactly those held by
// released / in-progress work orders (a reservation made directly by a client, without a
// workOrderId, belongs to no work order). Work orders with an open saga are left out: their
// reservations are legitimately in motion.
import type { InventoryContext } from './inventory.js';
import type { ActorContext, CrossFailure, CrossInvariant } from './kind.js';
import type { WorkOrderContext } from './workorder.js';

const HOLDING = new Set(['releasing', 'released', 'in_progress']);

export function reservationsMatchWorkOrders(actors: Iterable<ActorContext>): CrossFailure[] {
  const failures: CrossFailure[] = [];
  // reservation key (sku/reservationId) → qty, from each side
  const heldByOrders = new Map<string, { qty: number; workOrderId: string }>();
  const inMotion = new Set<string>();
  const openAtInventory = new Map<string, { qty: number; workOrderId: string }>();
  for (const actor of actors) {
    if (actor.kind === 'workorder') {
      const c = actor.context as WorkOrderContext;
      if (c.saga) {
        inMotion.add(actor.id);
        continue;
      }
      if (!HOLDING.has(String(actor.value))) continue;
      for (const line of c.lines) {
        if (line.status === 'held') heldByOrders.set(`${line.sku}/${line.reservationId}`, { qty: line.qty, workOrderId: actor.id });
      }
    } else if (actor.kind === 'inventory') {
      const c = actor.context as InventoryContext;
      for (const [reservationId, reservation] of c.reservations.entries()) {
        if (reservation.workOrderId === undefined) continue;
        openAtInventory.set(`${actor.id}/${reservationId}`, { qty: reservation.qty, workOrderId: reservation.workOrderId });
      }
    }
  }
  for (const [key, open] of openAtInventory) {
    if (inMotion.has(open.workOrderId)) continue;
    const held = heldByOrders.get(key);
    if (!held) failures.push({ actor: `inventory/${key.split('/')[0]}`, detail: `reservation ${key.split('/')[1]} is open but work order ${open.workOrderId} does not hold it` });
    else if (held.qty !== open.qty) failures.push({ actor: `inventory/${key.split('/')[0]}`, detail: `reservation ${key.split('/')[1]} holds ${open.qty}, work order expects ${held.qty}` });
  }
  for (const [key, held] of heldByOrders) {
    if (!openAtInventory.has(key)) failures.push({ actor: `workorder/${held.workOrderId}`, detail: `holds reservation ${key} that is not open at the inventory` });
  }
  return failures;
}

/** Registered by the work order kind: it names the inventory reservations its sagas hold. */
export const workOrderReservations: CrossInvariant = { name: 'workorder_reservations_match_inventory', check: reservationsMatchWorkOrders };
