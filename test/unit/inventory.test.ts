// The inventory actor as a pure function: commands are parsed and decided, events applied,
// with no services. What the runtime does with a decision is tested over NATS elsewhere.
// Consumed ids are not in the state: a decision learns of them through facts, which here come
// from a Set of what the events so far established, as the runtime answers them from the journal.
import type { AnyMachineSnapshot } from 'xstate';
import { describe, expect, it } from 'vitest';
import { consumedFact, DEFAULT_PAGE, inventory, MAX_PAGE, type InventoryContext, type InventoryEvent } from '../../actors/inventory.js';
import { NO_FACTS, type Command, type DomainEvent, type Facts } from '../../actors/kind.js';
import type { ListedReservation } from '../../actors/open-reservations.js';
import { MAX_QTY } from '../../actors/schema.js';
import { applyEvent, EventRefusedError, initialState, persistState, replay, restoreState } from '../../actors/state.js';
import { snapshotOf, stateHash } from '../../runtime/recovery.js';
import { Random } from '../../src/random.js';
import { consumedFactKey, InventoryModel, outcomeLabel } from './inventory-model.js';

type Outcome =
  | { kind: 'event'; event: DomainEvent; state: AnyMachineSnapshot }
  | { kind: 'noop'; state: AnyMachineSnapshot }
  | { kind: 'rejected'; reason: string; state: AnyMachineSnapshot }
  | { kind: 'invalid'; code: 'BAD_REQUEST' | 'UNKNOWN_COMMAND'; message: string; state: AnyMachineSnapshot };

/** The facts established so far, as the journal's index answers them. */
const factsOf = (established: ReadonlySet<string>): Facts => ({ has: (key) => established.has(key) });

/** Adds the facts `event` establishes to `established`. */
function establish(established: Set<string>, event: DomainEvent): void {
  for (const key of inventory.eventFacts!(event)) established.add(key);
}

/** What the actor host does with one command, minus the journal: parse, decide (given the facts established), apply. */
function step(state: AnyMachineSnapshot, type: string, payload?: unknown, established: ReadonlySet<string> = new Set()): Outcome {
  const parsed = inventory.parseCommand(type, payload);
  if (!parsed.ok) return { kind: 'invalid', code: parsed.code, message: parsed.message, state };
  const decision = inventory.decide(state, parsed.command, 'sku-1', `m-${type}`, factsOf(established));
  if (decision.outcome === 'reject') return { kind: 'rejected', reason: decision.reason, state };
  if (decision.event === null) return { kind: 'noop', state };
  return { kind: 'event', event: decision.event, state: applyEvent(inventory, state, decision.event) };
}

/** Runs commands that must all succeed; returns the final state, the events they produced and the facts those established. */
function run(
  commands: [string, Record<string, unknown>][],
  from = initialState(inventory),
): { state: AnyMachineSnapshot; events: DomainEvent[]; facts: Set<string> } {
  let state = from;
  const events: DomainEvent[] = [];
  const facts = new Set<string>();
  for (const [type, payload] of commands) {
    const outcome = step(state, type, payload, facts);
    if (outcome.kind === 'rejected' || outcome.kind === 'invalid') throw new Error(`${type} ${JSON.stringify(payload)} failed: ${JSON.stringify(outcome)}`);
    if (outcome.kind === 'event') {
      events.push(outcome.event);
      establish(facts, outcome.event);
    }
    state = outcome.state;
  }
  return { state, events, facts };
}

const ctx = (state: AnyMachineSnapshot): InventoryContext => state.context as InventoryContext;
/** A parsed command, as the runtime hands it to `view`. */
function command(type: string, payload?: unknown): Command {
  const parsed = inventory.parseCommand(type, payload);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.command;
}
/** The summary a command that names no reservation gets in its reply. */
const view = (state: AnyMachineSnapshot): Record<string, unknown> => inventory.view(state);
/** What `Get` answers: the summary plus one page of open reservations. */
const listed = (state: AnyMachineSnapshot, payload: Record<string, unknown> = {}): Record<string, unknown> => inventory.view(state, command('Get', payload));
/** The ids a page lists, in the order it lists them (a page is an array of `{id, qty, workOrderId?}`). */
function idsOf(reservations: unknown): string[] {
  expect(Array.isArray(reservations), 'a page of reservations is an array').toBe(true);
  return (reservations as readonly ListedReservation[]).map((r) => r.id);
}

