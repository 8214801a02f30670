// Contract section 3: a value the journal cannot store (NUL, lone surrogate, control or
// bidi-override characters in text) is BAD_REQUEST. PostgreSQL's jsonb refuses \u0000 and lone
// surrogates outright, so such text must be refused before it is decided, let alone journaled.
import { describe, expect, it } from 'vitest';
import { parseCommandOf } from '../../actors/saga-answers.js';
import { ANSWER_COMMAND } from '../../actors/kind.js';
import { workorder } from '../../actors/workorder.js';

const BOM = [{ sku: 'steel', qty: 4 }];

/** One character of each refused class, with the name the message gives it. */
const REFUSED: [string, string, string][] = [
  ['NUL', '\u0000', 'a NUL (U+0000)'],
  ['a C0 control (SOH)', '\u0001', 'a control character (U+0001)'],
  ['a tab', '\t', 'a control character (U+0009)'],
  ['a line feed', '\n', 'a control character (U+000A)'],
  ['the last C0 control (US)', '\u001f', 'a control character (U+001F)'],
  ['DEL', '\u007f', 'a control character (U+007F)'],
  ['the first C1 control', '\u0080', 'a control character (U+0080)'],
  ['the last C1 control', '\u009f', 'a control character (U+009F)'],
  ['the Arabic letter mark', '\u061c', 'a bidi control character (U+061C)'],
  ['a left-to-right mark', '\u200e', 'a bidi control character (U+200E)'],
  ['a right-to-left mark', '\u200f', 'a bidi control character (U+200F)'],
  ['a left-to-right embedding', '\u202a', 'a bidi control character (U+202A)'],
  ['a right-to-left override', '\u202e', 'a bidi control character (U+202E)'],
  ['a left-to-right isolate', '\u2066', 'a bidi control character (U+2066)'],
  ['a pop directional isolate', '\u2069', 'a bidi control character (U+2069)'],
  ['a lone high surrogate', '\ud800', 'a lone surrogate (U+D800)'],
  ['a lone low surrogate', '\udfff', 'a lone surrogate (U+DFFF)'],
];

/** Ordinary Unicode that must pass: accents, CJK, emoji (a surrogate pair), ZWJ sequences, right-to-left letters. */
const ACCEPTED = ['Schweißen', '組立', '🔧 weld', 'peinture-étape', '👩‍🔧 fit', 'لحام', 'x'];

function expectRefused(parsed: ReturnType<typeof workorder.parseCommand>, field: string, named: string, index: number): void {
  expect(parsed).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
  expect(!parsed.ok && parsed.message).toContain(`${field}: has ${named} at index ${index}`);
}

describe('work order text the journal cannot store is BAD_REQUEST', () => {
  it.each(REFUSED)('a stage name with %s in Create', (_what, character, named) => {
    expectRefused(workorder.parseCommand('Create', { bom: BOM, stages: ['cut', `we${character}ld`] }), 'stages.1', named, 2);
  });

  it.each(REFUSED)('a stage name with %s in AdvanceStage', (_what, character, named) => {
    expectRefused(workorder.parseCommand('AdvanceStage', { to: `${character}cut` }), 'to', named, 0);
  });

  it.each(REFUSED)("a saga answer's reason with %s", (_what, character, named) => {
    const answer = { tag: { step: 'reserve', line: 0, attempt: 1 }, ok: false, reason: `SHORT${character}` };
    expectRefused(parseCommandOf(workorder, ANSWER_COMMAND, answer, true), 'reason', named, 5);
  });

  it.each([
    ['cut\u0000', 'a NUL (U+0000)', 3],
    ['x\ud800y', 'a lone surrogate (U+D800)', 1],
    ['\udc00\ud800', 'a lone surrogate (U+DC00)', 0], // a pair in the wrong order is two lone surrogates
  ] as const)('the reported stage name %j', (stage, named, index) => {
    expectRefused(workorder.parseCommand('Create', { bom: BOM, stages: [stage] }), 'stages.0', named, index);
  });
});

describe('ordinary Unicode text is accepted', () => {
  it.each(ACCEPTED)('the stage name %j in Create and AdvanceStage', (stage) => {
    expect(workorder.parseCommand('Create', { bom: BOM, stages: ['cut', stage] })).toMatchObject({ ok: true });
    expect(workorder.parseCommand('AdvanceStage', { to: stage })).toMatchObject({ ok: true });
  });

  it('a saga answer with an ordinary reason, or none', () => {
    const tag = { step: 'reserve', line: 0, attempt: 1 };
    expect(parseCommandOf(workorder, ANSWER_COMMAND, { tag, ok: false, reason: 'INSUFFICIENT_STOCK' }, true)).toMatchObject({ ok: true });
    expect(parseCommandOf(workorder, ANSWER_COMMAND, { tag, ok: true }, true)).toMatchObject({ ok: true });
  });
});
