// The work order actor as a pure function: commands (and the saga answers the runtime feeds
// back as the internal @Answer command) are parsed and decided, events applied, with no
// services. The sagas run over NATS in test/integration/workorder-saga.test.ts.
import { readFileSync } from 'node:fs';
import type { AnyMachineSnapshot } from 'xstate';
import { describe, expect, it } from 'vitest';
import { decideOf, parseCommandOf } from '../../actors/saga-answers.js';
import { ANSWER_COMMAND, NO_FACTS, type DomainEvent, type OutboundCommand } from '../../actors/kind.js';
import { applyEvent, EventRefusedError, initialState, persistState, replay, restoreState } from '../../actors/state.js';
import { workorder, type WorkOrderContext } from '../../actors/workorder.js';

const WO = 'wo-1';
const BOM = [
  { sku: 'steel', qty: 4 },
  { sku: 'bolt', qty: 20 },
  { sku: 'paint', qty: 1 },
];
const STAGES = ['cut', 'weld', 'paint'];

type Outcome =
  | { kind: 'event'; event: DomainEvent; state: AnyMachineSnapshot }
  | { kind: 'noop'; state: AnyMachineSnapshot }
  | { kind: 'rejected'; reason: string; message: string; state: AnyMachineSnapshot }
  | { kind: 'invalid'; code: 'BAD_REQUEST' | 'UNKNOWN_COMMAND'; message: string; state: AnyMachineSnapshot };

/** What the actor host does with one command, minus the journal: parse, decide, apply. */
function step(state: AnyMachineSnapshot, type: string, payload?: unknown, messageId = `m-${type}`, internal = false): Outcome {
  const parsed = parseCommandOf(workorder, type, payload, internal);
  if (!parsed.ok) return { kind: 'invalid', code: parsed.code, message: parsed.message, state };
  const decision = decideOf(workorder, state, parsed.command, WO, messageId, NO_FACTS);
  if (decision.outcome === 'reject') return { kind: 'rejected', reason: decision.reason, message: decision.message, state };
  if (decision.event === null) return { kind: 'noop', state };
  return { kind: 'event', event: decision.event, state: applyEvent(workorder, state, decision.event) };
}

/** Another actor's answer to `effect`, fed back in as the saga runner does (internal, deterministic id). */
function answer(state: AnyMachineSnapshot, effect: OutboundCommand, ok: boolean, reason?: string): Outcome {
  const payload = reason === undefined ? { tag: effect.tag, ok } : { tag: effect.tag, ok, reason };
  return step(state, ANSWER_COMMAND, payload, `${effect.messageId}:answer`, true);
}

/** The step must have appended an event; returns the state after it. */
function applied(outcome: Outcome): AnyMachineSnapshot {
  if (outcome.kind !== 'event') throw new Error(`expected an event, got ${JSON.stringify({ ...outcome, state: undefined })}`);
  return outcome.state;
}

const ctx = (state: AnyMachineSnapshot): WorkOrderContext => state.context as WorkOrderContext;
const view = (state: AnyMachineSnapshot): Record<string, unknown> => workorder.view(state);
const status = (state: AnyMachineSnapshot): unknown => view(state).status;
const effects = (state: AnyMachineSnapshot): OutboundCommand[] => workorder.pendingEffects!(state, WO);
const lineStatuses = (state: AnyMachineSnapshot): string[] => ctx(state).lines.map((l) => l.status);
const settlementOf = (before: AnyMachineSnapshot, after: AnyMachineSnapshot) => workorder.settlement!(before, after);

/** Answers every pending effect with `ok`, in order, until the saga owes nothing. */
function answerAll(state: AnyMachineSnapshot): { state: AnyMachineSnapshot; events: DomainEvent[] } {
  const events: DomainEvent[] = [];
  for (let round = 0; effects(state).length > 0; round += 1) {
    if (round > 10) throw new Error('the saga keeps owing effects');
    for (const effect of effects(state)) {
      const outcome = answer(state, effect, true);
      if (outcome.kind === 'event') events.push(outcome.event);
      state = outcome.state;
    }
  }
  return { state, events };
}

// One builder per state, each reached only through commands and answers.
const none = (): AnyMachineSnapshot => initialState(workorder);
const draft = (bom = BOM, stages = STAGES): AnyMachineSnapshot => applied(step(none(), 'Create', { bom, stages }));
const releasing = (from = draft()): AnyMachineSnapshot => applied(step(from, 'Release', {}, 'rel-1'));
const released = (from = draft()): AnyMachineSnapshot => answerAll(releasing(from)).state;
const inProgress = (from = draft()): AnyMachineSnapshot => applied(step(released(from), 'Start', {}));
const atStage = (to: string, from = draft()): AnyMachineSnapshot => {
  let state = inProgress(from);
  for (const name of ctx(state).stages.slice(1, ctx(state).stages.indexOf(to) + 1)) state = applied(step(state, 'AdvanceStage', { to: name }));
  return state;
};
const completing = (from = draft()): AnyMachineSnapshot => applied(step(atStage(ctx(from).stages.at(-1)!, from), 'Complete', {}, 'complete-1'));
const completed = (from = draft()): AnyMachineSnapshot => answerAll(completing(from)).state;
const cancelling = (from = released()): AnyMachineSnapshot => applied(step(from, 'Cancel', {}, 'cancel-1'));
const cancelled = (from = released()): AnyMachineSnapshot => answerAll(cancelling(from)).state;

/** Releases `from` with line `short` answered INSUFFICIENT_STOCK and every other line held. */
/** Releases `from` with line `short` answered INSUFFICIENT_STOCK and every other line held: the state mid-compensation. */
function compensating(short: number, from = draft()): AnyMachineSnapshot {
  let state = releasing(from);
  for (const effect of effects(state)) state = applied(answer(state, effect, effect.tag.line !== short, 'INSUFFICIENT_STOCK'));
  return state;
}

