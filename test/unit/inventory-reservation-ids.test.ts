// Contract section 5: a reservation id is any string matching `[A-Za-z0-9_:-]{1,128}`, and every
// such string is an ordinary id, names of Object.prototype members (`constructor`, `__proto__`,
// `toString`...) included. These tests drive the pure inventory kind with such ids.
import type { AnyMachineSnapshot } from 'xstate';
import { describe, expect, it } from 'vitest';
import { reservationsMatchWorkOrders } from '../../actors/cross-invariants.js';
import { inventory, type InventoryContext, type InventoryEvent, type Reservation } from '../../actors/inventory.js';
import type { DomainEvent } from '../../actors/kind.js';
import { applyEvent, EventRefusedError, initialState, persistState, replay, restoreState, type PersistedState } from '../../actors/state.js';
import { Random } from '../../src/random.js';
import { InventoryModel, outcomeLabel, type Expected } from './inventory-model.js';

/** The contract's pattern, restated here rather than imported: the test is the specification. */
const RESERVATION_ID = /^[A-Za-z0-9_:-]{1,128}$/;

const PROTOTYPE_IDS = Object.getOwnPropertyNames(Object.prototype).filter((name) => RESERVATION_ID.test(name));

const OTHER_AWKWARD_IDS = [
  'prototype',
  'length',
  'name',
  '0',
  '-1',
  '__proto',
  '_proto__',
  ':',
  'a:b',
  'r'.repeat(128),
  `${'r'.repeat(127)}s`,
  'R'.repeat(128),
  'Constructor',
  'CONSTRUCTOR',
  'tostring',
  '__PROTO__',
  'r1',
  'R1',
];

const IDS = [...PROTOTYPE_IDS, ...OTHER_AWKWARD_IDS];
const WORK_ORDER_IDS = ['__proto__', 'constructor', 'wo-1'];

const ctx = (state: AnyMachineSnapshot): InventoryContext => state.context as InventoryContext;

type Outcome = { readonly expected: Expected; readonly state: AnyMachineSnapshot };

/** Parse, decide and apply one command, as the actor host does minus the journal; the outcome in the model's terms. */
function step(state: AnyMachineSnapshot, type: string, payload: Record<string, unknown>): Outcome {
  const parsed = inventory.parseCommand(type, payload);
  if (!parsed.ok) throw new Error(`${type} ${JSON.stringify(payload)} does not parse: ${parsed.message}`);
  const decision = inventory.decide(state, parsed.command, 'sku-1');
  if (decision.outcome === 'reject') return { expected: { outcome: 'rejected', reason: decision.reason }, state };
  if (decision.event === null) return { expected: { outcome: 'noop' }, state };
  return { expected: { outcome: 'event', event: decision.event as InventoryEvent }, state: applyEvent(inventory, state, decision.event) };
}

/** The state as the journal's snapshots hold it: persisted, stored as JSON text, parsed back and restored. */
const throughJson = (state: AnyMachineSnapshot): AnyMachineSnapshot =>
  restoreState(inventory, JSON.parse(JSON.stringify(persistState(state))) as PersistedState);

/** Open reservations as a Map, read from own properties only, to compare with the model's. */
const openReservations = (record: Readonly<Record<string, Reservation>>): Map<string, Reservation> => new Map(Object.entries(record));

