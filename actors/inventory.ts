// The inventory actor: stock of one SKU (or SKU at a location), and the reservations
// holding it. The whole actor is declared here: payload schemas, events, machine,
// decisions, invariants. Snapshot cadence is the runtime's `--snapshot-every`.
import { assign, setup, type AnyMachineSnapshot } from 'xstate';
import { z } from 'zod';
import type { ActorKind, Decision, InvariantFailure } from './kind.js';
import { actorId, MAX_QTY, nonNegativeQty, parseWith, positiveQty, reservationId, type PayloadSchemas } from './schema.js';

export interface Reservation {
  readonly qty: number;
  readonly workOrderId?: string;
}

export interface InventoryContext {
  readonly onHand: number;
  readonly reserved: number;
  /** Open reservations by id; read only through `hasOpen` / `openQty`, since ids may name Object.prototype members. */
  readonly reservations: Readonly<Record<string, Reservation>>;
  /** Consumed reservation ids and their quantities, so a repeated Consume is a no-op; read only through `hasConsumed`. */
  readonly consumed: Readonly<Record<string, number>>;
}

export type InventoryEvent =
  | { type: 'Received'; qty: number }
  | { type: 'Reserved'; reservationId: string; qty: number; workOrderId?: string }
  | { type: 'Released'; reservationId: string }
  | { type: 'Consumed'; reservationId: string }
  | { type: 'Adjusted'; onHand: number };

const payloads = {
  Receive: z.object({ qty: positiveQty }).strict(),
  Reserve: z.object({ reservationId, qty: positiveQty, workOrderId: actorId.optional() }).strict(),
  Release: z.object({ reservationId }).strict(),
  Consume: z.object({ reservationId }).strict(),
  Adjust: z.object({ onHand: nonNegativeQty }).strict(),
  Get: z.object({}).strict(),
} satisfies PayloadSchemas;

const available = (c: InventoryContext): number => c.onHand - c.reserved;

// Own properties only: `id in record` or `record[id]` would find `constructor`, `toString` or
// `__proto__` on Object.prototype, and those are ordinary reservation ids (contract section 5).
const hasOpen = (c: InventoryContext, id: string): boolean => Object.hasOwn(c.reservations, id);
const hasConsumed = (c: InventoryContext, id: string): boolean => Object.hasOwn(c.consumed, id);
const openQty = (c: InventoryContext, id: string): number => (hasOpen(c, id) ? c.reservations[id]!.qty : 0);

/** `record` less `key`, copied as own data properties (a `__proto__` key stays an ordinary key). */
function without<V>(record: Readonly<Record<string, V>>, key: string): Record<string, V> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => k !== key));
}

export const inventoryMachine = setup({
  types: { context: {} as InventoryContext, events: {} as InventoryEvent },
  guards: {
    // The guards restate the invariant `0 <= reserved <= onHand`: even a decision bug
    // cannot journal an event that would break it.
    fitsOnHand: ({ context, event }) => event.type === 'Received' && context.onHand + event.qty <= MAX_QTY,
    fitsAvailable: ({ context, event }) =>
      event.type === 'Reserved' && !hasOpen(context, event.reservationId) && event.qty <= available(context),
    isOpen: ({ context, event }) =>
      (event.type === 'Released' || event.type === 'Consumed') && hasOpen(context, event.reservationId),
    coversReserved: ({ context, event }) => event.type === 'Adjusted' && event.onHand >= context.reserved,
  },
}).createMachine({
  id: 'inventory',
  initial: 'active',
  context: { onHand: 0, reserved: 0, reservations: {}, consumed: {} },
  states: {
    active: {
      on: {
        Received: {
          guard: 'fitsOnHand',
          actions: assign({ onHand: ({ context, event }) => context.onHand + event.qty }),
        },
        Reserved: {
          guard: 'fitsAvailable',
          actions: assign(({ context, event }) => ({
            reserved: context.reserved + event.qty,
            // A computed key in a literal defines an own property, even for `__proto__`.
            reservations: {
              ...context.reservations,
              [event.reservationId]: event.workOrderId === undefined ? { qty: event.qty } : { qty: event.qty, workOrderId: event.workOrderId },
            },
          })),
        },
        Released: {
          guard: 'isOpen',
          actions: assign(({ context, event }) => ({
            reserved: context.reserved - openQty(context, event.reservationId),
            reservations: without(context.reservations, event.reservationId),
          })),
        },
        Consumed: {
          guard: 'isOpen',
          actions: assign(({ context, event }) => {
            const qty = openQty(context, event.reservationId);
            return {
              onHand: context.onHand - qty,
              reserved: context.reserved - qty,
              reservations: without(context.reservations, event.reservationId),
              consumed: { ...context.consumed, [event.reservationId]: qty },
            };
          }),
        },
        Adjusted: {
          guard: 'coversReserved',
          actions: assign({ onHand: ({ event }) => event.onHand }),
        },
      },
    },
  },
});

