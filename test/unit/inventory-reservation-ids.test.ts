// Contract section 5: a reservation id is any string matching `[A-Za-z0-9_:-]{1,128}`, and every
// such string is an ordinary id, names of Object.prototype members (`constructor`, `__proto__`,
// `toString`...) included. These tests drive the pure inventory kind with such ids. Consumed ids
// reach a decision as facts (`consumed:<id>`), here from a Set of what the events established.
import type { AnyMachineSnapshot } from 'xstate';
import { describe, expect, it } from 'vitest';
import { reservationsMatchWorkOrders } from '../../actors/cross-invariants.js';
import { inventory, type InventoryContext, type InventoryEvent, type Reservation } from '../../actors/inventory.js';
import type { Command, DomainEvent } from '../../actors/kind.js';
import type { ListedReservation } from '../../actors/open-reservations.js';
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

function parse(type: string, payload: Record<string, unknown>): Command {
  const parsed = inventory.parseCommand(type, payload);
  if (!parsed.ok) throw new Error(`${type} ${JSON.stringify(payload)} does not parse: ${parsed.message}`);
  return parsed.command;
}

/**
 * Parse, decide and apply one command, as the actor host does minus the journal; the outcome in the
 * model's terms. `established`: the facts the journal holds (what earlier events established).
 */
function step(state: AnyMachineSnapshot, type: string, payload: Record<string, unknown>, established: ReadonlySet<string> = new Set()): Outcome {
  const decision = inventory.decide(state, parse(type, payload), 'sku-1', `m-${type}`, { has: (key) => established.has(key) });
  if (decision.outcome === 'reject') return { expected: { outcome: 'rejected', reason: decision.reason }, state };
  if (decision.event === null) return { expected: { outcome: 'noop' }, state };
  return { expected: { outcome: 'event', event: decision.event as InventoryEvent }, state: applyEvent(inventory, state, decision.event) };
}

/** The state as the journal's snapshots hold it: persisted, stored as JSON text, parsed back and restored. */
const throughJson = (state: AnyMachineSnapshot): AnyMachineSnapshot =>
  restoreState(inventory, JSON.parse(JSON.stringify(persistState(inventory, state))) as PersistedState);

/** Open reservations as a Map, to compare with the model's. */
const openReservations = (state: AnyMachineSnapshot): Map<string, Reservation> => new Map(ctx(state).reservations.entries());

/**
 * Every open reservation as `Get` shows them, page after page of `limit` (each page an array of
 * `{id, qty, workOrderId?}`, read from own properties only); and whether every id came strictly after
 * the one listed before it in code-unit order, within a page and across pages (so each id once).
 */
