// The inventory actor: stock of one SKU (or SKU at a location), and the reservations
// holding it. The whole actor is declared here: payload schemas, events, machine,
// decisions, views, invariants.
//
// Its cost does not grow with its history (CONTRACT.md 4.8): open reservations live in a
// persistent B+ tree (O(log n) per change, see open-reservations.ts), and consumed ones do not
// live in memory at all. A `Consumed` event establishes the fact `consumed:<id>`, which the
// journal indexes; a decision that needs it asks for it (`facts.has`), and the runtime answers
// from the journal. Replies carry a bounded summary; `Get` pages the open reservations.
import { setup, type AnyMachineSnapshot } from 'xstate';
import { z } from 'zod';
import type { ActorKind, Command, Decision, DomainEvent, Facts, InvariantFailure, TimerChanges, TimerSpec } from './kind.js';
import { OpenReservations, type PersistedReservations } from './open-reservations.js';
import { actorId, MAX_QTY, nonNegativeQty, parseWith, positiveQty, reservationId, type PayloadSchemas } from './schema.js';

export type { Reservation } from './open-reservations.js';

export interface InventoryContext {
  readonly onHand: number;
  readonly reserved: number;
  /** Open reservations, ordered by id. */
  readonly reservations: OpenReservations;
}

export type InventoryEvent =
  | { type: 'Received'; qty: number }
  | { type: 'Reserved'; reservationId: string; qty: number; workOrderId?: string; expiresAt?: number }
  | { type: 'Released'; reservationId: string }
  | { type: 'HoldExpired'; reservationId: string }
  | { type: 'Consumed'; reservationId: string }
  | { type: 'Adjusted'; onHand: number };

/** A page of open reservations: at most 1000, 100 unless asked (CONTRACT.md section 5). */
export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1_000;
/** The longest hold: 30 days. */
export const MAX_HOLD_MS = 30 * 24 * 3_600_000;
const pageRequest = z
  .object({ after: reservationId.optional(), limit: z.number().int().min(1).max(MAX_PAGE).optional() })
  .strict()
  .optional();

const payloads = {
  Receive: z.object({ qty: positiveQty }).strict(),
  Reserve: z.object({ reservationId, qty: positiveQty, workOrderId: actorId.optional(), holdMs: z.number().int().positive().max(MAX_HOLD_MS).optional() }).strict(),
  Release: z.object({ reservationId }).strict(),
  Consume: z.object({ reservationId }).strict(),
  Adjust: z.object({ onHand: nonNegativeQty }).strict(),
  Get: z.object({ reservations: pageRequest }).strict(),
} satisfies PayloadSchemas;

/**
 * Commands only the runtime sends: a hold's timer firing (`dueAt`, the deadline it was set for,
 * so a timer left from an older hold of the same id expires nothing).
 */
const timerPayloads = {
  ExpireHold: z.object({ reservationId, dueAt: z.number().int().nonnegative() }).strict(),
} satisfies PayloadSchemas;

const available = (c: InventoryContext): number => c.onHand - c.reserved;

/** The fact a Consumed event establishes: looked up in the journal, never kept in memory. */
export const consumedFact = (reservationId: string): string => `consumed:${reservationId}`;

/**
 * What each event does to the state, and which events the machine refuses (undefined). The
 * refusals restate the invariant `0 <= reserved <= onHand`: even a decision bug cannot journal
 * an event that would break it. The machine's transitions are this function, and events are
 * applied with it directly (ActorKind.evolve).
 */