/** A Map's entries as JSON in id order, so two Maps compare by content. */
const canonical = (entries: Iterable<[string, unknown]>): string => JSON.stringify([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

function randomCommand(random: Random): [string, Record<string, unknown>] {
  const reservationId = random.pick(IDS);
  const qty = random.int(1, 30);
  switch (random.pick(['Receive', 'Reserve', 'Reserve', 'Reserve', 'Release', 'Consume', 'Adjust'])) {
    case 'Receive':
      return ['Receive', { qty }];
    case 'Reserve':
      return ['Reserve', random.chance(0.4) ? { reservationId, qty, workOrderId: random.pick(WORK_ORDER_IDS) } : { reservationId, qty }];
    case 'Release':
      return ['Release', { reservationId }];
    case 'Consume':
      return ['Consume', { reservationId }];
    default:
      return ['Adjust', { onHand: random.int(0, 150) }];
  }
}

/** Everything that must hold after a step; each entry a failure in words. */
function problemsAfter(live: AnyMachineSnapshot, model: InventoryModel, events: readonly DomainEvent[]): string[] {
  const c = ctx(live);
  const open = openReservations(c.reservations);
  const view = inventory.publicState(live);
  const replayed = persistState(replay(inventory, initialState(inventory), events));
  const restored = persistState(throughJson(live));
  return [
    c.reserved < 0 && `reserved ${c.reserved} < 0`,
    c.reserved > c.onHand && `reserved ${c.reserved} > onHand ${c.onHand}`,
    c.reserved !== model.reserved && `reserved ${c.reserved}, model's open reservations sum to ${model.reserved}`,
    c.onHand !== model.onHand && `onHand ${c.onHand}, model ${model.onHand}`,
    canonical(open) !== canonical(model.reservations) &&
      `open reservations ${JSON.stringify([...open])}, model ${JSON.stringify([...model.reservations])}`,
    canonical(Object.entries(c.consumed)) !== canonical(model.consumed) &&
      `consumed ${JSON.stringify(c.consumed)}, model ${JSON.stringify([...model.consumed])}`,
    (view.reserved !== model.reserved || view.available !== model.onHand - model.reserved) && `public state ${JSON.stringify(view)}`,
    inventory.invariantFailures(live).length > 0 && `invariant failures ${JSON.stringify(inventory.invariantFailures(live))}`,
    JSON.stringify(replayed) !== JSON.stringify(persistState(live)) && `replay from event 1 gives ${JSON.stringify(replayed)}`,
    JSON.stringify(restored) !== JSON.stringify(persistState(live)) && `a JSON round trip gives ${JSON.stringify(restored)}`,
  ].filter((problem): problem is string => typeof problem === 'string');
}

describe('reservation ids that name Object.prototype members (seeded property test)', () => {
  it('draws from every Object.prototype member name the id pattern admits', () => {
    expect(PROTOTYPE_IDS).toEqual(
      expect.arrayContaining(['__proto__', 'constructor', 'toString', 'hasOwnProperty', '__defineGetter__', 'valueOf', 'isPrototypeOf', 'toLocaleString']),
    );
    for (const id of IDS) expect(inventory.parseCommand('Reserve', { reservationId: id, qty: 1 }), id).toMatchObject({ ok: true });
  });

  const seeds = [1, 7, 2024, 0xc0ffee, 0xdeadbeef];
  const length = 600;

  it.each(seeds)('seed %i: every command matches the model, the invariant holds, replay and a JSON round trip equal the live state', (seed) => {
    const random = new Random(seed);
    const model = new InventoryModel();
    let live = initialState(inventory);
    const events: DomainEvent[] = [];
    const outcomes = new Map<string, number>();
    const reservedIds = new Set<string>();
    for (let i = 0; i < length; i += 1) {
      const [type, payload] = randomCommand(random);
      // The snapshot path must decide exactly like the live one, so the same command is decided on both.
      const fromJson = step(throughJson(live), type, payload);
      const outcome = step(live, type, payload);
      const expected = model.apply(type, payload);
      if (outcome.expected.outcome === 'event') {
        events.push(outcome.expected.event);
        if (outcome.expected.event.type === 'Reserved') reservedIds.add(outcome.expected.event.reservationId);
      }
      const label = outcomeLabel(outcome.expected);
      outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
      const problems = [
        JSON.stringify(outcome.expected) !== JSON.stringify(expected) && `outcome ${JSON.stringify(outcome.expected)}, the contract says ${JSON.stringify(expected)}`,
        JSON.stringify(fromJson.expected) !== JSON.stringify(outcome.expected) && `the state restored from JSON decides ${JSON.stringify(fromJson.expected)}`,
        ...problemsAfter(outcome.state, model, events),
      ].filter((problem): problem is string => typeof problem === 'string');
      if (problems.length > 0) expect.fail(`seed ${seed}, step ${i}, ${type} ${JSON.stringify(payload)}: ${problems.join('; ')}`);
      live = outcome.state;
    }
    // The run is worth something only if it reached every outcome and held every awkward id.
    for (const label of ['event', 'noop', 'INSUFFICIENT_STOCK', 'UNKNOWN_RESERVATION', 'RESERVATION_CONSUMED', 'BELOW_RESERVED']) {
      expect(outcomes.get(label) ?? 0, `seed ${seed} never produced ${label}`).toBeGreaterThan(0);
    }
    expect(PROTOTYPE_IDS.filter((id) => !reservedIds.has(id)), `seed ${seed}: ids never reserved`).toEqual([]);
  });
});

describe('reservation ids that name Object.prototype members (reported cases)', () => {
  const stocked = (): AnyMachineSnapshot => step(initialState(inventory), 'Receive', { qty: 10 }).state;

  it('Reserve "constructor" holds its quantity, so the stock cannot be reserved twice', () => {
    const held = step(stocked(), 'Reserve', { reservationId: 'constructor', qty: 7 });
    expect(held.expected).toEqual({ outcome: 'event', event: { type: 'Reserved', reservationId: 'constructor', qty: 7 } });
    expect(inventory.publicState(held.state)).toMatchObject({ onHand: 10, reserved: 7, available: 3 });
    expect(step(held.state, 'Reserve', { reservationId: 'toString', qty: 7 }).expected).toEqual({ outcome: 'rejected', reason: 'INSUFFICIENT_STOCK' });
  });

  it('Consume "constructor" with no such reservation is REJECTED/UNKNOWN_RESERVATION; once reserved it deducts onHand', () => {
    expect(step(stocked(), 'Consume', { reservationId: 'constructor' }).expected).toEqual({ outcome: 'rejected', reason: 'UNKNOWN_RESERVATION' });
    const held = step(stocked(), 'Reserve', { reservationId: 'constructor', qty: 7 }).state;
    const consumed = step(held, 'Consume', { reservationId: 'constructor' });
    expect(consumed.expected).toEqual({ outcome: 'event', event: { type: 'Consumed', reservationId: 'constructor' } });
    expect(inventory.publicState(consumed.state)).toMatchObject({ onHand: 3, reserved: 0, available: 3 });
    expect(step(consumed.state, 'Consume', { reservationId: 'constructor' }).expected).toEqual({ outcome: 'noop' });
  });

  it('Release "toString" with no such reservation is a no-op that journals nothing', () => {
    const state = stocked();
    expect(step(state, 'Release', { reservationId: 'toString' })).toEqual({ expected: { outcome: 'noop' }, state });
  });

  it('the machine refuses a journaled Released or Consumed of a prototype name that is not open', () => {
    for (const event of [
      { type: 'Released', reservationId: 'toString' },
      { type: 'Consumed', reservationId: 'constructor' },
      { type: 'Released', reservationId: '__proto__' },
    ]) {
      expect(() => applyEvent(inventory, stocked(), event), JSON.stringify(event)).toThrow(EventRefusedError);
    }
  });

  it('"__proto__" is an own key: held, kept through JSON, released, and Object.prototype is untouched', () => {
    const held = step(stocked(), 'Reserve', { reservationId: '__proto__', qty: 2, workOrderId: 'wo-1' }).state;
    expect(Object.hasOwn(ctx(held).reservations, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(ctx(held).reservations)).toBe(Object.prototype);
    expect(openReservations(ctx(throughJson(held)).reservations)).toEqual(new Map([['__proto__', { qty: 2, workOrderId: 'wo-1' }]]));
    const released = step(throughJson(held), 'Release', { reservationId: '__proto__' });
    expect(released.expected).toEqual({ outcome: 'event', event: { type: 'Released', reservationId: '__proto__' } });
    expect(Object.keys(ctx(released.state).reservations)).toEqual([]);
    expect(inventory.publicState(released.state)).toMatchObject({ reserved: 0, available: 10 });
  });

  it('invariantFailures (what `ppos verify` runs) catches reserved disagreeing with reservations named constructor and __proto__', () => {
    const context = JSON.parse('{"onHand": 10, "reserved": 0, "reservations": {"constructor": {"qty": 7}, "__proto__": {"qty": 2}}, "consumed": {}}') as Record<string, unknown>;
    const state = restoreState(inventory, { value: 'active', context });
    expect(inventory.invariantFailures(state)).toEqual([{ invariant: 'reserved_matches_reservations', detail: 'reserved 0 != sum of open reservations 9' }]);
  });

  it('the cross-actor check counts a "__proto__" reservation carrying the work order id "constructor" as not held by it', () => {
    const held = step(stocked(), 'Reserve', { reservationId: '__proto__', qty: 2, workOrderId: 'constructor' }).state;
    expect(reservationsMatchWorkOrders([{ kind: 'inventory', id: 'sku-1', ...persistState(held) }])).toEqual([
      { actor: 'inventory/sku-1', detail: 'reservation __proto__ is open but work order constructor does not hold it' },
    ]);
  });

  it('a reservation id of 129 characters is BAD_REQUEST naming the contract pattern', () => {
    const parsed = inventory.parseCommand('Reserve', { reservationId: 'r'.repeat(129), qty: 1 });
    expect(parsed).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    expect(!parsed.ok && parsed.message).toContain('reservationId: must match [A-Za-z0-9_:-]{1,128}');
  });
});