describe('inventory commands', () => {
  it('starts empty', () => {
    expect(view(initialState(inventory))).toEqual({ onHand: 0, reserved: 0, available: 0, openReservations: 0 });
    expect(listed(initialState(inventory))).toEqual({ onHand: 0, reserved: 0, available: 0, openReservations: 0, reservations: [] });
  });

  it('Receive adds to onHand', () => {
    const first = step(initialState(inventory), 'Receive', { qty: 10 });
    expect(first.kind === 'event' && first.event).toEqual({ type: 'Received', qty: 10 });
    const second = step(first.state, 'Receive', { qty: 5 });
    expect(view(second.state)).toEqual({ onHand: 15, reserved: 0, available: 15, openReservations: 0 });
  });

  it('Receive beyond the quantity cap is REJECTED/QUANTITY_OVERFLOW and changes nothing', () => {
    const { state } = run([['Receive', { qty: MAX_QTY }]]);
    const over = step(state, 'Receive', { qty: 1 });
    expect(over).toMatchObject({ kind: 'rejected', reason: 'QUANTITY_OVERFLOW' });
    expect(ctx(over.state).onHand).toBe(MAX_QTY);
  });

  it('Reserve holds stock, with and without a work order id', () => {
    const { state, events } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Reserve', { reservationId: 'wo-1:0', qty: 3, workOrderId: 'wo-1' }],
    ]);
    expect(events.slice(1)).toEqual([
      { type: 'Reserved', reservationId: 'r1', qty: 4 },
      { type: 'Reserved', reservationId: 'wo-1:0', qty: 3, workOrderId: 'wo-1' },
    ]);
    expect(listed(state)).toEqual({
      onHand: 10,
      reserved: 7,
      available: 3,
      openReservations: 2,
      reservations: [
        { id: 'r1', qty: 4 },
        { id: 'wo-1:0', qty: 3, workOrderId: 'wo-1' },
      ],
    });
  });

  it('Reserve of exactly the available stock succeeds; one more is REJECTED/INSUFFICIENT_STOCK', () => {
    const { state } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 6 }],
    ]);
    const short = step(state, 'Reserve', { reservationId: 'r2', qty: 5 });
    expect(short).toMatchObject({ kind: 'rejected', reason: 'INSUFFICIENT_STOCK' });
    expect(short.state).toBe(state);
    const exact = step(state, 'Reserve', { reservationId: 'r2', qty: 4 });
    expect(exact.kind).toBe('event');
    expect(view(exact.state)).toMatchObject({ reserved: 10, available: 0 });
  });

  it('Reserve with no stock at all is REJECTED/INSUFFICIENT_STOCK', () => {
    expect(step(initialState(inventory), 'Reserve', { reservationId: 'r1', qty: 1 })).toMatchObject({ kind: 'rejected', reason: 'INSUFFICIENT_STOCK' });
  });

  it('Reserve of an already-open reservation id is a no-op success, even with another qty', () => {
    const { state } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
    ]);
    expect(step(state, 'Reserve', { reservationId: 'r1', qty: 4 })).toEqual({ kind: 'noop', state });
    // Not an INSUFFICIENT_STOCK either: the reservation is already held.
    expect(step(state, 'Reserve', { reservationId: 'r1', qty: 9 })).toEqual({ kind: 'noop', state });
  });

  it('Reserve of a consumed reservation id is REJECTED/RESERVATION_CONSUMED', () => {
    const { state, facts } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Consume', { reservationId: 'r1' }],
    ]);
    expect(facts).toEqual(new Set(['consumed:r1']));
    expect(step(state, 'Reserve', { reservationId: 'r1', qty: 4 }, facts)).toMatchObject({ kind: 'rejected', reason: 'RESERVATION_CONSUMED', state });
    // Checked before the stock: a consumed id is refused as consumed even when the stock is short.
    expect(step(state, 'Reserve', { reservationId: 'r1', qty: 7 }, facts)).toMatchObject({ kind: 'rejected', reason: 'RESERVATION_CONSUMED' });
  });

  it('the state keeps no consumed ids: a decision learns of a consumption only from the fact', () => {
    const { state, facts } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Consume', { reservationId: 'r1' }],
    ]);
    expect(Object.keys(ctx(state)).sort()).toEqual(['onHand', 'reservations', 'reserved']);
    expect(JSON.stringify(persistState(inventory, state))).not.toContain('r1');
    // The decision asks for exactly the fact `consumed:<id>`.
    const asked: string[] = [];
    inventory.decide(state, command('Consume', { reservationId: 'r1' }), 'sku-1', 'm-1', { has: (key) => (asked.push(key), facts.has(key)) });
    expect(asked).toEqual(['consumed:r1']);
    // Without the fact (a runtime that did not look it up), the id looks never used.
    expect(inventory.decide(state, command('Consume', { reservationId: 'r1' }), 'sku-1', 'm-2', NO_FACTS)).toMatchObject({ outcome: 'reject', reason: 'UNKNOWN_RESERVATION' });
    expect(inventory.decide(state, command('Reserve', { reservationId: 'r1', qty: 1 }), 'sku-1', 'm-3', NO_FACTS)).toEqual({
      outcome: 'accept',
      event: { type: 'Reserved', reservationId: 'r1', qty: 1 },
    });
  });

  it('only a Consumed event establishes a fact, and the fact is `consumed:<reservation id>`', () => {
    expect(inventory.eventFacts!({ type: 'Consumed', reservationId: 'r1' })).toEqual(['consumed:r1']);
    expect(inventory.eventFacts!({ type: 'Consumed', reservationId: '__proto__' })).toEqual(['consumed:__proto__']);
    expect(consumedFact('wo-1:0')).toBe(consumedFactKey('wo-1:0'));
    for (const event of [
      { type: 'Received', qty: 1 },
      { type: 'Reserved', reservationId: 'r1', qty: 1 },
      { type: 'Reserved', reservationId: 'r1', qty: 1, workOrderId: 'wo-1' },
      { type: 'Released', reservationId: 'r1' },
      { type: 'Adjusted', onHand: 3 },
    ]) {
      expect(inventory.eventFacts!(event), event.type).toEqual([]);
    }
  });

  it('Release frees the reservation; a released id may be reserved again', () => {
    const { state, events } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Release', { reservationId: 'r1' }],
    ]);
    expect(events[2]).toEqual({ type: 'Released', reservationId: 'r1' });
    expect(listed(state)).toEqual({ onHand: 10, reserved: 0, available: 10, openReservations: 0, reservations: [] });
    expect(step(state, 'Reserve', { reservationId: 'r1', qty: 2 }).kind).toBe('event');
  });

  it('Release of an unknown or already released reservation is a no-op success', () => {
    const { state } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Release', { reservationId: 'r1' }],
    ]);
    expect(step(state, 'Release', { reservationId: 'r1' })).toEqual({ kind: 'noop', state });
    expect(step(state, 'Release', { reservationId: 'never-made' })).toEqual({ kind: 'noop', state });
  });

  it('Release of a consumed reservation is a no-op success and gives nothing back', () => {
    const { state, facts } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Consume', { reservationId: 'r1' }],
    ]);
    expect(step(state, 'Release', { reservationId: 'r1' }, facts)).toEqual({ kind: 'noop', state });
    expect(step(state, 'Release', { reservationId: 'r1' })).toEqual({ kind: 'noop', state });
    expect(listed(state)).toEqual({ onHand: 6, reserved: 0, available: 6, openReservations: 0, reservations: [] });
  });

  it('Consume takes the reserved quantity out of onHand and reserved', () => {
    const { state, events } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Reserve', { reservationId: 'r2', qty: 1 }],
      ['Consume', { reservationId: 'r1' }],
    ]);
    expect(events[3]).toEqual({ type: 'Consumed', reservationId: 'r1' });
    expect(listed(state)).toEqual({ onHand: 6, reserved: 1, available: 5, openReservations: 1, reservations: [{ id: 'r2', qty: 1 }] });
  });

  it('a repeated Consume is a no-op success (the fact of the first is known)', () => {
    const { state, facts } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Consume', { reservationId: 'r1' }],
    ]);
    expect(step(state, 'Consume', { reservationId: 'r1' }, facts)).toEqual({ kind: 'noop', state });
    expect(step(step(state, 'Consume', { reservationId: 'r1' }, facts).state, 'Consume', { reservationId: 'r1' }, facts)).toEqual({ kind: 'noop', state });
  });

  it('a repeated Consume is a no-op success only when the fact is known: without it, REJECTED/UNKNOWN_RESERVATION', () => {
    const { state, facts } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Reserve', { reservationId: 'r2', qty: 1 }],
      ['Consume', { reservationId: 'r1' }],
    ]);
    expect(step(state, 'Consume', { reservationId: 'r1' })).toMatchObject({ kind: 'rejected', reason: 'UNKNOWN_RESERVATION', state });
    // Another id's fact does not count.
    expect(step(state, 'Consume', { reservationId: 'r2' }, facts).kind).toBe('event');
    expect(step(run([['Receive', { qty: 1 }]]).state, 'Consume', { reservationId: 'r2' }, facts)).toMatchObject({ kind: 'rejected', reason: 'UNKNOWN_RESERVATION' });
  });

  it('Consume of an unknown or released reservation is REJECTED/UNKNOWN_RESERVATION', () => {
    const { state } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Release', { reservationId: 'r1' }],
    ]);
    expect(step(state, 'Consume', { reservationId: 'r1' })).toMatchObject({ kind: 'rejected', reason: 'UNKNOWN_RESERVATION' });
    expect(step(state, 'Consume', { reservationId: 'nope' })).toMatchObject({ kind: 'rejected', reason: 'UNKNOWN_RESERVATION' });
  });

  it('Adjust sets onHand (a cycle count), down to exactly reserved', () => {
    const { state } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
    ]);
    const up = step(state, 'Adjust', { onHand: 25 });
    expect(up.kind === 'event' && up.event).toEqual({ type: 'Adjusted', onHand: 25 });
    expect(view(up.state)).toMatchObject({ onHand: 25, reserved: 4, available: 21 });
    const down = step(state, 'Adjust', { onHand: 4 });
    expect(view(down.state)).toMatchObject({ onHand: 4, reserved: 4, available: 0 });
  });

  it('Adjust to the current onHand is still journaled: a confirmed count is part of the audit trail', () => {
    const { state } = run([['Receive', { qty: 10 }]]);
    expect(step(state, 'Adjust', { onHand: 10 })).toMatchObject({ kind: 'event', event: { type: 'Adjusted', onHand: 10 } });
  });

  it('Adjust to zero on an empty actor is allowed', () => {
    expect(step(initialState(inventory), 'Adjust', { onHand: 0 }).kind).toBe('event');
  });

  it('Adjust below reserved is REJECTED/BELOW_RESERVED', () => {
    const { state } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
    ]);
    expect(step(state, 'Adjust', { onHand: 3 })).toMatchObject({ kind: 'rejected', reason: 'BELOW_RESERVED', state });
  });

  it('Get is a query: it parses, and the runtime answers it without deciding or journaling', () => {
    expect(inventory.queries.has('Get')).toBe(true);
    expect(inventory.parseCommand('Get', undefined)).toEqual({ ok: true, command: { type: 'Get', payload: {} } });
    expect(inventory.parseCommand('Get', {})).toMatchObject({ ok: true });
    expect(inventory.parseCommand('Get', { qty: 1 })).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
  });

  it('Get asks for a page with {reservations: {after?, limit?}}, limit 1 to 1000', () => {
    const page = { after: '__proto__', limit: MAX_PAGE };
    expect(inventory.parseCommand('Get', { reservations: page })).toEqual({ ok: true, command: { type: 'Get', payload: { reservations: page } } });
    expect(inventory.parseCommand('Get', { reservations: {} })).toMatchObject({ ok: true });
    expect(inventory.parseCommand('Get', { reservations: { limit: 1 } })).toMatchObject({ ok: true });
    expect(inventory.parseCommand('Get', { reservations: { after: 'r'.repeat(128) } })).toMatchObject({ ok: true });
    for (const bad of [{ limit: 0 }, { limit: MAX_PAGE + 1 }, { limit: 2.5 }, { limit: '10' }, { after: '' }, { after: 'r 1' }, { after: 'r'.repeat(129) }, { after: 'r1', sort: 'desc' }]) {
      expect(inventory.parseCommand('Get', { reservations: bad }), JSON.stringify(bad)).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    }
    expect(inventory.parseCommand('Get', { reservations: [] })).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
  });
});

