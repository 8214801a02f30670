// Holds with a deadline, as the inventory machine decides them: pure, no clock but the one the
// runtime hands in (the command's received time), and a timer firing that expires only the hold
// it was set for.
import { describe, expect, it } from 'vitest';
import { inventory } from '../../actors/inventory.js';
import { NO_FACTS, type DomainEvent } from '../../actors/kind.js';
import { decideOf, parseCommandOf } from '../../actors/saga-answers.js';
import { applyEvent, initialState, persistState } from '../../actors/state.js';

const RECEIVED = Date.parse('2026-11-30T12:00:00Z');

function run(events: DomainEvent[]) {
  return events.reduce((state, event) => applyEvent(inventory, state, event), initialState(inventory));
}

/** `receivedAt` null: no clock handed in. */
function decide(events: DomainEvent[], type: string, payload: unknown, internal = false, receivedAt: number | null = RECEIVED) {
  const parsed = parseCommandOf(inventory, type, payload, internal);
  if (!parsed.ok) return parsed;
  return decideOf(inventory, run(events), parsed.command, 'sku-1', 'm-1', NO_FACTS, receivedAt ?? undefined);
}

const stocked: DomainEvent[] = [{ type: 'Received', qty: 10 }];

describe('holds', () => {
  it('a Reserve with holdMs records its deadline from the received time, and sets its timer', () => {
    const decision = decide(stocked, 'Reserve', { reservationId: 'r-1', qty: 3, holdMs: 5_000 });
    expect(decision).toEqual({ outcome: 'accept', event: { type: 'Reserved', reservationId: 'r-1', qty: 3, expiresAt: RECEIVED + 5_000 } });
    const event = (decision as { event: DomainEvent }).event;
    expect(inventory.timerChanges!(event)).toMatchObject({ set: [{ key: 'r-1', dueAt: RECEIVED + 5_000 }], clear: [] });
    expect(inventory.pendingTimers!(run([...stocked, event]))).toMatchObject([{ key: 'r-1', dueAt: RECEIVED + 5_000, command: { type: 'ExpireHold' } }]);
    expect(decide(stocked, 'Reserve', { reservationId: 'r-1', qty: 3, holdMs: 5_000 }, false, null)).toMatchObject({ outcome: 'reject', reason: 'NO_CLOCK' });
    expect(decide(stocked, 'Reserve', { reservationId: 'r-1', qty: 3, holdMs: 0 })).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
  });

  it('expires only the hold its timer was set for, and only from the runtime', () => {
    const held: DomainEvent[] = [...stocked, { type: 'Reserved', reservationId: 'r-1', qty: 3, expiresAt: RECEIVED + 5_000 }];
    expect(decide(held, 'ExpireHold', { reservationId: 'r-1', dueAt: RECEIVED + 5_000 })).toMatchObject({ ok: false, code: 'UNKNOWN_COMMAND' });
    expect(decide(held, 'ExpireHold', { reservationId: 'r-1', dueAt: RECEIVED + 5_000 }, true)).toEqual({ outcome: 'accept', event: { type: 'HoldExpired', reservationId: 'r-1' } });
    // A timer left from an earlier hold of the same id, or for a hold closed since: nothing.
    expect(decide(held, 'ExpireHold', { reservationId: 'r-1', dueAt: RECEIVED + 1 }, true)).toEqual({ outcome: 'accept', event: null });
    expect(decide([...held, { type: 'Released', reservationId: 'r-1' }], 'ExpireHold', { reservationId: 'r-1', dueAt: RECEIVED + 5_000 }, true)).toEqual({ outcome: 'accept', event: null });
    const expired = run([...held, { type: 'HoldExpired', reservationId: 'r-1' }]);
    expect(inventory.view(expired)).toMatchObject({ onHand: 10, reserved: 0, available: 10, openReservations: 0 });
    for (const closing of ['Released', 'Consumed', 'HoldExpired']) expect(inventory.timerChanges!({ type: closing, reservationId: 'r-1' })).toEqual({ set: [], clear: ['r-1'] });
  });

  it('snapshots carry deadlines, and a state without holds persists exactly as before holds existed', () => {
    const plain = run([...stocked, { type: 'Reserved', reservationId: 'r-1', qty: 2 }]);
    expect(persistState(inventory, plain).context).toEqual({ onHand: 10, reserved: 2, reservations: { ids: 'r-1', qty: '2', workOrderId: '' } });
    const held = run([...stocked, { type: 'Reserved', reservationId: 'r-1', qty: 2 }, { type: 'Reserved', reservationId: 'r-2', qty: 1, expiresAt: RECEIVED }]);
    const persisted = persistState(inventory, held).context;
    expect(persisted.reservations).toMatchObject({ expiresAt: `,${RECEIVED}` });
    const restored = inventory.codec!.decode(persisted) as { reservations: { get(id: string): unknown } };
    expect(restored.reservations.get('r-2')).toEqual({ qty: 1, expiresAt: RECEIVED });
    expect(restored.reservations.get('r-1')).toEqual({ qty: 2 });
  });
});