function evolve(c: InventoryContext, event: InventoryEvent): InventoryContext | undefined {
  switch (event.type) {
    case 'Received':
      return c.onHand + event.qty <= MAX_QTY ? { ...c, onHand: c.onHand + event.qty } : undefined;
    case 'Reserved':
      if (c.reservations.has(event.reservationId) || event.qty > available(c)) return undefined;
      return {
        ...c,
        reserved: c.reserved + event.qty,
        reservations: c.reservations.with(event.reservationId, {
          qty: event.qty,
          ...(event.workOrderId === undefined ? {} : { workOrderId: event.workOrderId }),
          ...(event.expiresAt === undefined ? {} : { expiresAt: event.expiresAt }),
        }),
      };
    // An expired hold frees its quantity as a release does.
    case 'Released':
    case 'HoldExpired': {
      const open = c.reservations.get(event.reservationId);
      if (!open) return undefined;
      return { ...c, reserved: c.reserved - open.qty, reservations: c.reservations.without(event.reservationId) };
    }
    case 'Consumed': {
      const open = c.reservations.get(event.reservationId);
      if (!open) return undefined;
      return { onHand: c.onHand - open.qty, reserved: c.reserved - open.qty, reservations: c.reservations.without(event.reservationId) };
    }
    case 'Adjusted':
      return event.onHand >= c.reserved ? { ...c, onHand: event.onHand } : undefined;
    default:
      return undefined;
  }
}

const inventorySetup = setup({
  types: { context: {} as InventoryContext, events: {} as InventoryEvent },
  guards: { allowed: ({ context, event }) => evolve(context, event) !== undefined },
});

/** Every event type takes the same transition: allowed where `evolve` allows it, to what it gives. */
const evolves = { guard: 'allowed', actions: inventorySetup.assign(({ context, event }) => evolve(context, event)!) } as const;

export const inventoryMachine = inventorySetup.createMachine({
  id: 'inventory',
  initial: 'active',
  context: { onHand: 0, reserved: 0, reservations: OpenReservations.empty },
  states: {
    active: {
      on: { Received: evolves, Reserved: evolves, Released: evolves, HoldExpired: evolves, Consumed: evolves, Adjusted: evolves },
    },
  },
});

function contextOf(state: AnyMachineSnapshot): InventoryContext {
  return state.context as InventoryContext;
}

const accept = (event: InventoryEvent | null): Decision => ({ outcome: 'accept', event });
const reject = (reason: string, message: string): Decision => ({ outcome: 'reject', reason, message });