describe('inventory view: bounded whatever the history', () => {
  /** `count` open reservations r0000..; ids in code-unit order are numeric order here. */
  const holding = (count: number): AnyMachineSnapshot =>
    run([['Receive', { qty: count }], ...Array.from({ length: count }, (_, i): [string, Record<string, unknown>] => ['Reserve', { reservationId: `r${String(i).padStart(4, '0')}`, qty: 1 }])]).state;
  const id = (i: number): string => `r${String(i).padStart(4, '0')}`;

  it('a command that names a reservation gets the summary and that reservation (null when it is not open)', () => {
    const { state, facts } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4, workOrderId: 'wo-1' }],
      ['Reserve', { reservationId: 'r2', qty: 1 }],
    ]);
    const summary = { onHand: 10, reserved: 5, available: 5, openReservations: 2 };
    expect(inventory.view(state, command('Reserve', { reservationId: 'r1', qty: 4 }))).toEqual({ ...summary, reservation: { qty: 4, workOrderId: 'wo-1' } });
    expect(inventory.view(state, command('Release', { reservationId: 'r9' }))).toEqual({ ...summary, reservation: null });
    const consumed = step(state, 'Consume', { reservationId: 'r2' }, facts);
    expect(inventory.view(consumed.state, command('Consume', { reservationId: 'r2' }))).toEqual({ onHand: 9, reserved: 4, available: 5, openReservations: 1, reservation: null });
    expect(inventory.view(state, command('Reserve', { reservationId: '__proto__', qty: 1 }))).toEqual({ ...summary, reservation: null });
  });

  it('a command that names none gets the summary only, with no reservations however many are open', () => {
    const state = holding(250);
    const expected = { onHand: 250, reserved: 250, available: 0, openReservations: 250 };
    expect(view(state)).toEqual(expected);
    expect(inventory.view(state, command('Receive', { qty: 1 }))).toEqual(expected);
    expect(inventory.view(state, command('Adjust', { onHand: 300 }))).toEqual(expected);
  });

  it(`Get answers the first ${DEFAULT_PAGE} by default, then pages on with \`next\`; the last page has no next`, () => {
    const state = holding(250);
    const first = listed(state);
    expect(idsOf(first.reservations)).toEqual(Array.from({ length: DEFAULT_PAGE }, (_, i) => id(i)));
    expect(first).toMatchObject({ onHand: 250, reserved: 250, available: 0, openReservations: 250, next: id(DEFAULT_PAGE - 1) });
    const second = listed(state, { reservations: { after: first.next } });
    expect(idsOf(second.reservations)).toEqual(Array.from({ length: DEFAULT_PAGE }, (_, i) => id(DEFAULT_PAGE + i)));
    expect(second.next).toBe(id(2 * DEFAULT_PAGE - 1));
    const last = listed(state, { reservations: { after: second.next } });
    expect(idsOf(last.reservations)).toEqual(Array.from({ length: 50 }, (_, i) => id(2 * DEFAULT_PAGE + i)));
    expect(last).not.toHaveProperty('next');
    expect(listed(state, { reservations: { limit: 250 } })).not.toHaveProperty('next');
    expect(listed(state, { reservations: { limit: 249 } }).next).toBe(id(248));
    expect(listed(state, { reservations: { after: id(10), limit: 2 } })).toEqual({
      onHand: 250,
      reserved: 250,
      available: 0,
      openReservations: 250,
      reservations: [
        { id: id(11), qty: 1 },
        { id: id(12), qty: 1 },
      ],
      next: id(12),
    });
  });

  it(`Get answers at most ${MAX_PAGE}`, () => {
    const state = holding(MAX_PAGE + 5);
    const page = listed(state, { reservations: { limit: MAX_PAGE } });
    expect(idsOf(page.reservations)).toEqual(Array.from({ length: MAX_PAGE }, (_, i) => id(i)));
    expect(page.next).toBe(id(MAX_PAGE - 1));
  });

  it('Get lists "__proto__" and "constructor" as ordinary entries, in id order', () => {
    const { state } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'constructor', qty: 3 }],
      ['Reserve', { reservationId: '__proto__', qty: 2 }],
    ]);
    const reservations = listed(state).reservations as readonly ListedReservation[];
    expect(idsOf(reservations)).toEqual(['__proto__', 'constructor']);
    for (const entry of reservations) {
      expect(Object.getPrototypeOf(entry), entry.id).toBe(Object.prototype);
      expect(Object.keys(entry), entry.id).toEqual(['id', 'qty']);
    }
    expect(reservations).toStrictEqual([
      { id: '__proto__', qty: 2 },
      { id: 'constructor', qty: 3 },
    ]);
    expect(JSON.parse(JSON.stringify(reservations))).toEqual(JSON.parse('[{"id": "__proto__", "qty": 2}, {"id": "constructor", "qty": 3}]'));
    expect(Object.prototype).not.toHaveProperty('qty');
  });

  it('inspection shows the scalars and one page, chosen by {reservations: {after, limit}}; a bad page request gets the first page', () => {
    const state = holding(150);
    const first = inventory.inspectContext!(state, {});
    expect(first).toMatchObject({ onHand: 150, reserved: 150, openReservations: 150, next: id(DEFAULT_PAGE - 1) });
    expect(idsOf(first.reservations)).toEqual(Array.from({ length: DEFAULT_PAGE }, (_, i) => id(i)));
    expect(inventory.inspectContext!(state, { reservations: { after: id(147), limit: 5 } })).toEqual({
      onHand: 150,
      reserved: 150,
      openReservations: 150,
      reservations: [
        { id: id(148), qty: 1 },
        { id: id(149), qty: 1 },
      ],
    });
    expect(inventory.inspectContext!(state, { reservations: { limit: MAX_PAGE + 1 } })).toEqual(first);
  });
});