describe('workorder Create', () => {
  it('starts as nothing: no work order, no saga, no effects', () => {
    const state = none();
    expect(status(state)).toBe('none');
    expect(workorder.openSaga!(state)).toBeNull();
    expect(effects(state)).toEqual([]);
  });

  it('Create makes a draft whose lines carry the reservation ids <workorder id>:<line index>', () => {
    const outcome = step(none(), 'Create', { bom: BOM, stages: STAGES });
    expect(outcome.kind === 'event' && outcome.event).toEqual({ type: 'Created', workOrderId: WO, bom: BOM, stages: STAGES });
    expect(view(outcome.state)).toEqual({
      status: 'draft',
      stage: null,
      stages: STAGES,
      bom: BOM,
      lines: [
        { sku: 'steel', qty: 4, reservationId: 'wo-1:0', status: 'pending' },
        { sku: 'bolt', qty: 20, reservationId: 'wo-1:1', status: 'pending' },
        { sku: 'paint', qty: 1, reservationId: 'wo-1:2', status: 'pending' },
      ],
      attempt: 0,
      saga: null,
    });
    expect(effects(outcome.state)).toEqual([]);
    expect(workorder.openSaga!(outcome.state)).toBeNull();
    expect(workorder.invariantFailures(outcome.state)).toEqual([]);
  });

  it('a BOM may name the same SKU twice: each line is its own reservation', () => {
    const state = draft([
      { sku: 'steel', qty: 1 },
      { sku: 'steel', qty: 2 },
    ]);
    expect(ctx(state).lines.map((l) => [l.sku, l.qty, l.reservationId])).toEqual([
      ['steel', 1, 'wo-1:0'],
      ['steel', 2, 'wo-1:1'],
    ]);
  });

  it('a work order id too long for its reservation ids is REJECTED/ID_TOO_LONG; 124 characters is the longest', () => {
    const create = (id: string) => {
      const parsed = workorder.parseCommand('Create', { bom: [{ sku: 'steel', qty: 1 }], stages: ['x'] });
      if (!parsed.ok) throw new Error(parsed.message);
      return workorder.decide(none(), parsed.command, id, 'create-long', NO_FACTS);
    };
    expect(create('w'.repeat(125))).toMatchObject({ outcome: 'reject', reason: 'ID_TOO_LONG' });
    const longest = create('w'.repeat(124));
    expect(longest.outcome).toBe('accept');
    // Its last possible reservation id (line 199) still fits the contract's 128 characters.
    expect(`${'w'.repeat(124)}:199`).toHaveLength(128);
  });

  it('Create on an existing work order is REJECTED/ALREADY_EXISTS and keeps the first BOM', () => {
    const state = draft();
    const again = step(state, 'Create', { bom: [{ sku: 'other', qty: 1 }], stages: ['x'] });
    expect(again).toMatchObject({ kind: 'rejected', reason: 'ALREADY_EXISTS', message: 'work order wo-1 already exists (draft)' });
    expect(ctx(state).bom).toEqual(BOM);
  });

  it.each(['Release', 'Start', 'Complete', 'Cancel'])('%s before Create is REJECTED/NOT_FOUND', (type) => {
    expect(step(none(), type, {})).toMatchObject({ kind: 'rejected', reason: 'NOT_FOUND', message: 'work order wo-1 does not exist; Create it first' });
  });

  it('AdvanceStage and a saga answer before Create are REJECTED/NOT_FOUND too', () => {
    expect(step(none(), 'AdvanceStage', { to: 'cut' })).toMatchObject({ kind: 'rejected', reason: 'NOT_FOUND' });
    const tag = { step: 'reserve', line: 0, attempt: 1 };
    expect(step(none(), ANSWER_COMMAND, { tag, ok: true }, 'a-1', true)).toMatchObject({ kind: 'rejected', reason: 'NOT_FOUND' });
  });
});

describe('workorder payload validation', () => {
  const line = { sku: 'steel', qty: 1 };
  // [command, what is wrong, payload, the field the message must name]
  const bad: [string, string, unknown, string][] = [
    ['Create', 'no payload at all', undefined, 'bom'],
    ['Create', 'missing bom', { stages: STAGES }, 'bom'],
    ['Create', 'missing stages', { bom: BOM }, 'stages'],
    ['Create', 'an empty bom', { bom: [], stages: STAGES }, 'bom: needs at least one line'],
    ['Create', 'a bom that is not an array', { bom: { sku: 'steel', qty: 1 }, stages: STAGES }, 'bom'],
    ['Create', 'more than 200 bom lines', { bom: Array.from({ length: 201 }, () => line), stages: STAGES }, 'bom'],
    ['Create', 'a line without sku', { bom: [{ qty: 1 }], stages: STAGES }, 'bom.0.sku'],
    ['Create', 'a sku with a dot', { bom: [line, { sku: 'st.eel', qty: 1 }], stages: STAGES }, 'bom.1.sku'],
    ['Create', 'an empty sku', { bom: [{ sku: '', qty: 1 }], stages: STAGES }, 'bom.0.sku'],
    ['Create', 'a sku of 129 characters', { bom: [{ sku: 's'.repeat(129), qty: 1 }], stages: STAGES }, 'bom.0.sku'],
    ['Create', 'a line without qty', { bom: [{ sku: 'steel' }], stages: STAGES }, 'bom.0.qty'],
    ['Create', 'a zero qty', { bom: [{ sku: 'steel', qty: 0 }], stages: STAGES }, 'bom.0.qty: must be positive'],
    ['Create', 'a negative qty', { bom: [line, line, { sku: 'steel', qty: -2 }], stages: STAGES }, 'bom.2.qty'],
    ['Create', 'a fractional qty', { bom: [{ sku: 'steel', qty: 1.5 }], stages: STAGES }, 'bom.0.qty: must be a whole number'],
    ['Create', 'qty as a string', { bom: [{ sku: 'steel', qty: '4' }], stages: STAGES }, 'bom.0.qty'],
    ['Create', 'an extra field on a line', { bom: [{ sku: 'steel', qty: 1, location: 'A1' }], stages: STAGES }, 'bom.0'],
    ['Create', 'an empty stage list', { bom: BOM, stages: [] }, 'stages: needs at least one stage'],
    ['Create', 'stages that are not an array', { bom: BOM, stages: 'cut' }, 'stages'],
    ['Create', 'an empty stage name', { bom: BOM, stages: ['cut', ''] }, 'stages.1'],
    ['Create', 'a stage name of 65 characters', { bom: BOM, stages: ['x'.repeat(65)] }, 'stages.0'],
    ['Create', 'a stage name that is a number', { bom: BOM, stages: [1] }, 'stages.0'],
    ['Create', 'a repeated stage name', { bom: BOM, stages: ['cut', 'weld', 'cut'] }, 'stages: stage names must be unique'],
    ['Create', 'more than 100 stages', { bom: BOM, stages: Array.from({ length: 101 }, (_, i) => `s${i}`) }, 'stages'],
    ['Create', 'an extra top-level field', { bom: BOM, stages: STAGES, priority: 'high' }, 'priority'],
    ['AdvanceStage', 'missing to', {}, 'to'],
    ['AdvanceStage', 'an empty to', { to: '' }, 'to'],
    ['AdvanceStage', 'to as a number', { to: 1 }, 'to'],
    ['AdvanceStage', 'to as an array', { to: ['weld'] }, 'to'],
    ['Release', 'a payload field', { force: true }, 'force'],
    ['Start', 'a payload field', { stage: 'cut' }, 'stage'],
    ['Complete', 'a payload field', { qty: 1 }, 'qty'],
    ['Cancel', 'a payload field', { reason: 'no' }, 'reason'],
  ];

  it.each(bad)('%s with %s is BAD_REQUEST naming %j', (type, _what, payload, field) => {
    const parsed = workorder.parseCommand(type, payload);
    expect(parsed).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    const message = parsed.ok ? '' : parsed.message;
    expect(message).toMatch(new RegExp(`^${type} `));
    expect(message).toContain(field);
  });

  it('accepts the boundaries: 200 lines, 100 stages, a 64-character stage, a 128-character sku', () => {
    const boundary = {
      bom: [...Array.from({ length: 199 }, (_, i) => ({ sku: `sku-${i}`, qty: 1 })), { sku: 'S'.repeat(128), qty: 1 }],
      stages: [...Array.from({ length: 99 }, (_, i) => `s${i}`), 'x'.repeat(64)],
    };
    const parsed = workorder.parseCommand('Create', boundary);
    expect(parsed).toEqual({ ok: true, command: { type: 'Create', payload: boundary } });
    expect(workorder.parseCommand('Release', undefined)).toEqual({ ok: true, command: { type: 'Release', payload: {} } });
  });

  it.each(['Explode', 'create', '', 'Created', 'Reserve', '__proto__', 'constructor', 'toString'])(
    'an unknown command type %j is UNKNOWN_COMMAND',
    (type) => {
      expect(workorder.parseCommand(type, {})).toMatchObject({ ok: false, code: 'UNKNOWN_COMMAND' });
    },
  );

  it('a client cannot send the internal @Answer command: it is UNKNOWN_COMMAND unless the runtime sends it', () => {
    const payload = { tag: { step: 'reserve', line: 0, attempt: 1 }, ok: true };
    expect(parseCommandOf(workorder, ANSWER_COMMAND, payload)).toMatchObject({ ok: false, code: 'UNKNOWN_COMMAND' });
    expect(parseCommandOf(workorder, ANSWER_COMMAND, payload, true)).toEqual({ ok: true, command: { type: ANSWER_COMMAND, payload } });
    expect(workorder.commands.has(ANSWER_COMMAND)).toBe(false);
  });

  it.each<[string, unknown, string]>([
    ['an unknown step', { tag: { step: 'explode', line: 0, attempt: 1 }, ok: true }, 'tag.step'],
    ['a negative line', { tag: { step: 'reserve', line: -1, attempt: 1 }, ok: true }, 'tag.line'],
    ['attempt 0', { tag: { step: 'reserve', line: 0, attempt: 0 }, ok: true }, 'tag.attempt'],
    ['an extra tag field', { tag: { step: 'reserve', line: 0, attempt: 1, sku: 'steel' }, ok: true }, 'tag'],
    ['missing ok', { tag: { step: 'reserve', line: 0, attempt: 1 } }, 'ok'],
    ['a reason of 65 characters', { tag: { step: 'reserve', line: 0, attempt: 1 }, ok: false, reason: 'R'.repeat(65) }, 'reason'],
  ])('an internal answer with %s is BAD_REQUEST', (_what, payload, field) => {
    const parsed = parseCommandOf(workorder, ANSWER_COMMAND, payload, true);
    expect(parsed).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    expect(parsed.ok ? '' : parsed.message).toContain(field);
  });

  it('Get is a query: it parses, the runtime answers it from state, and deciding it anyway is REJECTED/UNSUPPORTED', () => {
    expect(workorder.queries.has('Get')).toBe(true);
    expect(workorder.parseCommand('Get', undefined)).toEqual({ ok: true, command: { type: 'Get', payload: {} } });
    expect(workorder.parseCommand('Get', { id: 'x' })).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    expect(step(draft(), 'Get', {})).toMatchObject({ kind: 'rejected', reason: 'UNSUPPORTED', message: 'workorder cannot decide Get' });
  });
});

