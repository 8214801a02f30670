// Compiled by test/library/types.test.ts with tsc: every line marked @ts-expect-error must be a
// compile error (tsc fails on a marker with no error under it), every other line must compile.
// Together they prove that one kind declaration types its client and its own handlers.
import { clientFor, defineKind, inventoryCommands, type PposClient } from 'ppos';
import { z } from 'zod';
import { tool } from '../../examples/tool-crib/tool.js';

declare const client: PposClient;
const tools = clientFor(client, tool);

// Right: a known command with its payload.
void tools.send('wrench-1', 'CheckOut', { holder: 'ada' });
void tools.send('wrench-1', 'Return', { condition: 'damaged' });
// @ts-expect-error an unknown command
void tools.send('wrench-1', 'Steal', {});
// @ts-expect-error a payload field of the wrong type
void tools.send('wrench-1', 'CheckOut', { holder: 42 });
// @ts-expect-error a payload missing its field
void tools.send('wrench-1', 'CheckOut', {});
// @ts-expect-error a value outside the enum
void tools.send('wrench-1', 'Return', { condition: 'lost' });
// A type that is one of two commands: the payload must fit the one it is.
declare const either: 'CheckOut' | 'Return';
// @ts-expect-error a payload of one command sent with a type that may be the other
void tools.send('wrench-1', either, { holder: 'ada' });
// With options, as a fourth argument.
void tools.send('wrench-1', 'Repaired', {}, { deadlineMs: 5_000 });

// The built-in kinds are typed the same way.
const stock = clientFor(client, inventoryCommands);
void stock.send('sku-1', 'Reserve', { reservationId: 'r-1', qty: 3 });
// @ts-expect-error qty is a number
void stock.send('sku-1', 'Reserve', { reservationId: 'r-1', qty: '3' });

const shape = {
  name: 'counter',
  initial: { count: 0 },
  commands: { Add: z.object({ by: z.number().int() }).strict() },
  events: { Added: z.object({ by: z.number().int() }) },
};

// Right: handlers typed by the shape.
defineKind(shape).behaviour({
  evolve: { Added: (state, event) => ({ count: state.count + event.by }) },
  decide: { Add: (_state, payload) => ({ emit: { type: 'Added', by: payload.by } }) },
});

defineKind(shape).behaviour({
  evolve: { Added: (state, event) => ({ count: state.count + event.by }) },
  // @ts-expect-error an event type the kind does not have
  decide: { Add: (_state, payload) => ({ emit: { type: 'Removed', by: payload.by } }) },
});

defineKind(shape).behaviour({
  evolve: { Added: (state, event) => ({ count: state.count + event.by }) },
  // @ts-expect-error an event field of the wrong type
  decide: { Add: () => ({ emit: { type: 'Added', by: 'one' } }) },
});

defineKind(shape).behaviour({
  // @ts-expect-error a field the event does not have
  evolve: { Added: (state, event) => ({ count: state.count + event.amount }) },
  decide: { Add: (_state, payload) => ({ emit: { type: 'Added', by: payload.by } }) },
});

defineKind(shape).behaviour({
  // @ts-expect-error a state of another shape
  evolve: { Added: (state, event) => ({ total: state.count + event.by }) },
  decide: { Add: (_state, payload) => ({ emit: { type: 'Added', by: payload.by } }) },
});

// @ts-expect-error an event without an evolve handler
defineKind(shape).behaviour({ evolve: {}, decide: {} });