describe('inventory payload validation', () => {
  const bad: [string, string, unknown][] = [
    ['Receive', 'missing qty', {}],
    ['Receive', 'no payload at all', undefined],
    ['Receive', 'null payload', null],
    ['Receive', 'array payload', [10]],
    ['Receive', 'zero qty', { qty: 0 }],
    ['Receive', 'negative qty', { qty: -1 }],
    ['Receive', 'fractional qty', { qty: 1.5 }],
    ['Receive', 'qty as a string', { qty: '5' }],
    ['Receive', 'qty as null', { qty: null }],
    ['Receive', 'qty as a boolean', { qty: true }],
    ['Receive', 'infinite qty', { qty: Number.POSITIVE_INFINITY }],
    ['Receive', 'NaN qty', { qty: Number.NaN }],
    ['Receive', 'qty above the cap', { qty: MAX_QTY + 1 }],
    ['Receive', 'an extra field', { qty: 1, sku: 'x' }],
    ['Receive', 'a __proto__ field', JSON.parse('{"qty": 1, "__proto__": {"admin": true}}')],
    ['Reserve', 'missing reservationId', { qty: 1 }],
    ['Reserve', 'missing qty', { reservationId: 'r1' }],
    ['Reserve', 'negative qty', { reservationId: 'r1', qty: -3 }],
    ['Reserve', 'fractional qty', { reservationId: 'r1', qty: 0.25 }],
    ['Reserve', 'empty reservationId', { reservationId: '', qty: 1 }],
    ['Reserve', 'reservationId with a space', { reservationId: 'r 1', qty: 1 }],
    ['Reserve', 'reservationId with a NUL', { reservationId: 'r\u00001', qty: 1 }],
    ['Reserve', 'reservationId as a number', { reservationId: 7, qty: 1 }],
    ['Reserve', 'reservationId of 129 characters', { reservationId: 'r'.repeat(129), qty: 1 }],
    ['Reserve', 'workOrderId with a dot', { reservationId: 'r1', qty: 1, workOrderId: 'wo.1' }],
    ['Reserve', 'workOrderId as null', { reservationId: 'r1', qty: 1, workOrderId: null }],
    ['Reserve', 'an extra field', { reservationId: 'r1', qty: 1, priority: 'high' }],
    ['Release', 'missing reservationId', {}],
    ['Release', 'an extra qty', { reservationId: 'r1', qty: 1 }],
    ['Consume', 'missing reservationId', {}],
    ['Consume', 'reservationId as an object', { reservationId: { id: 'r1' } }],
    ['Adjust', 'missing onHand', {}],
    ['Adjust', 'negative onHand', { onHand: -1 }],
    ['Adjust', 'fractional onHand', { onHand: 2.5 }],
    ['Adjust', 'onHand as a string', { onHand: '10' }],
    ['Adjust', 'qty instead of onHand', { qty: 10 }],
  ];

  it.each(bad)('%s with %s is BAD_REQUEST', (type, _what, payload) => {
    const parsed = inventory.parseCommand(type, payload);
    expect(parsed).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    expect(!parsed.ok && parsed.message).toMatch(new RegExp(`^${type} `));
  });

  it('names the offending field in the message', () => {
    const parsed = inventory.parseCommand('Reserve', { reservationId: 'r1', qty: -2 });
    expect(!parsed.ok && parsed.message).toContain('qty');
  });

  it('accepts the boundaries: qty 1, qty at the cap, onHand 0, reservation ids with ":" and of 128 characters', () => {
    expect(inventory.parseCommand('Receive', { qty: 1 }).ok).toBe(true);
    expect(inventory.parseCommand('Receive', { qty: MAX_QTY }).ok).toBe(true);
    expect(inventory.parseCommand('Adjust', { onHand: 0 }).ok).toBe(true);
    expect(inventory.parseCommand('Reserve', { reservationId: 'wo-1:3', qty: 1, workOrderId: 'wo-1' }).ok).toBe(true);
    expect(inventory.parseCommand('Reserve', { reservationId: 'r'.repeat(128), qty: 1 }).ok).toBe(true);
  });

  it.each(['Explode', 'receive', '', 'Received', '__proto__', 'constructor', 'toString', 'hasOwnProperty'])(
    'an unknown command type %j is UNKNOWN_COMMAND',
    (type) => {
      expect(inventory.parseCommand(type, { qty: 1 })).toMatchObject({ ok: false, code: 'UNKNOWN_COMMAND' });
    },
  );
});