describe('workorder Release saga', () => {
  it('Release opens the saga: every line reserving, attempt 1, the reply deferred until it settles', () => {
    const before = draft();
    const outcome = step(before, 'Release', {}, 'rel-1');
    expect(outcome.kind === 'event' && outcome.event).toEqual({ type: 'ReleaseStarted', requestId: 'rel-1' });
    const state = outcome.state;
    expect(status(state)).toBe('releasing');
    expect(ctx(state).attempt).toBe(1);
    expect(ctx(state).saga).toEqual({ kind: 'release', requestId: 'rel-1' });
    expect(lineStatuses(state)).toEqual(['reserving', 'reserving', 'reserving']);
    expect(workorder.openSaga!(state)).toBe('rel-1');
    expect(settlementOf(before, state)).toBeNull();
  });

  it('owes one Reserve per BOM line, at the line SKU, with reservation id <workorder id>:<line index>', () => {
    expect(effects(releasing())).toEqual([
      {
        kind: 'inventory',
        id: 'steel',
        messageId: 'ppos:wo:wo-1:release1:reserve:0',
        type: 'Reserve',
        payload: { reservationId: 'wo-1:0', qty: 4, workOrderId: WO },
        tag: { step: 'reserve', line: 0, attempt: 1 },
      },
      {
        kind: 'inventory',
        id: 'bolt',
        messageId: 'ppos:wo:wo-1:release1:reserve:1',
        type: 'Reserve',
        payload: { reservationId: 'wo-1:1', qty: 20, workOrderId: WO },
        tag: { step: 'reserve', line: 1, attempt: 1 },
      },
      {
        kind: 'inventory',
        id: 'paint',
        messageId: 'ppos:wo:wo-1:release1:reserve:2',
        type: 'Reserve',
        payload: { reservationId: 'wo-1:2', qty: 1, workOrderId: WO },
        tag: { step: 'reserve', line: 2, attempt: 1 },
      },
    ]);
  });

  it('derives the same effects, message ids included, every time and from a restored snapshot', () => {
    const state = releasing();
    const restored = restoreState(workorder, JSON.parse(JSON.stringify(persistState(workorder, state))));
    expect(effects(state)).toEqual(effects(state));
    expect(effects(restored)).toEqual(effects(state));
    expect(effects(state).map((e) => e.messageId)).toEqual(['ppos:wo:wo-1:release1:reserve:0', 'ppos:wo:wo-1:release1:reserve:1', 'ppos:wo:wo-1:release1:reserve:2']);
  });

  it('every line held → released, and the settlement is the ok reply to the Release', () => {
    let state = releasing();
    const [first, second, third] = effects(state);
    const one = answer(state, first!, true);
    expect(one.kind === 'event' && one.event).toEqual({ type: 'LineReserved', line: 0 });
    state = one.state;
    expect(status(state)).toBe('releasing');
    expect(effects(state).map((e) => e.tag.line)).toEqual([1, 2]);
    state = applied(answer(state, second!, true));
    const before = state;
    state = applied(answer(state, third!, true));
    expect(status(state)).toBe('released');
    expect(lineStatuses(state)).toEqual(['held', 'held', 'held']);
    expect(ctx(state).saga).toBeNull();
    expect(ctx(state).lastOutcome).toEqual({ ok: true });
    expect(settlementOf(before, state)).toEqual({ messageId: 'rel-1', outcome: { ok: true } });
    expect(workorder.openSaga!(state)).toBeNull();
    expect(effects(state)).toEqual([]);
    expect(workorder.invariantFailures(state)).toEqual([]);
  });

  it('answers may come in any order', () => {
    let state = releasing();
    for (const effect of [...effects(state)].reverse()) state = applied(answer(state, effect, true));
    expect(status(state)).toBe('released');
    expect(lineStatuses(state)).toEqual(['held', 'held', 'held']);
  });

  it('an answer that is no longer awaited changes nothing: re-delivered, other step, unknown line, other attempt', () => {
    const start = releasing();
    const [first] = effects(start);
    const state = applied(answer(start, first!, true));
    expect(answer(state, first!, true)).toMatchObject({ kind: 'noop', state }); // re-delivered
    expect(answer(state, first!, false, 'INSUFFICIENT_STOCK')).toMatchObject({ kind: 'noop', state }); // a late contradiction
    const tag = (step: string, line: number, attempt: number) => ({ tag: { step, line, attempt }, ok: true });
    for (const payload of [tag('consume', 1, 1), tag('release', 1, 1), tag('reserve', 99, 1), tag('reserve', 1, 2)]) {
      expect(step(state, ANSWER_COMMAND, payload, 'a', true)).toMatchObject({ kind: 'noop', state });
    }
  });

  it('one line short → releases the held lines, back to draft, REJECTED/SHORTAGE naming the short SKU', () => {
    let state = releasing();
    const [steel, bolt, paint] = effects(state);
    state = applied(answer(state, steel!, true));
    const short = answer(state, bolt!, false, 'INSUFFICIENT_STOCK');
    expect(short.kind === 'event' && short.event).toEqual({ type: 'LineShort', line: 1, reason: 'INSUFFICIENT_STOCK' });
    state = short.state;
    // Compensation waits for every reserve to answer: the paint reserve is still out.
    expect(status(state)).toBe('releasing');
    expect(lineStatuses(state)).toEqual(['held', 'short', 'reserving']);
    expect(effects(state).map((e) => e.messageId)).toEqual(['ppos:wo:wo-1:release1:reserve:2']);

    state = applied(answer(state, paint!, true));
    expect(status(state)).toBe('releasing');
    expect(lineStatuses(state)).toEqual(['releasing', 'short', 'releasing']);
    expect(ctx(state).lines[1]).toEqual({ sku: 'bolt', qty: 20, reservationId: 'wo-1:1', status: 'short', reason: 'INSUFFICIENT_STOCK' });
    expect(workorder.openSaga!(state)).toBe('rel-1');
    expect(effects(state)).toEqual([
      {
        kind: 'inventory',
        id: 'steel',
        messageId: 'ppos:wo:wo-1:release1:release:0',
        type: 'Release',
        payload: { reservationId: 'wo-1:0' },
        tag: { step: 'release', line: 0, attempt: 1 },
      },
      {
        kind: 'inventory',
        id: 'paint',
        messageId: 'ppos:wo:wo-1:release1:release:2',
        type: 'Release',
        payload: { reservationId: 'wo-1:2' },
        tag: { step: 'release', line: 2, attempt: 1 },
      },
    ]);

    const [releaseSteel, releasePaint] = effects(state);
    const one = answer(state, releaseSteel!, true);
    expect(one.kind === 'event' && one.event).toEqual({ type: 'LineReleased', line: 0 });
    state = one.state;
    expect(status(state)).toBe('releasing');
    expect(settlementOf(short.state, state)).toBeNull();
    const before = state;
    state = applied(answer(state, releasePaint!, true));
    expect(status(state)).toBe('draft');
    expect(lineStatuses(state)).toEqual(['released', 'short', 'released']);
    expect(settlementOf(before, state)).toEqual({
      messageId: 'rel-1',
      outcome: { ok: false, reason: 'SHORTAGE', message: 'not enough stock for bolt', details: { shortSkus: ['bolt'] } },
    });
    expect(ctx(state).saga).toBeNull();
    expect(workorder.openSaga!(state)).toBeNull();
    expect(effects(state)).toEqual([]);
    expect(workorder.invariantFailures(state)).toEqual([]);
  });

  it('every line short → straight back to draft with nothing to release, each short SKU named once', () => {
    const from = draft([
      { sku: 'steel', qty: 1 },
      { sku: 'bolt', qty: 1 },
      { sku: 'steel', qty: 2 },
    ]);
    let state = releasing(from);
    let before = state;
    for (const effect of effects(state)) {
      before = state;
      state = applied(answer(state, effect, false, 'INSUFFICIENT_STOCK'));
    }
    expect(status(state)).toBe('draft');
    expect(lineStatuses(state)).toEqual(['short', 'short', 'short']);
    expect(settlementOf(before, state)).toEqual({
      messageId: 'rel-1',
      outcome: { ok: false, reason: 'SHORTAGE', message: 'not enough stock for steel, bolt', details: { shortSkus: ['steel', 'bolt'] } },
    });
  });

  it('a refused reserve without a reason is recorded as REJECTED', () => {
    const state = releasing();
    const outcome = answer(state, effects(state)[0]!, false);
    expect(outcome.kind === 'event' && outcome.event).toEqual({ type: 'LineShort', line: 0, reason: 'REJECTED' });
  });

  it('a refused compensating release still counts as released (the inventory never refuses a Release it can parse)', () => {
    let state = compensating(1);
    const [releaseSteel, releasePaint] = effects(state);
    const refused = answer(state, releaseSteel!, false, 'BAD_REQUEST');
    expect(refused.kind === 'event' && refused.event).toEqual({ type: 'LineReleased', line: 0 });
    state = applied(answer(refused.state, releasePaint!, true));
    expect(status(state)).toBe('draft');
  });

  it('a second attempt after a shortage re-reserves every line under new message ids but the same reservation ids', () => {
    let state = compensating(1);
    const firstAttemptIds = new Set<string>(effects(releasing()).map((e) => e.messageId));
    for (const effect of effects(state)) firstAttemptIds.add(effect.messageId);
    state = answerAll(state).state;
    expect(status(state)).toBe('draft');

    const second = step(state, 'Release', {}, 'rel-2');
    expect(second.kind === 'event' && second.event).toEqual({ type: 'ReleaseStarted', requestId: 'rel-2' });
    state = second.state;
    expect(ctx(state).attempt).toBe(2);
    expect(lineStatuses(state)).toEqual(['reserving', 'reserving', 'reserving']);
    expect(workorder.openSaga!(state)).toBe('rel-2');
    const retry = effects(state);
    expect(retry.map((e) => e.messageId)).toEqual(['ppos:wo:wo-1:release2:reserve:0', 'ppos:wo:wo-1:release2:reserve:1', 'ppos:wo:wo-1:release2:reserve:2']);
    expect(retry.filter((e) => firstAttemptIds.has(e.messageId))).toEqual([]);
    expect(retry.map((e) => e.payload.reservationId)).toEqual(['wo-1:0', 'wo-1:1', 'wo-1:2']);
    expect(retry.map((e) => e.tag.attempt)).toEqual([2, 2, 2]);

    // A straggling answer from the first attempt is not taken for this one.
    const stale = { tag: { step: 'reserve', line: 1, attempt: 1 }, ok: false, reason: 'INSUFFICIENT_STOCK' };
    expect(step(state, ANSWER_COMMAND, stale, 'ppos:wo:wo-1:release1:reserve:1:answer', true)).toMatchObject({ kind: 'noop', state });

    state = applied(answer(state, retry[0]!, true));
    state = applied(answer(state, retry[1]!, true));
    const before = state;
    state = applied(answer(state, retry[2]!, true));
    expect(status(state)).toBe('released');
    expect(settlementOf(before, state)).toEqual({ messageId: 'rel-2', outcome: { ok: true } });
  });
});

