// actors/state.ts steps machines with one reused inert scope instead of xstate's `transition()`
// (which builds a whole actor per call). This checks the two agree, state for state, over long
// seeded random runs of both kinds, including refused events. Decisions get the facts the events
// so far established, as the runtime answers them from the journal.
import { initialTransition, transition, type AnyMachineSnapshot } from 'xstate';
import { describe, expect, it } from 'vitest';
import { inventory } from '../../actors/inventory.js';
import { decideOf, parseCommandOf } from '../../actors/saga-answers.js';
import { ANSWER_COMMAND, type ActorKind, type DomainEvent } from '../../actors/kind.js';
import { applyEvent, EventRefusedError, initialState, persistState } from '../../actors/state.js';
import { workorder } from '../../actors/workorder.js';
import { Random } from '../../src/random.js';

/** The reference: xstate's own pure functions, exactly as documented. */
function referenceStep(kind: ActorKind, state: AnyMachineSnapshot, event: DomainEvent): AnyMachineSnapshot {
  return transition(kind.machine, state as never, event as never)[0] as AnyMachineSnapshot;
}

/**
 * Decides `type` with `payload` (given the facts `established` so far, which the event's own facts
 * then join); applies the event both ways and requires the same result.
 */
function stepBoth(
  kind: ActorKind,
  id: string,
  state: AnyMachineSnapshot,
  type: string,
  payload: Record<string, unknown>,
  internal = false,
  established: Set<string> = new Set(),
): { state: AnyMachineSnapshot; event: DomainEvent | null } {
  const parsed = parseCommandOf(kind, type, payload, internal);
  if (!parsed.ok) return { state, event: null };
  const decision = decideOf(kind, state, parsed.command, id, `m-${type}-${JSON.stringify(payload)}`, { has: (key) => established.has(key) });
  if (decision.outcome === 'reject' || decision.event === null) return { state, event: null };
  const ours = applyEvent(kind, state, decision.event);
  const theirs = referenceStep(kind, state, decision.event);
  expect(persistState(kind, ours)).toEqual(persistState(kind, theirs));
  expect(ours.status).toBe(theirs.status);
  for (const key of kind.eventFacts?.(decision.event) ?? []) established.add(key);
  return { state: ours, event: decision.event };
}

describe('stepping with a reused inert scope', () => {
  it('starts every kind where initialTransition starts it', () => {
    for (const kind of [inventory, workorder]) {
      expect(persistState(kind, initialState(kind))).toEqual(persistState(kind, initialTransition(kind.machine)[0] as AnyMachineSnapshot));
    }
  });

  it('reaches the same inventory state as transition() over 5000 random commands', () => {
    const random = new Random(7);
    let state = initialState(inventory);
    const facts = new Set<string>();
    let applied = 0;
    for (let i = 0; i < 5_000; i += 1) {
      const reservation = `r${random.int(0, 40)}`;
      const qty = random.int(1, 20);
      const command = random.pick([
        ['Receive', { qty }],
        ['Reserve', { reservationId: reservation, qty }],
        ['Release', { reservationId: reservation }],
        ['Consume', { reservationId: reservation }],
        ['Adjust', { onHand: random.int(0, 200) }],
      ] as const);
      const result = stepBoth(inventory, 'sku-1', state, command[0], command[1], false, facts);
      if (result.event) applied += 1;
      state = result.state;
    }
    // The run exercised the machine, not just refusals.
    expect(applied).toBeGreaterThan(1_000);
    expect(facts.size).toBeGreaterThan(0);
  });

  it('reaches the same work order state as transition() through every saga, answers in random order', () => {
    const random = new Random(11);
    const seen = new Set<string>();
    for (let run = 0; run < 200; run += 1) {
      const id = `wo-${run}`;
      let state = stepBoth(workorder, id, initialState(workorder), 'Create', {
        bom: Array.from({ length: random.int(1, 4) }, (_, line) => ({ sku: `sku-${line}`, qty: random.int(1, 5) })),
        stages: ['cut', 'weld', 'paint'],
      }).state;
      for (let move = 0; move < 40; move += 1) {
        seen.add(JSON.stringify(state.value));
        const effects = workorder.pendingEffects?.(state, id) ?? [];
        if (effects.length > 0) {
          const effect = random.pick(effects);
          const ok = effect.type !== 'Reserve' || random.next() < 0.8;
          state = stepBoth(workorder, id, state, ANSWER_COMMAND, { tag: effect.tag, ok, ...(ok ? {} : { reason: 'INSUFFICIENT_STOCK' }) }, true).state;
          continue;
        }
        const command = random.pick([
          ['Release', {}],
          ['Start', {}],
          ['AdvanceStage', { to: random.pick(['cut', 'weld', 'paint']) }],
          ['Complete', {}],
          ['Cancel', {}],
        ] as const);
        state = stepBoth(workorder, id, state, command[0], command[1]).state;
      }
    }
    // Every state of the machine was visited and compared, the saga states included.
    expect([...seen].sort()).toEqual(
      ['cancelled', 'cancelling', 'completed', 'completing', 'draft', 'in_progress', 'released', 'releasing'].map((v) => JSON.stringify(v)),
    );
  });

  it('still refuses a journaled event the machine cannot take (transition() would silently ignore it)', () => {
    const state = initialState(inventory);
    const consumed: DomainEvent = { type: 'Consumed', reservationId: 'nope' };
    expect(() => applyEvent(inventory, state, consumed)).toThrow(EventRefusedError);
  });
});