function contextOf(state: AnyMachineSnapshot): InventoryContext {
  return state.context as InventoryContext;
}

const accept = (event: InventoryEvent | null): Decision => ({ outcome: 'accept', event });
const reject = (reason: string, message: string): Decision => ({ outcome: 'reject', reason, message });

function decide(state: AnyMachineSnapshot, command: { type: string; payload: Record<string, unknown> }): Decision {
  const c = contextOf(state);
  const p = command.payload;
  switch (command.type) {
    case 'Receive': {
      const qty = p.qty as number;
      if (c.onHand + qty > MAX_QTY) return reject('QUANTITY_OVERFLOW', `onHand ${c.onHand} + ${qty} exceeds ${MAX_QTY}`);
      return accept({ type: 'Received', qty });
    }
    case 'Reserve': {
      const id = p.reservationId as string;
      const qty = p.qty as number;
      if (hasOpen(c, id)) return accept(null); // already open: the contract's no-op success
      if (hasConsumed(c, id)) return reject('RESERVATION_CONSUMED', `reservation ${id} was already consumed`);
      if (available(c) < qty) return reject('INSUFFICIENT_STOCK', `available ${available(c)} < requested ${qty}`);
      const workOrderId = p.workOrderId as string | undefined;
      return accept(workOrderId === undefined ? { type: 'Reserved', reservationId: id, qty } : { type: 'Reserved', reservationId: id, qty, workOrderId });
    }
    case 'Release': {
      const id = p.reservationId as string;
      return accept(hasOpen(c, id) ? { type: 'Released', reservationId: id } : null);
    }
    case 'Consume': {
      const id = p.reservationId as string;
      if (hasConsumed(c, id)) return accept(null);
      if (!hasOpen(c, id)) return reject('UNKNOWN_RESERVATION', `no open reservation ${id}`);
      return accept({ type: 'Consumed', reservationId: id });
    }
    case 'Adjust': {
      const onHand = p.onHand as number;
      if (onHand < c.reserved) return reject('BELOW_RESERVED', `onHand ${onHand} would be below reserved ${c.reserved}`);
      // Journaled even when unchanged: a confirmed cycle count is part of the audit trail.
      return accept({ type: 'Adjusted', onHand });
    }
    default:
      return reject('UNSUPPORTED', `inventory cannot decide ${command.type}`);
  }
}

function publicState(state: AnyMachineSnapshot): Record<string, unknown> {
  const c = contextOf(state);
  return { onHand: c.onHand, reserved: c.reserved, available: available(c), reservations: c.reservations };
}

function invariantFailures(state: AnyMachineSnapshot): InvariantFailure[] {
  const c = contextOf(state);
  const failures: InvariantFailure[] = [];
  const sum = Object.values(c.reservations).reduce((total, r) => total + r.qty, 0);
  if (c.reserved < 0 || c.reserved > c.onHand) {
    failures.push({ invariant: 'reserved_within_on_hand', detail: `0 <= reserved ${c.reserved} <= onHand ${c.onHand} fails` });
  }
  if (sum !== c.reserved) {
    failures.push({ invariant: 'reserved_matches_reservations', detail: `reserved ${c.reserved} != sum of open reservations ${sum}` });
  }
  return failures;
}

export const inventory: ActorKind = {
  kind: 'inventory',
  machineVersion: 1,
  machine: inventoryMachine,
  queries: new Set(['Get']),
  commands: new Set(Object.keys(payloads)),
  parseCommand: (type, payload) => parseWith('inventory', payloads, type, payload),
  decide,
  publicState,
  invariants: ['reserved_within_on_hand', 'reserved_matches_reservations'],
  invariantFailures,
};