describe('workorder commands while a saga is open', () => {
  // What the machine does; the runtime answers a retry of the saga's own message id from
  // openSaga() before deciding, so these are other clients' commands.
  it('a second Release during releasing is REJECTED/SAGA_IN_PROGRESS; the first keeps the saga', () => {
    const state = releasing();
    const second = step(state, 'Release', {}, 'rel-2');
    expect(second).toMatchObject({ kind: 'rejected', reason: 'SAGA_IN_PROGRESS', message: 'work order wo-1 is releasing; retry when it settles' });
    expect(workorder.openSaga!(state)).toBe('rel-1');
  });

  it('a second Release during compensation is REJECTED/SAGA_IN_PROGRESS too', () => {
    const state = compensating(0);
    expect(lineStatuses(state)).toEqual(['short', 'releasing', 'releasing']);
    expect(step(state, 'Release', {}, 'rel-2')).toMatchObject({ kind: 'rejected', reason: 'SAGA_IN_PROGRESS' });
  });

  it('Cancel during releasing is REJECTED/SAGA_IN_PROGRESS: it may be retried once the release settles', () => {
    expect(step(releasing(), 'Cancel', {}, 'cancel-1')).toMatchObject({ kind: 'rejected', reason: 'SAGA_IN_PROGRESS' });
  });

  it.each<[string, Record<string, unknown>]>([
    ['Start', {}],
    ['AdvanceStage', { to: 'weld' }],
    ['AdvanceStage', { to: 'cut' }],
    ['Complete', {}],
  ])('%s %j during releasing is REJECTED/INVALID_STATE', (type, payload) => {
    const state = releasing();
    const outcome = step(state, type, payload);
    expect(outcome).toMatchObject({ kind: 'rejected', reason: 'INVALID_STATE' });
    expect(outcome.kind === 'rejected' && outcome.message).toContain('this one is releasing');
  });

  it('during completing: Complete and Cancel are SAGA_IN_PROGRESS, AdvanceStage elsewhere and Release INVALID_STATE, AdvanceStage to the last stage a no-op', () => {
    const state = completing();
    expect(step(state, 'Complete', {}, 'complete-2')).toMatchObject({ kind: 'rejected', reason: 'SAGA_IN_PROGRESS', message: 'work order wo-1 is completing; retry when it settles' });
    expect(step(state, 'Cancel', {})).toMatchObject({ kind: 'rejected', reason: 'SAGA_IN_PROGRESS' });
    expect(step(state, 'AdvanceStage', { to: 'weld' })).toMatchObject({ kind: 'rejected', reason: 'INVALID_STATE' });
    expect(step(state, 'AdvanceStage', { to: 'paint' }, 'adv-late')).toEqual({ kind: 'noop', state });
    expect(step(state, 'Release', {})).toMatchObject({ kind: 'rejected', reason: 'INVALID_STATE' });
  });

  it('during cancelling: Cancel is SAGA_IN_PROGRESS, the rest INVALID_STATE', () => {
    const state = cancelling();
    expect(step(state, 'Cancel', {}, 'cancel-2')).toMatchObject({ kind: 'rejected', reason: 'SAGA_IN_PROGRESS', message: 'work order wo-1 is cancelling; retry when it settles' });
    for (const type of ['Release', 'Start', 'Complete']) expect(step(state, type, {})).toMatchObject({ kind: 'rejected', reason: 'INVALID_STATE' });
  });
});

