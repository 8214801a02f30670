// An independent model of the contract's inventory table (section 5), kept in Maps so that no
// reservation id, however it is spelled, can mean anything but itself. Tests check the
// machine against it. The model remembers every consumed id; the actor does not (its state
// must not grow with history): it learns of them through facts its Consumed events establish.
import type { InventoryEvent, Reservation } from '../../actors/inventory.js';
import { MAX_QTY } from '../../actors/schema.js';

/** What the contract says a command does: one event, nothing, or a rejection with its reason. */
export type Expected = { readonly outcome: 'event'; readonly event: InventoryEvent } | { readonly outcome: 'noop' } | { readonly outcome: 'rejected'; readonly reason: string };

/** `event`, `noop` or the rejection reason, for counting and comparing outcomes. */
export const outcomeLabel = (expected: Expected): string => (expected.outcome === 'rejected' ? expected.reason : expected.outcome);

const event = (e: InventoryEvent): Expected => ({ outcome: 'event', event: e });
const noop: Expected = { outcome: 'noop' };
const rejected = (reason: string): Expected => ({ outcome: 'rejected', reason });

/**
 * The key of the fact "reservation `id` was consumed", restated rather than imported: the journal
 * indexes facts by this key, so it is part of what is stored and must not change unnoticed.
 */
export const consumedFactKey = (id: string): string => `consumed:${id}`;

export class InventoryModel {
  onHand = 0;
  readonly reservations = new Map<string, Reservation>();
  /** Consumed ids and the quantity each took out of onHand. */
  readonly consumed = new Map<string, number>();

  /** The facts the model's history has established: one per consumed id. */
  get facts(): Set<string> {
    return new Set([...this.consumed.keys()].map(consumedFactKey));
  }

  get reserved(): number {
    let sum = 0;
    for (const reservation of this.reservations.values()) sum += reservation.qty;
    return sum;
  }

  /** The outcome the contract gives `type` with a valid `payload`, applied to the model. */
  apply(type: string, p: Record<string, unknown>): Expected {
    switch (type) {
      case 'Receive': {
        const qty = p.qty as number;
        if (this.onHand + qty > MAX_QTY) return rejected('QUANTITY_OVERFLOW');
        this.onHand += qty;
        return event({ type: 'Received', qty });
      }
      case 'Reserve':
        return this.reserve(p.reservationId as string, p.qty as number, p.workOrderId as string | undefined);
      case 'Release': {
        const reservationId = p.reservationId as string;
        return this.reservations.delete(reservationId) ? event({ type: 'Released', reservationId }) : noop;
      }
      case 'Consume':
        return this.consume(p.reservationId as string);
      case 'Adjust': {
        const onHand = p.onHand as number;
        if (onHand < this.reserved) return rejected('BELOW_RESERVED');
        this.onHand = onHand;
        return event({ type: 'Adjusted', onHand });
      }
      default:
        throw new Error(`model has no ${type}`);
    }
  }

  private reserve(reservationId: string, qty: number, workOrderId: string | undefined): Expected {
    if (this.reservations.has(reservationId)) return noop;
    if (this.consumed.has(reservationId)) return rejected('RESERVATION_CONSUMED');
    if (this.onHand - this.reserved < qty) return rejected('INSUFFICIENT_STOCK');
    this.reservations.set(reservationId, workOrderId === undefined ? { qty } : { qty, workOrderId });
    return event(workOrderId === undefined ? { type: 'Reserved', reservationId, qty } : { type: 'Reserved', reservationId, qty, workOrderId });
  }

  private consume(reservationId: string): Expected {
    if (this.consumed.has(reservationId)) return noop;
    const reservation = this.reservations.get(reservationId);
    if (reservation === undefined) return rejected('UNKNOWN_RESERVATION');
    this.reservations.delete(reservationId);
    this.consumed.set(reservationId, reservation.qty);
    this.onHand -= reservation.qty;
    return event({ type: 'Consumed', reservationId });
  }
}