/** `receivedAt`: when the command was received (ms), the start of a hold it asks for. */
function decide(state: AnyMachineSnapshot, command: Command, facts: Facts, receivedAt: number | undefined): Decision {
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
      if (c.reservations.has(id)) return accept(null); // already open: the contract's no-op success
      if (facts.has(consumedFact(id))) return reject('RESERVATION_CONSUMED', `reservation ${id} was already consumed`);
      if (available(c) < qty) return reject('INSUFFICIENT_STOCK', `available ${available(c)} < requested ${qty}`);
      const workOrderId = p.workOrderId as string | undefined;
      const holdMs = p.holdMs as number | undefined;
      if (holdMs !== undefined && receivedAt === undefined) return reject('NO_CLOCK', 'a hold needs the time its command was received');
      return accept({
        type: 'Reserved',
        reservationId: id,
        qty,
        ...(workOrderId === undefined ? {} : { workOrderId }),
        ...(holdMs === undefined ? {} : { expiresAt: receivedAt! + holdMs }),
      });
    }
    case 'ExpireHold': {
      const id = p.reservationId as string;
      // Only the hold this timer was set for: released, consumed or held again since, it stays.
      return accept(c.reservations.get(id)?.expiresAt === p.dueAt ? { type: 'HoldExpired', reservationId: id } : null);
    }
    case 'Release': {
      const id = p.reservationId as string;
      return accept(c.reservations.has(id) ? { type: 'Released', reservationId: id } : null);
    }
    case 'Consume': {
      const id = p.reservationId as string;
      if (c.reservations.has(id)) return accept({ type: 'Consumed', reservationId: id });
      if (facts.has(consumedFact(id))) return accept(null); // already consumed: a no-op success
      return reject('UNKNOWN_RESERVATION', `no open reservation ${id}`);
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

const summary = (c: InventoryContext): Record<string, unknown> => ({
  onHand: c.onHand,
  reserved: c.reserved,
  available: available(c),
  openReservations: c.reservations.size,
});

/**
 * What a client sees, bounded whatever the history: the summary; for a command naming a
 * reservation, that one (null when not open); for `Get`, one page of open reservations.
 */
function view(state: AnyMachineSnapshot, about?: Command): Record<string, unknown> {
  const c = contextOf(state);
  const named = about?.payload.reservationId;
  if (about?.type === 'Get') {
    const request = (about.payload.reservations ?? {}) as { after?: string; limit?: number };
    const page = c.reservations.page(request.after, request.limit ?? DEFAULT_PAGE);
    return { ...summary(c), reservations: page.reservations, ...(page.next !== undefined ? { next: page.next } : {}) };
  }
  if (typeof named === 'string') return { ...summary(c), reservation: c.reservations.get(named) ?? null };
  return summary(c);
}

/** The context on inspection: the scalars and one page of reservations (`page.reservations`: {after, limit}). */
function inspectContext(state: AnyMachineSnapshot, page: Record<string, unknown>): Record<string, unknown> {
  const request = pageRequest.safeParse(page.reservations);
  const { after, limit } = request.success ? (request.data ?? {}) : {};
  const c = contextOf(state);
  const shown = c.reservations.page(after, limit ?? DEFAULT_PAGE);
  return { onHand: c.onHand, reserved: c.reserved, openReservations: c.reservations.size, reservations: shown.reservations, ...(shown.next !== undefined ? { next: shown.next } : {}) };
}

function invariantFailures(state: AnyMachineSnapshot): InvariantFailure[] {
  const c = contextOf(state);
  const failures: InvariantFailure[] = [];
  if (c.reserved < 0 || c.reserved > c.onHand) {
    failures.push({ invariant: 'reserved_within_on_hand', detail: `0 <= reserved ${c.reserved} <= onHand ${c.onHand} fails` });
  }
  if (c.reservations.total !== c.reserved) {
    failures.push({ invariant: 'reserved_matches_reservations', detail: `reserved ${c.reserved} != sum of open reservations ${c.reservations.total}` });
  }
  return failures;
}

/**
 * The open reservations as a snapshot stores them: the three columns packed into one string
 * each (ids and work order ids one per line, quantities comma-separated; neither kind of id
 * can hold a newline or a comma). PostgreSQL turns a jsonb of a few long strings into text
 * four to six times faster than one of 100k array elements, and that conversion was most of
 * the time a large actor took to activate. Readable with SQL all the same:
 * `string_to_array(state->'context'->'reservations'->>'ids', E'\n')`.
 */
interface PackedReservations {
  readonly ids: string;
  readonly qty: string;
  readonly workOrderId: string;
  /** Hold deadlines, comma-separated, empty where none; absent when no reservation has one. */
  readonly expiresAt?: string;
}

interface PersistedInventory {
  readonly onHand: number;
  readonly reserved: number;
  readonly reservations: PackedReservations;
}

const pack = (columns: PersistedReservations): PackedReservations => ({
  ids: columns.ids.join('\n'),
  qty: columns.qty.join(','),
  workOrderId: columns.workOrderId.map((wo) => wo ?? '').join('\n'),
  ...(columns.expiresAt ? { expiresAt: columns.expiresAt.map((at) => (at === null ? '' : String(at))).join(',') } : {}),
});

/** What JSON would have to escape, besides the newlines between ids. */
const NEEDS_ESCAPE = /["\\\u0000-\u0009\u000b-\u001f]/;

/**
 * The ids, each a string of its own. `split` would give slices of the packed text, which V8
 * compares about four times slower, and the tree compares keys some twenty times a lookup: a
 * restored actor replayed and decided that much slower. One JSON.parse of them as an array
 * gives whole strings. Ids cannot hold a quote, a backslash or a control character; text
 * that does is not ppos's, and is split as it is (restore then judges it).
 */
function splitIds(text: string): string[] {
  if (NEEDS_ESCAPE.test(text)) return text.split('\n');
  return JSON.parse(`["${text.replaceAll('\n', '","')}"]`) as string[];
}

function unpack(packed: PackedReservations): PersistedReservations {
  if (packed.ids === '') return { ids: [], qty: [], workOrderId: [] };
  return {
    ids: splitIds(packed.ids),
    // Both without 100k intermediate strings: numbers parsed in one pass, and work order ids
    // only split when there is one (text of newlines alone is that many nulls, and one).
    qty: JSON.parse(`[${packed.qty}]`) as number[],
    workOrderId: /[^\n]/.test(packed.workOrderId) ? packed.workOrderId.split('\n').map((wo) => (wo === '' ? null : wo)) : new Array<null>(packed.workOrderId.length + 1).fill(null),
    ...(packed.expiresAt === undefined ? {} : { expiresAt: packed.expiresAt.split(',').map((at) => (at === '' ? null : Number(at))) }),
  };
}

/** A hold's timer is keyed by its reservation id: set by the Reserved that starts it, cleared by whatever closes it. */
function timerChanges(event: DomainEvent): TimerChanges {
  const id = String(event.reservationId);
  if (event.type === 'Reserved' && typeof event.expiresAt === 'number') {
    return { set: [{ key: id, dueAt: event.expiresAt, command: { type: 'ExpireHold', payload: { reservationId: id, dueAt: event.expiresAt } } }], clear: [] };
  }
  if (event.type === 'Released' || event.type === 'Consumed' || event.type === 'HoldExpired') return { set: [], clear: [id] };
  return { set: [], clear: [] };
}

/** The timers the state says are pending: one per open hold with a deadline (a walk of every open reservation). */
function pendingTimers(state: AnyMachineSnapshot): TimerSpec[] {
  const timers: TimerSpec[] = [];
  for (const [id, reservation] of contextOf(state).reservations.entries()) {
    if (reservation.expiresAt === undefined) continue;
    timers.push({ key: id, dueAt: reservation.expiresAt, command: { type: 'ExpireHold', payload: { reservationId: id, dueAt: reservation.expiresAt } } });
  }
  return timers;
}

export const inventory: ActorKind = {
  kind: 'inventory',
  // 2: open reservations as a persistent tree (persisted as columns), consumed ids out of the state.
  machineVersion: 2,
  machine: inventoryMachine,
  evolve: (context, event) => evolve(context as unknown as InventoryContext, event as unknown as InventoryEvent) as unknown as Record<string, unknown> | undefined,
  drafts: {
    draft: (context) => ({ ...context, reservations: (context as unknown as InventoryContext).reservations.draft() }),
    seal: (context) => ({ ...context, reservations: (context as unknown as InventoryContext).reservations.seal() }),
  },
  queries: new Set(['Get']),
  commands: new Set(Object.keys(payloads)),
  commandSchemas: payloads,
  parseCommand: (type, payload) => parseWith('inventory', payloads, type, payload),
  internalCommands: timerPayloads,
  decide: (state, command, _actorId, _messageId, facts, receivedAt) => decide(state, command, facts, receivedAt),
  timerChanges,
  pendingTimers,
  eventFacts: (event: DomainEvent) => (event.type === 'Consumed' ? [consumedFact(String(event.reservationId))] : []),
  view,
  inspectContext,
  codec: {
    encode: (context) => {
      const c = context as unknown as InventoryContext;
      const persisted: PersistedInventory = { onHand: c.onHand, reserved: c.reserved, reservations: pack(c.reservations.persist()) };
      return persisted as unknown as Record<string, unknown>;
    },
    decode: (json) => {
      const p = json as unknown as PersistedInventory;
      const context: InventoryContext = { onHand: p.onHand, reserved: p.reserved, reservations: OpenReservations.restore(unpack(p.reservations)) };
      return context as unknown as Record<string, unknown>;
    },
  },
  invariants: ['reserved_within_on_hand', 'reserved_matches_reservations'],
  invariantFailures,
};

/** The inventory kind's commands, for a typed client (`clientFor(client, inventoryCommands)`). */
export const inventoryCommands = { kind: 'inventory', commandSchemas: payloads } as const;