describe('workorder stages', () => {
  it('Start moves a released work order in progress at the first stage', () => {
    const outcome = step(released(), 'Start', {});
    expect(outcome.kind === 'event' && outcome.event).toEqual({ type: 'Started' });
    expect(status(outcome.state)).toBe('in_progress');
    expect(ctx(outcome.state).stage).toBe(0);
    expect(view(outcome.state).stage).toBe('cut');
    expect(workorder.invariantFailures(outcome.state)).toEqual([]);
  });

  it('AdvanceStage walks the stages in order', () => {
    let state = inProgress();
    for (const [index, to] of [[1, 'weld'], [2, 'paint']] as const) {
      const outcome = step(state, 'AdvanceStage', { to });
      expect(outcome.kind === 'event' && outcome.event).toEqual({ type: 'StageAdvanced', to });
      state = outcome.state;
      expect(ctx(state).stage).toBe(index);
      expect(view(state).stage).toBe(to);
      expect(workorder.invariantFailures(state)).toEqual([]);
    }
  });

  it.each(['cut', 'weld', 'paint'])('AdvanceStage to the current stage (%s) is an accepted no-op, however often repeated', (at) => {
    const state = atStage(at);
    for (let i = 0; i < 3; i += 1) expect(step(state, 'AdvanceStage', { to: at }, `adv-${i}`)).toEqual({ kind: 'noop', state });
    expect(ctx(state).stage).toBe(STAGES.indexOf(at));
  });

  it('skipping a stage is REJECTED/STAGE_SKIPPED and names the next one', () => {
    const state = inProgress();
    const outcome = step(state, 'AdvanceStage', { to: 'paint' });
    expect(outcome).toMatchObject({ kind: 'rejected', reason: 'STAGE_SKIPPED', message: 'cannot skip from cut to paint; next is weld' });
  });

  it('going back is REJECTED/STAGE_BEHIND', () => {
    expect(step(atStage('paint'), 'AdvanceStage', { to: 'cut' })).toMatchObject({ kind: 'rejected', reason: 'STAGE_BEHIND', message: 'already past cut (at paint)' });
    expect(step(atStage('weld'), 'AdvanceStage', { to: 'cut' })).toMatchObject({ kind: 'rejected', reason: 'STAGE_BEHIND' });
  });

  it.each(['polish', 'Cut', 'cut '])('an unknown stage %j is REJECTED/UNKNOWN_STAGE', (to) => {
    expect(step(inProgress(), 'AdvanceStage', { to })).toMatchObject({
      kind: 'rejected',
      reason: 'UNKNOWN_STAGE',
      message: `no stage ${JSON.stringify(to)}; stages: cut, weld, paint`,
    });
  });

  it('Start twice is REJECTED/INVALID_STATE', () => {
    expect(step(inProgress(), 'Start', {})).toMatchObject({ kind: 'rejected', reason: 'INVALID_STATE', message: 'Start needs a released work order; this one is in_progress' });
  });

  it('the machine itself refuses a StageAdvanced that is not to the next stage', () => {
    const state = inProgress();
    for (const to of ['cut', 'paint', 'polish']) expect(() => applyEvent(workorder, state, { type: 'StageAdvanced', to })).toThrow(EventRefusedError);
  });
});