describe('inventory events on replay', () => {
  const stocked = (): AnyMachineSnapshot =>
    run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
    ]).state;

  // A journaled event the machine refuses means the journal and the machine disagree: replay
  // must stop with an error, never skip it silently (the guards restate the invariant).
  it.each<[string, InventoryEvent | DomainEvent]>([
    ['a reservation beyond available stock', { type: 'Reserved', reservationId: 'r2', qty: 7 }],
    ['a second reservation under an open id', { type: 'Reserved', reservationId: 'r1', qty: 1 }],
    ['the release of an unknown reservation', { type: 'Released', reservationId: 'nope' }],
    ['the consumption of an unknown reservation', { type: 'Consumed', reservationId: 'nope' }],
    ['an adjustment below reserved', { type: 'Adjusted', onHand: 3 }],
    ['a receipt beyond the quantity cap', { type: 'Received', qty: MAX_QTY }],
    ['an event type the machine does not know', { type: 'Teleported', qty: 1 }],
  ])('refuses %s', (_what, event) => {
    expect(() => applyEvent(inventory, stocked(), event)).toThrow(EventRefusedError);
  });

  it('applies the events a decision produced to the same state the live path reached', () => {
    const { state, events } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Consume', { reservationId: 'r1' }],
      ['Adjust', { onHand: 20 }],
    ]);
    expect(persistState(inventory, replay(inventory, initialState(inventory), events))).toEqual(persistState(inventory, state));
  });
});

