// The inventory actor as a pure function: commands are parsed and decided, events applied,
// with no services. What the runtime does with a decision is tested over NATS elsewhere.
import type { AnyMachineSnapshot } from 'xstate';
import { describe, expect, it } from 'vitest';
import { inventory, type InventoryContext, type InventoryEvent } from '../../actors/inventory.js';
import type { DomainEvent } from '../../actors/kind.js';
import { MAX_QTY } from '../../actors/schema.js';
import { applyEvent, EventRefusedError, initialState, persistState, replay, restoreState } from '../../actors/state.js';
import { snapshotOf, stateHash } from '../../runtime/recovery.js';
import { Random } from '../../src/random.js';
import { InventoryModel, outcomeLabel } from './inventory-model.js';

type Outcome =
  | { kind: 'event'; event: DomainEvent; state: AnyMachineSnapshot }
  | { kind: 'noop'; state: AnyMachineSnapshot }
  | { kind: 'rejected'; reason: string; state: AnyMachineSnapshot }
  | { kind: 'invalid'; code: 'BAD_REQUEST' | 'UNKNOWN_COMMAND'; message: string; state: AnyMachineSnapshot };

/** What the actor host does with one command, minus the journal: parse, decide, apply. */
function step(state: AnyMachineSnapshot, type: string, payload?: unknown): Outcome {
  const parsed = inventory.parseCommand(type, payload);
  if (!parsed.ok) return { kind: 'invalid', code: parsed.code, message: parsed.message, state };
  const decision = inventory.decide(state, parsed.command, 'sku-1');
  if (decision.outcome === 'reject') return { kind: 'rejected', reason: decision.reason, state };
  if (decision.event === null) return { kind: 'noop', state };
  return { kind: 'event', event: decision.event, state: applyEvent(inventory, state, decision.event) };
}

/** Runs commands that must all succeed; returns the final state and the events they produced. */
function run(commands: [string, Record<string, unknown>][], from = initialState(inventory)): { state: AnyMachineSnapshot; events: DomainEvent[] } {
  let state = from;
  const events: DomainEvent[] = [];
  for (const [type, payload] of commands) {
    const outcome = step(state, type, payload);
    if (outcome.kind === 'rejected' || outcome.kind === 'invalid') throw new Error(`${type} ${JSON.stringify(payload)} failed: ${JSON.stringify(outcome)}`);
    if (outcome.kind === 'event') events.push(outcome.event);
    state = outcome.state;
  }
  return { state, events };
}

const ctx = (state: AnyMachineSnapshot): InventoryContext => state.context as InventoryContext;
const view = (state: AnyMachineSnapshot): Record<string, unknown> => inventory.publicState(state);