describe('workorder Complete saga', () => {
  it('Complete before the last stage is REJECTED/NOT_AT_LAST_STAGE', () => {
    expect(step(atStage('weld'), 'Complete', {})).toMatchObject({ kind: 'rejected', reason: 'NOT_AT_LAST_STAGE', message: 'at weld; Complete from paint' });
    expect(step(inProgress(), 'Complete', {})).toMatchObject({ kind: 'rejected', reason: 'NOT_AT_LAST_STAGE' });
  });

  it('Complete from the last stage consumes every reservation, then settles ok → completed', () => {
    const before = atStage('paint');
    const outcome = step(before, 'Complete', {}, 'complete-1');
    expect(outcome.kind === 'event' && outcome.event).toEqual({ type: 'CompleteStarted', requestId: 'complete-1' });
    let state = outcome.state;
    expect(status(state)).toBe('completing');
    expect(lineStatuses(state)).toEqual(['consuming', 'consuming', 'consuming']);
    expect(workorder.openSaga!(state)).toBe('complete-1');
    expect(settlementOf(before, state)).toBeNull();
    expect(effects(state)).toEqual(
      BOM.map((line, index) => ({
        kind: 'inventory',
        id: line.sku,
        messageId: `ppos:wo:wo-1:complete1:consume:${index}`,
        type: 'Consume',
        payload: { reservationId: `wo-1:${index}` },
        tag: { step: 'consume', line: index, attempt: 1 },
      })),
    );
    expect(effects(state)).toEqual(effects(restoreState(workorder, JSON.parse(JSON.stringify(persistState(workorder, state))))));

    const [first, second, third] = effects(state);
    const one = answer(state, first!, true);
    expect(one.kind === 'event' && one.event).toEqual({ type: 'LineConsumed', line: 0 });
    state = applied(answer(one.state, second!, true));
    expect(status(state)).toBe('completing');
    expect(answer(state, first!, true)).toMatchObject({ kind: 'noop', state });
    const last = state;
    state = applied(answer(state, third!, true));
    expect(status(state)).toBe('completed');
    expect(lineStatuses(state)).toEqual(['consumed', 'consumed', 'consumed']);
    expect(view(state).stage).toBe('paint');
    expect(settlementOf(last, state)).toEqual({ messageId: 'complete-1', outcome: { ok: true } });
    expect(workorder.openSaga!(state)).toBeNull();
    expect(effects(state)).toEqual([]);
    expect(workorder.invariantFailures(state)).toEqual([]);
  });

  it('a one-stage work order completes straight after Start', () => {
    const state = inProgress(draft([{ sku: 'steel', qty: 1 }], ['assemble']));
    expect(step(state, 'Complete', {})).toMatchObject({ kind: 'event', event: { type: 'CompleteStarted' } });
  });

  it('a refused consume is recorded on its line; the work order completes, but its Complete settles as CONSUME_REFUSED', () => {
    // The inventory refuses Consume only for a reservation it does not hold (UNKNOWN_RESERVATION):
    // that stock was not deducted, so the Complete is not a plain success.
    let state = completing();
    const [first, second, third] = effects(state);
    const refused = answer(state, second!, false, 'UNKNOWN_RESERVATION');
    expect(refused.kind === 'event' && refused.event).toEqual({ type: 'LineConsumeRefused', line: 1, reason: 'UNKNOWN_RESERVATION' });
    state = applied(answer(refused.state, first!, true));
    const before = state;
    state = applied(answer(state, third!, true));
    expect(status(state)).toBe('completed');
    expect(lineStatuses(state)).toEqual(['consumed', 'consume_refused', 'consumed']);
    expect(ctx(state).lines[1]!.reason).toBe('UNKNOWN_RESERVATION');
    expect(settlementOf(before, state)).toEqual({
      messageId: 'complete-1',
      outcome: {
        ok: false,
        reason: 'CONSUME_REFUSED',
        message: expect.stringContaining('line 1'),
        details: { refusedLines: [{ line: 1, sku: ctx(state).lines[1]!.sku, reason: 'UNKNOWN_RESERVATION' }] },
      },
    });
  });

  it('a consume refused without a reason is recorded as REJECTED', () => {
    const state = completing();
    expect(answer(state, effects(state)[0]!, false)).toMatchObject({ kind: 'event', event: { type: 'LineConsumeRefused', line: 0, reason: 'REJECTED' } });
  });
});