/** A random command, mostly valid, sometimes malformed; reservation ids drawn from a small pool so they collide. */
function randomCommand(random: Random): [string, Record<string, unknown>] {
  const reservationId = `r${random.int(0, 11)}`;
  const qty = random.chance(0.03) ? random.pick([0, -1, 2.5]) : random.int(1, 30);
  switch (random.pick(['Receive', 'Receive', 'Reserve', 'Reserve', 'Reserve', 'Release', 'Consume', 'Adjust'])) {
    case 'Receive':
      return ['Receive', { qty: random.chance(0.01) ? MAX_QTY : qty }];
    case 'Reserve':
      return ['Reserve', random.chance(0.3) ? { reservationId, qty, workOrderId: `wo-${random.int(0, 3)}` } : { reservationId, qty }];
    case 'Release':
      return ['Release', { reservationId }];
    case 'Consume':
      return ['Consume', { reservationId }];
    default:
      return ['Adjust', { onHand: random.int(0, 120) }];
  }
}

describe('inventory under long random command sequences (seeded)', () => {
  const seeds = [1, 2, 3, 42, 1337, 20240601, 987654321, 0xdeadbeef];
  const length = 2_000;

  it.each(seeds)('seed %i: keeps 0 <= reserved <= onHand and reserved = sum of open reservations after every step', (seed) => {
    const random = new Random(seed);
    const model = new InventoryModel();
    let state = initialState(inventory);
    const events: DomainEvent[] = [];
    const facts = new Set<string>(); // what the journal's index would hold
    const statesAfter: AnyMachineSnapshot[] = [state]; // statesAfter[n] = state after event n
    const outcomes = new Map<string, number>();
    for (let i = 0; i < length; i += 1) {
      const [type, payload] = randomCommand(random);
      const outcome = step(state, type, payload, facts);
      const label = outcome.kind === 'rejected' ? outcome.reason : outcome.kind === 'invalid' ? outcome.code : outcome.kind;
      outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
      const expected = outcome.kind === 'invalid' ? 'BAD_REQUEST' : outcomeLabel(model.apply(type, payload));
      if (outcome.kind === 'event') {
        events.push(outcome.event);
        establish(facts, outcome.event);
        statesAfter.push(outcome.state);
      }
      // Checked with plain comparisons (thousands of steps); the first failure is reported in full.
      const c = ctx(outcome.state);
      let sum = 0;
      for (const [, r] of c.reservations.entries()) sum += r.qty;
      const modelFacts = model.facts;
      const problems = [
        label !== expected && `outcome ${label}, the contract says ${expected}`,
        outcome.kind !== 'event' && outcome.state !== state && 'a command that appends nothing changed the state',
        c.reserved < 0 && `reserved ${c.reserved} < 0`,
        c.reserved > c.onHand && `reserved ${c.reserved} > onHand ${c.onHand}`,
        c.reserved !== sum && `reserved ${c.reserved} != sum of open reservations ${sum}`,
        inventory.invariantFailures(outcome.state).length > 0 && `invariant failures ${JSON.stringify(inventory.invariantFailures(outcome.state))}`,
        c.onHand !== model.onHand && `onHand ${c.onHand}, model ${model.onHand}`,
        c.reservations.total !== sum && `reservations.total ${c.reservations.total} != sum of open reservations ${sum}`,
        (c.reservations.size !== model.reservations.size ||
          [...model.reservations].some(([id, r]) => c.reservations.get(id)?.qty !== r.qty || c.reservations.get(id)?.workOrderId !== r.workOrderId)) &&
          `reservations ${JSON.stringify([...c.reservations.entries()])}, model ${JSON.stringify([...model.reservations])}`,
        // The facts the events established are exactly the model's consumed ids.
        (facts.size !== modelFacts.size || [...modelFacts].some((key) => !facts.has(key))) &&
          `facts ${JSON.stringify([...facts])}, model's consumed ${JSON.stringify([...model.consumed.keys()])}`,
      ].filter(Boolean);
      if (problems.length > 0) expect.fail(`seed ${seed}, step ${i}, ${type} ${JSON.stringify(payload)}: ${problems.join('; ')}`);
      state = outcome.state;
    }
    // The workload is worth something only if it reached every outcome.
    for (const label of ['event', 'noop', 'INSUFFICIENT_STOCK', 'UNKNOWN_RESERVATION', 'RESERVATION_CONSUMED', 'BELOW_RESERVED', 'BAD_REQUEST']) {
      expect(outcomes.get(label) ?? 0, `seed ${seed} never produced ${label}`).toBeGreaterThan(0);
    }

    // Replay of the produced events equals the live state, and is deterministic.
    const replayed = replay(inventory, initialState(inventory), events);
    expect(persistState(inventory, replayed)).toEqual(persistState(inventory, state));
    expect(stateHash(persistState(inventory, replay(inventory, initialState(inventory), events)))).toBe(stateHash(persistState(inventory, state)));
    // Every Consumed event established its fact, and nothing else did.
    expect(facts).toEqual(new Set(events.filter((e) => e.type === 'Consumed').map((e) => consumedFactKey(String(e.reservationId)))));

    // Snapshot at any seq (stored as JSON, as jsonb gives it back) + the tail equals the full replay.
    for (let probe = 0; probe < 20; probe += 1) {
      const seq = random.int(0, events.length);
      const snapshot = snapshotOf(inventory, statesAfter[seq]!, seq);
      expect(snapshot.seq).toBe(seq);
      expect(snapshot.machineVersion).toBe(inventory.machineVersion);
      const stored = JSON.parse(JSON.stringify(snapshot.state)) as typeof snapshot.state;
      expect(stateHash(stored)).toBe(snapshot.hash);
      const resumed = replay(inventory, restoreState(inventory, stored), events.slice(seq));
      expect(persistState(inventory, resumed), `snapshot at ${seq} + tail`).toEqual(persistState(inventory, replayed));
    }
  });
});

