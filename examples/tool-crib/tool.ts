// A tool crib: each tool (a torque wrench, a drill) is an actor. Mechanics check tools out and
// return them; a tool returned damaged goes to repair before anyone may take it again. A drill
// checked out with bits holds them at the inventory (a saga: Reserve at check-out, Consume at
// return), and is refused when the bits are short.
// Declared with ppos's public API only: one declaration types the commands, events and state.
import { defineKind } from 'ppos';
import { z } from 'zod';

const person = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must match [A-Za-z0-9_.-]{1,64}');
const sku = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must match [A-Za-z0-9_-]{1,64}');
const condition = z.enum(['ok', 'damaged']);

export type ToolStatus = 'in_crib' | 'reserving' | 'checked_out' | 'returning' | 'in_repair';

interface Bits {
  readonly sku: string;
  readonly qty: number;
  readonly reservationId: string;
}

export const tool = defineKind({
  name: 'tool',
  initial: {
    status: 'in_crib' as ToolStatus,
    holder: null as string | null,
    checkouts: 0,
    bits: null as Bits | null,
    /** The client command whose saga is open (check-out with bits, or their return). */
    request: null as string | null,
    returning: null as z.infer<typeof condition> | null,
    refusal: null as string | null,
  },
  commands: {
    CheckOut: z.object({ holder: person, bits: z.object({ sku, qty: z.number().int().positive().max(1000) }).strict().optional() }).strict(),
    Return: z.object({ condition }).strict(),
    Repaired: z.object({}).strict(),
    Get: z.object({}).strict(),
  },
  queries: ['Get'],
  events: {
    CheckedOut: z.object({ holder: person }),
    CheckoutRequested: z.object({ holder: person, sku, qty: z.number().int().positive(), requestId: z.string() }),
    BitsReserved: z.object({}),
    CheckoutRefused: z.object({ reason: z.string() }),
    Returned: z.object({ condition }),
    ReturnRequested: z.object({ condition, requestId: z.string() }),
    BitsConsumed: z.object({}),
    RepairDone: z.object({}),
  },
  // The tag of each command the tool sends the inventory, echoed in its answer.
  sagaTag: z.object({ step: z.enum(['reserve', 'consume']), checkout: z.number().int().positive() }).strict(),
}).behaviour({
  evolve: {
    CheckedOut: (state, event) => ({ ...state, status: 'checked_out', holder: event.holder, checkouts: state.checkouts + 1, refusal: null }),
    CheckoutRequested: (state, event) => ({
      ...state,
      status: 'reserving',
      holder: event.holder,
      checkouts: state.checkouts + 1,
      bits: { sku: event.sku, qty: event.qty, reservationId: `tool-${event.requestId}` },
      request: event.requestId,
      refusal: null,
    }),
    BitsReserved: (state) => ({ ...state, status: 'checked_out', request: null }),
    CheckoutRefused: (state, event) => ({ ...state, status: 'in_crib', holder: null, bits: null, request: null, refusal: event.reason }),
    Returned: (state, event) => ({ ...state, status: event.condition === 'ok' ? 'in_crib' : 'in_repair', holder: null }),
    ReturnRequested: (state, event) => ({ ...state, status: 'returning', request: event.requestId, returning: event.condition }),
    BitsConsumed: (state) => ({ ...state, status: state.returning === 'ok' ? 'in_crib' : 'in_repair', holder: null, bits: null, request: null, returning: null }),
    RepairDone: (state) => ({ ...state, status: 'in_crib' }),
  },
  decide: {
    CheckOut: (state, { holder, bits }, { messageId }) => {
      if (state.status === 'checked_out' || state.status === 'reserving') {
        return state.holder === holder ? null : { reject: { reason: 'CHECKED_OUT', message: `held by ${state.holder}` } };
      }
      if (state.status === 'in_repair') return { reject: { reason: 'IN_REPAIR', message: 'the tool is being repaired' } };
      if (state.status === 'returning') return { reject: { reason: 'RETURNING', message: 'the tool is being returned' } };
      if (!bits) return { emit: { type: 'CheckedOut', holder } };
      return { emit: { type: 'CheckoutRequested', holder, sku: bits.sku, qty: bits.qty, requestId: messageId } };
    },
    Return: (state, { condition }, { messageId }) => {
      if (state.status !== 'checked_out') return { reject: { reason: 'NOT_CHECKED_OUT', message: `the tool is ${state.status}` } };
      return state.bits ? { emit: { type: 'ReturnRequested', condition, requestId: messageId } } : { emit: { type: 'Returned', condition } };
    },
    Repaired: (state) => (state.status === 'in_repair' ? { emit: { type: 'RepairDone' } } : { reject: { reason: 'NOT_IN_REPAIR', message: `the tool is ${state.status}` } }),
  },
  saga: {
    // What the tool owes the inventory, from its state alone: a crash mid-saga resumes here.
    effects: (state, toolId) => {
      const bits = state.bits;
      if (!bits) return [];
      const step = state.status === 'reserving' ? 'reserve' : state.status === 'returning' ? 'consume' : null;
      if (step === null) return [];
      return [
        {
          kind: 'inventory',
          id: bits.sku,
          messageId: `ppos:tool:${toolId}:${state.checkouts}:${step}`,
          type: step === 'reserve' ? 'Reserve' : 'Consume',
          payload: step === 'reserve' ? { reservationId: bits.reservationId, qty: bits.qty } : { reservationId: bits.reservationId },
          tag: { step, checkout: state.checkouts },
        },
      ];
    },
    answer: (state, { tag, ok, reason }) => {
      // An answer to an older check-out, or one already taken in: nothing more to do.
      if (tag.checkout !== state.checkouts) return null;
      if (tag.step === 'reserve' && state.status === 'reserving') return ok ? { emit: { type: 'BitsReserved' } } : { emit: { type: 'CheckoutRefused', reason: reason ?? 'REJECTED' } };
      if (tag.step === 'consume' && state.status === 'returning') return { emit: { type: 'BitsConsumed' } };
      return null;
    },
    open: (state) => state.request,
    settled: (_before, after) =>
      after.refusal !== null && after.status === 'in_crib' && after.holder === null
        ? { ok: false, reason: after.refusal, message: `the bits are short at the inventory (${after.refusal})` }
        : { ok: true },
  },
  view: ({ status, holder, checkouts, bits }) => ({ status, holder, checkouts, bits }),
  invariants: {
    holder_iff_out: (state) => ((state.holder !== null) === ['reserving', 'checked_out', 'returning'].includes(state.status) ? null : `status ${state.status} with holder ${state.holder}`),
  },
});