describe('workorder Cancel saga', () => {
  it('from a fresh draft nothing is held: cancelled within the one event, so no saga was ever open', () => {
    const before = draft();
    const outcome = step(before, 'Cancel', {}, 'cancel-1');
    expect(outcome.kind === 'event' && outcome.event).toEqual({ type: 'CancelStarted', requestId: 'cancel-1' });
    const state = outcome.state;
    expect(status(state)).toBe('cancelled');
    expect(lineStatuses(state)).toEqual(['pending', 'pending', 'pending']);
    expect(ctx(state).saga).toBeNull();
    expect(ctx(state).lastOutcome).toEqual({ ok: true });
    expect(workorder.openSaga!(state)).toBeNull();
    // Nothing settles: the Cancel gets an ordinary reply (the runtime sees no saga open before or after).
    expect(settlementOf(before, state)).toBeNull();
    expect(effects(state)).toEqual([]);
    expect(workorder.invariantFailures(state)).toEqual([]);
  });

  it('from a draft left by a shortage nothing is held either: cancelled at once', () => {
    const state = answerAll(compensating(1)).state;
    expect(status(state)).toBe('draft');
    const cancelledNow = applied(step(state, 'Cancel', {}, 'cancel-1'));
    expect(status(cancelledNow)).toBe('cancelled');
    expect(effects(cancelledNow)).toEqual([]);
    expect(lineStatuses(cancelledNow)).toEqual(['released', 'short', 'released']);
  });

  it.each<[string, () => AnyMachineSnapshot, number | null]>([
    ['released', () => released(), null],
    ['in_progress', () => atStage('weld'), 1],
  ])('from %s it releases every held reservation → cancelled, with an ok settlement', (_from, build, stage) => {
    const before = build();
    const outcome = step(before, 'Cancel', {}, 'cancel-1');
    expect(outcome.kind === 'event' && outcome.event).toEqual({ type: 'CancelStarted', requestId: 'cancel-1' });
    let state = outcome.state;
    expect(status(state)).toBe('cancelling');
    expect(lineStatuses(state)).toEqual(['releasing', 'releasing', 'releasing']);
    expect(ctx(state).saga).toEqual({ kind: 'cancel', requestId: 'cancel-1' });
    expect(workorder.openSaga!(state)).toBe('cancel-1');
    expect(settlementOf(before, state)).toBeNull();
    expect(effects(state)).toEqual(
      BOM.map((line, index) => ({
        kind: 'inventory',
        id: line.sku,
        messageId: `ppos:wo:wo-1:cancel1:release:${index}`,
        type: 'Release',
        payload: { reservationId: `wo-1:${index}` },
        tag: { step: 'release', line: index, attempt: 1 },
      })),
    );
    const [first, second, third] = effects(state);
    state = applied(answer(state, first!, true));
    state = applied(answer(state, second!, true));
    expect(status(state)).toBe('cancelling');
    const last = state;
    state = applied(answer(state, third!, true));
    expect(status(state)).toBe('cancelled');
    expect(lineStatuses(state)).toEqual(['released', 'released', 'released']);
    expect(ctx(state).stage).toBe(stage);
    expect(settlementOf(last, state)).toEqual({ messageId: 'cancel-1', outcome: { ok: true } });
    expect(workorder.openSaga!(state)).toBeNull();
    expect(effects(state)).toEqual([]);
    expect(workorder.invariantFailures(state)).toEqual([]);
  });

  it('the cancel saga message ids differ from the release saga ones for the same lines', () => {
    const releaseIds = effects(compensating(1)).map((e) => e.messageId);
    const cancelIds = effects(cancelling()).map((e) => e.messageId);
    expect(releaseIds).toEqual(['ppos:wo:wo-1:release1:release:0', 'ppos:wo:wo-1:release1:release:2']);
    expect(cancelIds.filter((id) => releaseIds.includes(id))).toEqual([]);
  });
});

describe('workorder in a final state', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['Create', { bom: BOM, stages: STAGES }, 'ALREADY_EXISTS'],
    ['Release', {}, 'INVALID_STATE'],
    ['Start', {}, 'INVALID_STATE'],
    ['AdvanceStage', { to: 'cut' }, 'INVALID_STATE'],
    ['Complete', {}, 'INVALID_STATE'],
    ['Cancel', {}, 'INVALID_STATE'],
  ])('completed: %s is REJECTED/%s', (type, payload, reason) => {
    expect(step(completed(), type, payload)).toMatchObject({ kind: 'rejected', reason });
  });

  it('completed: AdvanceStage to the last stage, where it stays, is an accepted no-op', () => {
    const state = completed();
    expect(step(state, 'AdvanceStage', { to: 'paint' }, 'adv-late')).toEqual({ kind: 'noop', state });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['Create', { bom: BOM, stages: STAGES }, 'ALREADY_EXISTS'],
    ['Release', {}, 'INVALID_STATE'],
    ['Start', {}, 'INVALID_STATE'],
    ['AdvanceStage', { to: 'cut' }, 'INVALID_STATE'],
    ['Complete', {}, 'INVALID_STATE'],
  ])('cancelled: %s is REJECTED/%s', (type, payload, reason) => {
    expect(step(cancelled(), type, payload)).toMatchObject({ kind: 'rejected', reason });
  });

  it('Cancel on a cancelled work order is an accepted no-op', () => {
    const state = cancelled();
    expect(step(state, 'Cancel', {}, 'cancel-2')).toEqual({ kind: 'noop', state });
  });

  it('the messages say why', () => {
    expect(step(completed(), 'Cancel', {})).toMatchObject({ message: 'work order wo-1 is completed' });
    expect(step(completed(), 'Complete', {})).toMatchObject({ message: 'Complete needs a work order in progress; this one is completed' });
    expect(step(cancelled(), 'Release', {})).toMatchObject({ message: 'Release needs a draft work order; this one is cancelled' });
    expect(step(cancelled(), 'AdvanceStage', { to: 'cut' })).toMatchObject({ message: 'AdvanceStage needs a work order in progress; this one is cancelled' });
  });

  it('late saga answers change nothing', () => {
    for (const state of [completed(), cancelled()]) {
      for (const stepName of ['reserve', 'release', 'consume']) {
        const payload = { tag: { step: stepName, line: 0, attempt: 1 }, ok: true };
        expect(step(state, ANSWER_COMMAND, payload, 'late', true)).toMatchObject({ kind: 'noop', state });
      }
    }
  });
});