describe('snapshots', () => {
  const sample = (): { state: AnyMachineSnapshot; events: DomainEvent[]; facts: Set<string> } =>
    run([
      ['Receive', { qty: 50 }],
      ['Reserve', { reservationId: 'a', qty: 5, workOrderId: 'wo-1' }],
      ['Reserve', { reservationId: 'b', qty: 7 }],
      ['Consume', { reservationId: 'a' }],
      ['Release', { reservationId: 'b' }],
      ['Reserve', { reservationId: 'c', qty: 3 }],
    ]);

  it('persists plain JSON: the scalars and the open reservations as packed columns in id order, no consumed ids', () => {
    const persisted = persistState(inventory, sample().state);
    expect(persisted).toEqual({
      value: 'active',
      context: { onHand: 45, reserved: 3, reservations: { ids: 'c', qty: '3', workOrderId: '' } },
    });
    expect(JSON.parse(JSON.stringify(persisted))).toEqual(persisted);
    const more = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'b', qty: 2, workOrderId: 'wo-1' }],
      ['Reserve', { reservationId: 'B', qty: 1 }],
      ['Reserve', { reservationId: 'a', qty: 3 }],
    ]).state;
    expect(persistState(inventory, more).context.reservations).toEqual({ ids: 'B\na\nb', qty: '1,3,2', workOrderId: '\n\nwo-1' });
    expect(persistState(inventory, restoreState(inventory, persistState(inventory, more)))).toEqual(persistState(inventory, more));
    // An empty collection packs to empty strings and back.
    const none = run([['Receive', { qty: 1 }]]).state;
    expect(persistState(inventory, none).context.reservations).toEqual({ ids: '', qty: '', workOrderId: '' });
    expect(restoreState(inventory, persistState(inventory, none)).context.reservations.size).toBe(0);
  });

  it('a state does not grow with consumed history', () => {
    let state = run([['Receive', { qty: 1_000_000 }]]).state;
    const empty = JSON.stringify(persistState(inventory, state).context.reservations);
    const facts = new Set<string>();
    for (let i = 0; i < 500; i += 1) {
      const cycle = run([['Reserve', { reservationId: `r${i}`, qty: 1 }], ['Consume', { reservationId: `r${i}` }]], state);
      state = cycle.state;
      for (const key of cycle.facts) facts.add(key);
    }
    expect(facts.size).toBe(500);
    expect(JSON.stringify(persistState(inventory, state).context.reservations)).toBe(empty);
    expect(view(state)).toEqual({ onHand: 999_500, reserved: 0, available: 999_500, openReservations: 0 });
    expect(step(state, 'Consume', { reservationId: 'r7' }, facts)).toEqual({ kind: 'noop', state });
  });

  it('hashes the state independently of key order, so a jsonb round trip keeps the hash', () => {
    const persisted = persistState(inventory, sample().state);
    const columns = persisted.context.reservations as Record<string, unknown>;
    const reordered = {
      context: { ...Object.fromEntries(Object.entries(persisted.context).reverse()), reservations: Object.fromEntries(Object.entries(columns).reverse()) },
      value: persisted.value,
    };
    expect(stateHash(reordered)).toBe(stateHash(persisted));
  });

  it('a different state has a different hash', () => {
    const persisted = persistState(inventory, sample().state);
    const tampered = { ...persisted, context: { ...persisted.context, onHand: (persisted.context.onHand as number) + 1 } };
    expect(stateHash(tampered)).not.toBe(stateHash(persisted));
  });

  it('a restored snapshot keeps deciding like the live state', () => {
    const { state, facts } = sample();
    const restored = restoreState(inventory, JSON.parse(JSON.stringify(persistState(inventory, state))));
    for (const [type, payload] of [
      ['Consume', { reservationId: 'a' }],
      ['Reserve', { reservationId: 'a', qty: 1 }],
      ['Reserve', { reservationId: 'd', qty: 36 }],
      ['Reserve', { reservationId: 'd', qty: 35 }],
      ['Adjust', { onHand: 2 }],
      ['Consume', { reservationId: 'c' }],
    ] as [string, Record<string, unknown>][]) {
      const live = step(state, type, payload, facts);
      const resumed = step(restored, type, payload, facts);
      expect(resumed.kind).toBe(live.kind);
      expect(resumed.kind === 'rejected' && resumed.reason).toBe(live.kind === 'rejected' && live.reason);
      expect(persistState(inventory, resumed.state)).toEqual(persistState(inventory, live.state));
    }
  });
});
