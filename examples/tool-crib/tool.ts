// A tool crib: each tool (a torque wrench, a borescope) is an actor. Mechanics check tools out
// and return them; a tool returned damaged goes to repair before anyone may take it again.
// Declared with ppos's public API only: one declaration types the commands, events and state.
import { defineKind } from 'ppos';
import { z } from 'zod';

const person = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must match [A-Za-z0-9_.-]{1,64}');

export type ToolStatus = 'in_crib' | 'checked_out' | 'in_repair';

export const tool = defineKind({
  name: 'tool',
  initial: { status: 'in_crib' as ToolStatus, holder: null as string | null, checkouts: 0 },
  commands: {
    CheckOut: z.object({ holder: person }).strict(),
    Return: z.object({ condition: z.enum(['ok', 'damaged']) }).strict(),
    Repaired: z.object({}).strict(),
    Get: z.object({}).strict(),
  },
  queries: ['Get'],
  events: {
    CheckedOut: z.object({ holder: person }),
    Returned: z.object({ condition: z.enum(['ok', 'damaged']) }),
    RepairDone: z.object({}),
  },
}).behaviour({
  evolve: {
    CheckedOut: (state, event) => ({ ...state, status: 'checked_out', holder: event.holder, checkouts: state.checkouts + 1 }),
    Returned: (state, event) => ({ ...state, status: event.condition === 'ok' ? 'in_crib' : 'in_repair', holder: null }),
    RepairDone: (state) => ({ ...state, status: 'in_crib' }),
  },
  decide: {
    CheckOut: (state, { holder }) => {
      if (state.status === 'checked_out') return state.holder === holder ? null : { reject: { reason: 'CHECKED_OUT', message: `held by ${state.holder}` } };
      if (state.status === 'in_repair') return { reject: { reason: 'IN_REPAIR', message: 'the tool is being repaired' } };
      return { emit: { type: 'CheckedOut', holder } };
    },
    Return: (state, { condition }) =>
      state.status === 'checked_out' ? { emit: { type: 'Returned', condition } } : { reject: { reason: 'NOT_CHECKED_OUT', message: 'the tool is in the crib' } },
    Repaired: (state) => (state.status === 'in_repair' ? { emit: { type: 'RepairDone' } } : { reject: { reason: 'NOT_IN_REPAIR', message: `the tool is ${state.status}` } }),
  },
  invariants: {
    holder_iff_checked_out: (state) => ((state.holder !== null) === (state.status === 'checked_out') ? null : `status ${state.status} with holder ${state.holder}`),
  },
});