describe('workorder: every state against every client command', () => {
  const states: Record<string, () => AnyMachineSnapshot> = {
    none,
    draft: () => draft(),
    releasing: () => releasing(),
    released: () => released(),
    in_progress: () => inProgress(), // at the first stage, "cut"
    completing: () => completing(),
    cancelling: () => cancelling(),
    completed: () => completed(),
    cancelled: () => cancelled(),
  };
  const commands: [string, Record<string, unknown>][] = [
    ['Create', { bom: BOM, stages: STAGES }],
    ['Release', {}],
    ['Start', {}],
    ['AdvanceStage', { to: 'weld' }],
    ['Complete', {}],
    ['Cancel', {}],
  ];
  // Per state, in the order of `commands`: the event appended, 'noop', or the REJECTED reason.
  const expected: Record<string, string[]> = {
    none: ['Created', 'NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND'],
    draft: ['ALREADY_EXISTS', 'ReleaseStarted', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'CancelStarted'],
    releasing: ['ALREADY_EXISTS', 'SAGA_IN_PROGRESS', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'SAGA_IN_PROGRESS'],
    released: ['ALREADY_EXISTS', 'INVALID_STATE', 'Started', 'INVALID_STATE', 'INVALID_STATE', 'CancelStarted'],
    in_progress: ['ALREADY_EXISTS', 'INVALID_STATE', 'INVALID_STATE', 'StageAdvanced', 'NOT_AT_LAST_STAGE', 'CancelStarted'],
    completing: ['ALREADY_EXISTS', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'SAGA_IN_PROGRESS', 'SAGA_IN_PROGRESS'],
    cancelling: ['ALREADY_EXISTS', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'SAGA_IN_PROGRESS'],
    completed: ['ALREADY_EXISTS', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE'],
    cancelled: ['ALREADY_EXISTS', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'noop'],
  };

  it('every builder reaches the state it is named after, with its invariants holding', () => {
    for (const [name, build] of Object.entries(states)) {
      const state = build();
      expect(status(state), name).toBe(name);
      expect(workorder.invariantFailures(state), name).toEqual([]);
    }
  });

  it.each(Object.keys(states))('in %s, each client command gets what the table says', (name) => {
    const state = states[name]!();
    const persisted = JSON.stringify(persistState(workorder, state));
    const got = commands.map(([type, payload]) => {
      const outcome = step(state, type, payload);
      if (outcome.kind === 'rejected') {
        expect(outcome.message, `${name} ${type} explains itself`).toMatch(/\w+ \w+/);
        return outcome.reason;
      }
      if (outcome.kind === 'noop') return 'noop';
      if (outcome.kind === 'invalid') return outcome.code;
      expect(workorder.invariantFailures(outcome.state), `${name} ${type}`).toEqual([]);
      return outcome.event.type;
    });
    expect(got).toEqual(expected[name]);
    // Deciding is pure: six decisions later, the state they were made on is untouched.
    expect(JSON.stringify(persistState(workorder, state))).toBe(persisted);
  });

  it('these tests reach every refusal decide() has', () => {
    const source = readFileSync(new URL('../../actors/workorder.ts', import.meta.url), 'utf8');
    const inSource = new Set([...source.matchAll(/reject\('([A-Z_]+)'/g)].map((m) => m[1]!));
    const reached = new Set([
      ...Object.values(expected).flat().filter((label) => /^[A-Z_]+$/.test(label)),
      'UNKNOWN_STAGE', // 'an unknown stage ... is REJECTED/UNKNOWN_STAGE'
      'STAGE_BEHIND', // 'going back is REJECTED/STAGE_BEHIND'
      'STAGE_SKIPPED', // 'skipping a stage is REJECTED/STAGE_SKIPPED'
      'UNSUPPORTED', // 'Get is a query ...'
      'ID_TOO_LONG', // 'a work order id too long for its reservation ids is REJECTED/ID_TOO_LONG'
    ]);
    expect(inSource.size).toBeGreaterThanOrEqual(9);
    expect([...inSource].sort()).toEqual([...reached].sort());
  });
});

describe('workorder invariants and replay', () => {
  it('names the invariants it checks', () => {
    expect(workorder.invariants).toEqual(['workorder_lines_match_status', 'workorder_stage_in_range']);
  });

  it('reports a released work order whose lines are not all held', () => {
    const state = released();
    const broken = restoreState(workorder, {
      value: 'released',
      context: { ...ctx(state), lines: ctx(state).lines.map((l, i) => (i === 1 ? { ...l, status: 'short' } : l)) },
    });
    expect(workorder.invariantFailures(broken)).toEqual([{ invariant: 'workorder_lines_match_status', detail: 'released work order has lines not held' }]);
  });

  it('reports a draft or cancelled work order that still holds material', () => {
    for (const value of ['draft', 'cancelled']) {
      const broken = restoreState(workorder, { value, context: { ...ctx(released()) } });
      expect(workorder.invariantFailures(broken)).toEqual([
        { invariant: 'workorder_lines_match_status', detail: `${value} work order still holds or awaits material` },
      ]);
    }
  });

  it('reports a stage index outside the stages', () => {
    const state = inProgress();
    const broken = restoreState(workorder, { value: 'in_progress', context: { ...ctx(state), stage: 3 } });
    expect(workorder.invariantFailures(broken)).toEqual([{ invariant: 'workorder_stage_in_range', detail: 'stage index 3 outside 3 stages' }]);
  });

  it('replaying the events of a whole life (shortage, retry, stages, completion) gives the live state', () => {
    const events: DomainEvent[] = [];
    const record = (outcome: Outcome): AnyMachineSnapshot => {
      if (outcome.kind === 'event') events.push(outcome.event);
      return outcome.state;
    };
    let state = record(step(none(), 'Create', { bom: BOM, stages: STAGES }));
    state = record(step(state, 'Release', {}, 'rel-1'));
    for (const effect of effects(state)) state = record(answer(state, effect, effect.tag.line !== 2, 'INSUFFICIENT_STOCK'));
    for (const effect of effects(state)) state = record(answer(state, effect, true));
    expect(status(state)).toBe('draft');
    state = record(step(state, 'Release', {}, 'rel-2'));
    for (const effect of effects(state)) state = record(answer(state, effect, true));
    state = record(step(state, 'Start', {}));
    state = record(step(state, 'AdvanceStage', { to: 'weld' }));
    state = record(step(state, 'AdvanceStage', { to: 'weld' })); // no-op: no event
    state = record(step(state, 'AdvanceStage', { to: 'paint' }));
    state = record(step(state, 'Complete', {}, 'complete-1'));
    for (const effect of effects(state)) state = record(answer(state, effect, true));
    expect(status(state)).toBe('completed');
    expect(events.map((e) => e.type)).toEqual([
      'Created',
      'ReleaseStarted',
      'LineReserved',
      'LineReserved',
      'LineShort',
      'LineReleased',
      'LineReleased',
      'ReleaseStarted',
      'LineReserved',
      'LineReserved',
      'LineReserved',
      'Started',
      'StageAdvanced',
      'StageAdvanced',
      'CompleteStarted',
      'LineConsumed',
      'LineConsumed',
      'LineConsumed',
    ]);
    expect(persistState(workorder, replay(workorder, initialState(workorder), events))).toEqual(persistState(workorder, state));
  });

  it.each<[string, () => AnyMachineSnapshot, DomainEvent]>([
    ['a second Created', () => draft(), { type: 'Created', workOrderId: WO, bom: BOM, stages: STAGES }],
    ['Started on a draft', () => draft(), { type: 'Started' }],
    ['a reservation of a line not reserving', () => released(), { type: 'LineReserved', line: 0 }],
    ['a release of a line not releasing', () => releasing(), { type: 'LineReleased', line: 0 }],
    ['a consume of a line not consuming', () => cancelling(), { type: 'LineConsumed', line: 0 }],
    ['CompleteStarted before the last stage', () => inProgress(), { type: 'CompleteStarted', requestId: 'x' }],
    ['anything after completion', () => completed(), { type: 'CancelStarted', requestId: 'x' }],
  ])('replay refuses %s', (_what, build, event) => {
    expect(() => applyEvent(workorder, build(), event)).toThrow(EventRefusedError);
  });
});
