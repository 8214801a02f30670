// defineKind turns one declaration into an ordinary actor kind: pure, so tested without I/O.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../../actors/define-kind.js';
import { currentEvent, withVersion } from '../../actors/event-version.js';
import { NO_FACTS } from '../../actors/kind.js';
import { applyEvent, initialState } from '../../actors/state.js';

const shape = {
  name: 'counter',
  initial: { count: 0 },
  commands: { Add: z.object({ by: z.number().int() }).strict(), Get: z.object({}).strict() },
  queries: ['Get' as const],
  events: { Added: z.object({ by: z.number().int().positive() }) },
};
const counter = defineKind(shape).behaviour({
  evolve: { Added: (state, event) => ({ count: state.count + event.by }) },
  decide: { Add: (_state, { by }) => (by === 0 ? null : by < 0 ? { reject: { reason: 'NEGATIVE', message: 'only up' } } : { emit: { type: 'Added', by } }) },
  invariants: { not_negative: (state) => (state.count >= 0 ? null : `count ${state.count}`) },
});

const decide = (payload: unknown) => {
  const parsed = counter.parseCommand('Add', payload);
  if (!parsed.ok) return parsed;
  return counter.decide(initialState(counter), parsed.command, 'c-1', 'm-1', NO_FACTS);
};

describe('defineKind', () => {
  it('parses with the schemas, decides, evolves, and checks invariants', () => {
    expect(decide({ by: 'x' })).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    expect(counter.parseCommand('Sub', {})).toMatchObject({ ok: false, code: 'UNKNOWN_COMMAND' });
    expect(decide({ by: 0 })).toEqual({ outcome: 'accept', event: null });
    expect(decide({ by: -1 })).toEqual({ outcome: 'reject', reason: 'NEGATIVE', message: 'only up' });
    expect(decide({ by: 2 })).toEqual({ outcome: 'accept', event: { type: 'Added', by: 2 } });
    const state = applyEvent(counter, applyEvent(counter, initialState(counter), { type: 'Added', by: 2 }), { type: 'Added', by: 3 });
    expect(counter.view(state)).toEqual({ count: 5 });
    expect(counter.invariantFailures(state)).toEqual([]);
    expect(counter.queries.has('Get')).toBe(true);
  });

  it('refuses an incomplete declaration, and an event its schema does not allow before it is journaled', () => {
    const add = { Add: () => null };
    expect(() => defineKind(shape).behaviour({ evolve: { Added: (s) => s }, decide: {} })).toThrow(/command Add is neither a query nor decided/);
    expect(() => defineKind(shape).behaviour({ evolve: {} as never, decide: add })).toThrow(/event Added has no evolve handler/);
    expect(() => defineKind({ ...shape, name: 'Bad Name' }).behaviour({ evolve: { Added: (s) => s }, decide: add })).toThrow(/kind name/);
    const sloppy = defineKind(shape).behaviour({ evolve: { Added: (s) => s }, decide: { Add: () => ({ emit: { type: 'Added', by: -4 } }) } });
    const parsed = sloppy.parseCommand('Add', { by: 1 });
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(() => sloppy.decide(initialState(sloppy), parsed.command, 'c', 'm', NO_FACTS)).toThrow(/does not match its schema/);
  });

  it('upcasts old events step by step, and refuses an event newer than it knows', () => {
    const v3 = defineKind(shape).behaviour({
      evolve: { Added: (state, event) => ({ count: state.count + event.by }) },
      decide: { Add: () => null },
      evolution: { Added: { version: 3, upcast: { 1: (d) => ({ amount: d.n }), 2: (d) => ({ by: d.amount }) } } },
    });
    expect(currentEvent(v3, withVersion({ type: 'Added', n: 4 }, null))).toEqual({ type: 'Added', by: 4 });
    expect(currentEvent(v3, withVersion({ type: 'Added', amount: 4 }, 2))).toEqual({ type: 'Added', by: 4 });
    expect(() => currentEvent(v3, withVersion({ type: 'Added', by: 4 }, 4))).toThrow(/version 4, newer than this build's 3/);
    expect(() => defineKind(shape).behaviour({ evolve: { Added: (s) => s }, decide: { Add: () => null }, evolution: { Added: { version: 2, upcast: {} } } })).toThrow(/no upcaster from version 1/);
  });
});