function pagedThroughGet(state: AnyMachineSnapshot, limit: number): { reservations: Map<string, Reservation>; pagesInOrder: boolean } {
  const reservations = new Map<string, Reservation>();
  let pagesInOrder = true;
  let previousId: string | undefined;
  let after: string | undefined;
  for (let pages = 1; ; pages += 1) {
    const answer = inventory.view(state, parse('Get', { reservations: after === undefined ? { limit } : { after, limit } }));
    if (!Array.isArray(answer.reservations)) throw new Error(`Get answers reservations that are not an array: ${JSON.stringify(answer.reservations)}`);
    const page = answer.reservations as readonly ListedReservation[];
    if (page.length > limit) pagesInOrder = false;
    for (const entry of page) {
      // Rest spread copies own enumerable properties only; `id` must be one too.
      const { id, ...reservation } = entry;
      if (!Object.hasOwn(entry, 'id') || typeof id !== 'string' || (previousId !== undefined && !(previousId < id)) || reservations.has(id)) pagesInOrder = false;
      reservations.set(id, reservation);
      previousId = id;
    }
    if (answer.next !== undefined && answer.next !== page.at(-1)?.id) pagesInOrder = false;
    if (answer.next === undefined) return { reservations, pagesInOrder };
    if (pages > 1_000) throw new Error('Get keeps answering next');
    after = answer.next as string;
  }
}

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
function problemsAfter(live: AnyMachineSnapshot, model: InventoryModel, events: readonly DomainEvent[], facts: ReadonlySet<string>): string[] {
  const c = ctx(live);
  const open = openReservations(live);
  const view = inventory.view(live);
  const paged = pagedThroughGet(live, 7);
  const modelFacts = model.facts;
  const persisted = persistState(inventory, live);
  const replayed = persistState(inventory, replay(inventory, initialState(inventory), events));
  const restored = persistState(inventory, throughJson(live));
  return [
    c.reserved < 0 && `reserved ${c.reserved} < 0`,
    c.reserved > c.onHand && `reserved ${c.reserved} > onHand ${c.onHand}`,
    c.reserved !== model.reserved && `reserved ${c.reserved}, model's open reservations sum to ${model.reserved}`,
    c.onHand !== model.onHand && `onHand ${c.onHand}, model ${model.onHand}`,
    canonical(open) !== canonical(model.reservations) &&
      `open reservations ${JSON.stringify([...open])}, model ${JSON.stringify([...model.reservations])}`,
    // Consumed ids live in the journal's facts, not in the state: the facts are exactly the model's consumed ids.
    (facts.size !== modelFacts.size || [...modelFacts].some((key) => !facts.has(key))) &&
      `facts ${JSON.stringify([...facts])}, model's consumed ${JSON.stringify([...model.consumed.keys()])}`,
    (view.reserved !== model.reserved || view.available !== model.onHand - model.reserved || view.openReservations !== model.reservations.size) &&
      `view ${JSON.stringify(view)}`,
    (canonical(paged.reservations) !== canonical(model.reservations) || !paged.pagesInOrder) &&
      `Get pages of 7 give ${JSON.stringify([...paged.reservations.keys()])} (pages in order: ${paged.pagesInOrder}), model ${JSON.stringify([...model.reservations.keys()])}`,
    inventory.invariantFailures(live).length > 0 && `invariant failures ${JSON.stringify(inventory.invariantFailures(live))}`,
    JSON.stringify(replayed) !== JSON.stringify(persisted) && `replay from event 1 gives ${JSON.stringify(replayed)}`,
    JSON.stringify(restored) !== JSON.stringify(persisted) && `a JSON round trip gives ${JSON.stringify(restored)}`,
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
    const facts = new Set<string>(); // what the journal's index of facts would hold
    const outcomes = new Map<string, number>();
    const reservedIds = new Set<string>();
    const consumedIds = new Set<string>();
    for (let i = 0; i < length; i += 1) {
      const [type, payload] = randomCommand(random);
      // The snapshot path must decide exactly like the live one, so the same command is decided on both.
      const fromJson = step(throughJson(live), type, payload, facts);
      const outcome = step(live, type, payload, facts);
      const expected = model.apply(type, payload);
      if (outcome.expected.outcome === 'event') {
        events.push(outcome.expected.event);
        for (const key of inventory.eventFacts!(outcome.expected.event)) facts.add(key);
        if (outcome.expected.event.type === 'Reserved') reservedIds.add(outcome.expected.event.reservationId);
        if (outcome.expected.event.type === 'Consumed') consumedIds.add(outcome.expected.event.reservationId);
      }
      const label = outcomeLabel(outcome.expected);
      outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
      const problems = [
        JSON.stringify(outcome.expected) !== JSON.stringify(expected) && `outcome ${JSON.stringify(outcome.expected)}, the contract says ${JSON.stringify(expected)}`,
        JSON.stringify(fromJson.expected) !== JSON.stringify(outcome.expected) && `the state restored from JSON decides ${JSON.stringify(fromJson.expected)}`,
        ...problemsAfter(outcome.state, model, events, facts),
      ].filter((problem): problem is string => typeof problem === 'string');
      if (problems.length > 0) expect.fail(`seed ${seed}, step ${i}, ${type} ${JSON.stringify(payload)}: ${problems.join('; ')}`);
      live = outcome.state;
    }
    // The run is worth something only if it reached every outcome and held every awkward id.
    for (const label of ['event', 'noop', 'INSUFFICIENT_STOCK', 'UNKNOWN_RESERVATION', 'RESERVATION_CONSUMED', 'BELOW_RESERVED']) {
      expect(outcomes.get(label) ?? 0, `seed ${seed} never produced ${label}`).toBeGreaterThan(0);
    }
    expect(PROTOTYPE_IDS.filter((id) => !reservedIds.has(id)), `seed ${seed}: ids never reserved`).toEqual([]);
    expect(PROTOTYPE_IDS.filter((id) => consumedIds.has(id)).length, `seed ${seed}: prototype-named ids consumed`).toBeGreaterThan(0);
  });
});