describe('inventory commands', () => {
  it('starts empty', () => {
    expect(view(initialState(inventory))).toEqual({ onHand: 0, reserved: 0, available: 0, reservations: {} });
  });

  it('Receive adds to onHand', () => {
    const first = step(initialState(inventory), 'Receive', { qty: 10 });
    expect(first.kind === 'event' && first.event).toEqual({ type: 'Received', qty: 10 });
    const second = step(first.state, 'Receive', { qty: 5 });
    expect(view(second.state)).toEqual({ onHand: 15, reserved: 0, available: 15, reservations: {} });
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
    expect(view(state)).toEqual({
      onHand: 10,
      reserved: 7,
      available: 3,
      reservations: { r1: { qty: 4 }, 'wo-1:0': { qty: 3, workOrderId: 'wo-1' } },
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
    const { state } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Consume', { reservationId: 'r1' }],
    ]);
    expect(step(state, 'Reserve', { reservationId: 'r1', qty: 4 })).toMatchObject({ kind: 'rejected', reason: 'RESERVATION_CONSUMED' });
  });

  it('Release frees the reservation; a released id may be reserved again', () => {
    const { state, events } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Release', { reservationId: 'r1' }],
    ]);
    expect(events[2]).toEqual({ type: 'Released', reservationId: 'r1' });
    expect(view(state)).toEqual({ onHand: 10, reserved: 0, available: 10, reservations: {} });
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
    const { state } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Consume', { reservationId: 'r1' }],
    ]);
    expect(step(state, 'Release', { reservationId: 'r1' })).toEqual({ kind: 'noop', state });
    expect(view(state)).toEqual({ onHand: 6, reserved: 0, available: 6, reservations: {} });
  });

  it('Consume takes the reserved quantity out of onHand and reserved', () => {
    const { state, events } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Reserve', { reservationId: 'r2', qty: 1 }],
      ['Consume', { reservationId: 'r1' }],
    ]);
    expect(events[3]).toEqual({ type: 'Consumed', reservationId: 'r1' });
    expect(view(state)).toEqual({ onHand: 6, reserved: 1, available: 5, reservations: { r2: { qty: 1 } } });
  });

  it('a repeated Consume is a no-op success', () => {
    const { state } = run([
      ['Receive', { qty: 10 }],
      ['Reserve', { reservationId: 'r1', qty: 4 }],
      ['Consume', { reservationId: 'r1' }],
    ]);
    expect(step(state, 'Consume', { reservationId: 'r1' })).toEqual({ kind: 'noop', state });
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
    expect(persistState(replay(inventory, initialState(inventory), events))).toEqual(persistState(state));
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
    const statesAfter: AnyMachineSnapshot[] = [state]; // statesAfter[n] = state after event n
    const outcomes = new Map<string, number>();
    for (let i = 0; i < length; i += 1) {
      const [type, payload] = randomCommand(random);
      const outcome = step(state, type, payload);
      const label = outcome.kind === 'rejected' ? outcome.reason : outcome.kind === 'invalid' ? outcome.code : outcome.kind;
      outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
      const expected = outcome.kind === 'invalid' ? 'BAD_REQUEST' : outcomeLabel(model.apply(type, payload));
      if (outcome.kind === 'event') {
        events.push(outcome.event);
        statesAfter.push(outcome.state);
      }
      // Checked with plain comparisons (thousands of steps); the first failure is reported in full.
      const c = ctx(outcome.state);
      const sum = Object.values(c.reservations).reduce((total, r) => total + r.qty, 0);
      const problems = [
        label !== expected && `outcome ${label}, the contract says ${expected}`,
        outcome.kind !== 'event' && outcome.state !== state && 'a command that appends nothing changed the state',
        c.reserved < 0 && `reserved ${c.reserved} < 0`,
        c.reserved > c.onHand && `reserved ${c.reserved} > onHand ${c.onHand}`,
        c.reserved !== sum && `reserved ${c.reserved} != sum of open reservations ${sum}`,
        inventory.invariantFailures(outcome.state).length > 0 && `invariant failures ${JSON.stringify(inventory.invariantFailures(outcome.state))}`,
        c.onHand !== model.onHand && `onHand ${c.onHand}, model ${model.onHand}`,
        (Object.keys(c.reservations).length !== model.reservations.size ||
          [...model.reservations].some(([id, r]) => !Object.hasOwn(c.reservations, id) || c.reservations[id]!.qty !== r.qty)) &&
          `reservations ${JSON.stringify(c.reservations)}, model ${JSON.stringify(Object.fromEntries(model.reservations))}`,
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
    expect(persistState(replayed)).toEqual(persistState(state));
    expect(stateHash(persistState(replay(inventory, initialState(inventory), events)))).toBe(stateHash(persistState(state)));

    // Snapshot at any seq (stored as JSON, as jsonb gives it back) + the tail equals the full replay.
    for (let probe = 0; probe < 20; probe += 1) {
      const seq = random.int(0, events.length);
      const snapshot = snapshotOf(inventory, statesAfter[seq]!, seq);
      expect(snapshot.seq).toBe(seq);
      expect(snapshot.machineVersion).toBe(inventory.machineVersion);
      const stored = JSON.parse(JSON.stringify(snapshot.state)) as typeof snapshot.state;
      expect(stateHash(stored)).toBe(snapshot.hash);
      const resumed = replay(inventory, restoreState(inventory, stored), events.slice(seq));
      expect(persistState(resumed), `snapshot at ${seq} + tail`).toEqual(persistState(replayed));
    }
  });
});

describe('snapshots', () => {
  const sample = (): { state: AnyMachineSnapshot; events: DomainEvent[] } =>
    run([
      ['Receive', { qty: 50 }],
      ['Reserve', { reservationId: 'a', qty: 5, workOrderId: 'wo-1' }],
      ['Reserve', { reservationId: 'b', qty: 7 }],
      ['Consume', { reservationId: 'a' }],
      ['Release', { reservationId: 'b' }],
      ['Reserve', { reservationId: 'c', qty: 3 }],
    ]);

  it('hashes the state independently of key order, so a jsonb round trip keeps the hash', () => {
    const persisted = persistState(sample().state);
    const reordered = {
      context: Object.fromEntries(Object.entries(persisted.context).reverse()),
      value: persisted.value,
    };
    expect(stateHash(reordered)).toBe(stateHash(persisted));
  });

  it('a different state has a different hash', () => {
    const persisted = persistState(sample().state);
    const tampered = { ...persisted, context: { ...persisted.context, onHand: (persisted.context.onHand as number) + 1 } };
    expect(stateHash(tampered)).not.toBe(stateHash(persisted));
  });

  it('a restored snapshot keeps deciding like the live state', () => {
    const { state } = sample();
    const restored = restoreState(inventory, JSON.parse(JSON.stringify(persistState(state))));
    for (const [type, payload] of [
      ['Consume', { reservationId: 'a' }],
      ['Reserve', { reservationId: 'a', qty: 1 }],
      ['Reserve', { reservationId: 'd', qty: 36 }],
      ['Reserve', { reservationId: 'd', qty: 35 }],
      ['Adjust', { onHand: 2 }],
      ['Consume', { reservationId: 'c' }],
    ] as [string, Record<string, unknown>][]) {
      const live = step(state, type, payload);
      const resumed = step(restored, type, payload);
      expect(resumed.kind).toBe(live.kind);
      expect(persistState(resumed.state)).toEqual(persistState(live.state));
    }
  });
});