describe('reservation ids that name Object.prototype members (reported cases)', () => {
  const stocked = (): AnyMachineSnapshot => step(initialState(inventory), 'Receive', { qty: 10 }).state;

  it('Reserve "constructor" holds its quantity, so the stock cannot be reserved twice', () => {
    const held = step(stocked(), 'Reserve', { reservationId: 'constructor', qty: 7 });
    expect(held.expected).toEqual({ outcome: 'event', event: { type: 'Reserved', reservationId: 'constructor', qty: 7 } });
    expect(inventory.view(held.state)).toEqual({ onHand: 10, reserved: 7, available: 3, openReservations: 1 });
    expect(inventory.view(held.state, parse('Release', { reservationId: 'constructor' }))).toMatchObject({ reservation: { qty: 7 } });
    expect(inventory.view(held.state, parse('Release', { reservationId: 'toString' }))).toMatchObject({ reservation: null });
    expect(step(held.state, 'Reserve', { reservationId: 'toString', qty: 7 }).expected).toEqual({ outcome: 'rejected', reason: 'INSUFFICIENT_STOCK' });
  });

  it('Consume "constructor" with no such reservation is REJECTED/UNKNOWN_RESERVATION; once reserved it deducts onHand', () => {
    expect(step(stocked(), 'Consume', { reservationId: 'constructor' }).expected).toEqual({ outcome: 'rejected', reason: 'UNKNOWN_RESERVATION' });
    const held = step(stocked(), 'Reserve', { reservationId: 'constructor', qty: 7 }).state;
    const consumed = step(held, 'Consume', { reservationId: 'constructor' });
    expect(consumed.expected).toEqual({ outcome: 'event', event: { type: 'Consumed', reservationId: 'constructor' } });
    expect(inventory.view(consumed.state)).toEqual({ onHand: 3, reserved: 0, available: 3, openReservations: 0 });
    const facts = new Set(inventory.eventFacts!({ type: 'Consumed', reservationId: 'constructor' }));
    expect(facts).toEqual(new Set(['consumed:constructor']));
    expect(step(consumed.state, 'Consume', { reservationId: 'constructor' }, facts).expected).toEqual({ outcome: 'noop' });
    expect(step(consumed.state, 'Reserve', { reservationId: 'constructor', qty: 1 }, facts).expected).toEqual({ outcome: 'rejected', reason: 'RESERVATION_CONSUMED' });
    // A fact about "constructor" says nothing about "__proto__" or "toString".
    expect(step(consumed.state, 'Consume', { reservationId: '__proto__' }, facts).expected).toEqual({ outcome: 'rejected', reason: 'UNKNOWN_RESERVATION' });
    expect(step(consumed.state, 'Reserve', { reservationId: 'toString', qty: 1 }, facts).expected).toMatchObject({ outcome: 'event' });
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

  it('"__proto__" is an ordinary id: held, an ordinary entry in Get, kept through JSON, released, and Object.prototype is untouched', () => {
    const held = step(stocked(), 'Reserve', { reservationId: '__proto__', qty: 2, workOrderId: 'wo-1' }).state;
    expect(ctx(held).reservations.has('__proto__')).toBe(true);
    expect(ctx(held).reservations.get('__proto__')).toEqual({ qty: 2, workOrderId: 'wo-1' });
    const page = inventory.view(held, parse('Get', {})).reservations as readonly ListedReservation[];
    expect(page).toStrictEqual([{ id: '__proto__', qty: 2, workOrderId: 'wo-1' }]);
    expect(Object.getPrototypeOf(page[0])).toBe(Object.prototype);
    expect(Object.keys(page[0]!)).toEqual(['id', 'qty', 'workOrderId']);
    expect(JSON.parse(JSON.stringify(page))).toEqual(JSON.parse('[{"id": "__proto__", "qty": 2, "workOrderId": "wo-1"}]'));
    expect(persistState(inventory, held).context.reservations).toEqual({ ids: '__proto__', qty: '2', workOrderId: 'wo-1' });
    expect(openReservations(throughJson(held))).toEqual(new Map([['__proto__', { qty: 2, workOrderId: 'wo-1' }]]));
    const released = step(throughJson(held), 'Release', { reservationId: '__proto__' });
    expect(released.expected).toEqual({ outcome: 'event', event: { type: 'Released', reservationId: '__proto__' } });
    expect(openReservations(released.state)).toEqual(new Map());
    expect(inventory.view(released.state)).toEqual({ onHand: 10, reserved: 0, available: 10, openReservations: 0 });
    expect(Object.prototype).not.toHaveProperty('qty');
    expect(Object.prototype).not.toHaveProperty('workOrderId');
  });

  it('invariantFailures (what `ppos verify` runs) catches reserved disagreeing with reservations named constructor and __proto__', () => {
    const context = JSON.parse(
      '{"onHand": 10, "reserved": 0, "reservations": {"ids": "__proto__\\nconstructor", "qty": "2,7", "workOrderId": "\\n"}}',
    ) as Record<string, unknown>;
    const state = restoreState(inventory, { value: 'active', context });
    expect(inventory.invariantFailures(state)).toEqual([{ invariant: 'reserved_matches_reservations', detail: 'reserved 0 != sum of open reservations 9' }]);
  });

  it('the cross-actor check counts a "__proto__" reservation carrying the work order id "constructor" as not held by it', () => {
    const held = step(stocked(), 'Reserve', { reservationId: '__proto__', qty: 2, workOrderId: 'constructor' }).state;
    // The state as runtime/cross-checks.ts hands it over: value and (live) context.
    expect(reservationsMatchWorkOrders([{ kind: 'inventory', id: 'sku-1', value: held.value, context: held.context }])).toEqual([
      { actor: 'inventory/sku-1', detail: 'reservation __proto__ is open but work order constructor does not hold it' },
    ]);
  });

  // Contract section 5: Get answers a page "ordered by id". "0" and "10" are array indexes, which an
  // object keyed by id (and so its JSON) would list first, in numeric order; the page is an array.
  it('Get lists ids that look like array indexes ("-1", "0", "10", "9") in id order', () => {
    let state = step(initialState(inventory), 'Receive', { qty: 10 }).state;
    for (const id of ['9', '10', '0', '-1', 'a']) state = step(state, 'Reserve', { reservationId: id, qty: 1 }).state;
    const answer = inventory.view(state, parse('Get', {}));
    const page = answer.reservations as readonly ListedReservation[];
    expect(page.map((entry) => entry.id)).toEqual(['-1', '0', '10', '9', 'a']);
    const json = JSON.parse(JSON.stringify(answer)) as { reservations: { id: string }[] };
    expect(json.reservations.map((entry) => entry.id)).toEqual(['-1', '0', '10', '9', 'a']);
    expect(pagedThroughGet(state, 2)).toEqual({
      reservations: new Map(['-1', '0', '10', '9', 'a'].map((id) => [id, { qty: 1 }])),
      pagesInOrder: true,
    });
  });

  it('a reservation id of 129 characters is BAD_REQUEST naming the contract pattern', () => {
    const parsed = inventory.parseCommand('Reserve', { reservationId: 'r'.repeat(129), qty: 1 });
    expect(parsed).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    expect(!parsed.ok && parsed.message).toContain('reservationId: must match [A-Za-z0-9_:-]{1,128}');
  });
});
