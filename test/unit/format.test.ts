// What ppos prints about text it did not write: nothing that a terminal would act on.
import { describe, expect, it } from 'vitest';
import { forTerminal, keyValues, table } from '../../src/format.js';

const C0_BUT_NEWLINE = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).filter((c) => c !== '\n');
const C1 = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(0x80 + i));
const BIDI = ['\u061c', '\u200e', '\u200f', '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069'];
const UNSAFE = [...C0_BUT_NEWLINE, '\u007f', ...C1, ...BIDI, '\ud800', '\udfff'];

/** The code units a terminal would act on: C0 but newline, DEL, C1, bidi controls, lone surrogates. */
function actionable(text: string): string[] {
  return [...text].filter((c) => UNSAFE.includes(c));
}

describe('forTerminal', () => {
  it('shows every control, bidi and lone-surrogate code unit as a visible \\uXXXX escape', () => {
    for (const c of UNSAFE) {
      const escaped = `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
      expect(forTerminal(`a${c}b`)).toBe(`a${escaped}b`);
    }
  });

  it('turns a CSI colour sequence, C1 or ESC, into text that reads as what it was', () => {
    expect(forTerminal('\u009b31mred \u001b[2Jgone')).toBe('\\u009b31mred \\u001b[2Jgone');
  });

  it('keeps newlines (ours), printable text, emoji and other well-formed surrogate pairs', () => {
    const text = 'seq 1\nqty: 5 — Größe ✓ 日本 \u{1F600} \u00a0';
    expect(forTerminal(text)).toBe(text);
  });

  it('escapes newlines too for text that must stay on one line', () => {
    expect(forTerminal('a\nfake line', { oneLine: true })).toBe('a\\u000afake line');
  });

  it('is idempotent', () => {
    const once = forTerminal(UNSAFE.join('x'));
    expect(forTerminal(once)).toBe(once);
    expect(actionable(once)).toEqual([]);
  });

  it('leaves JSON valid and equal in value', () => {
    const value = { note: `\u009b\u202e\u2066\u200f\u061c\u007f\u0085 \\\u009b`, lone: 'x\ud800y' };
    const printed = forTerminal(JSON.stringify(value));
    expect(actionable(printed)).toEqual([]);
    expect(JSON.parse(printed)).toEqual(value);
  });
});

describe('table and keyValues', () => {
  it('escape cell text, newlines included, and align on the escaped width', () => {
    const printed = table(['id', 'note'], [['a\u202eb', 'x\ny'], ['c', 'd']]);
    expect(actionable(printed)).toEqual([]);
    expect(printed.split('\n')).toEqual(['id        note', '--------  --------', 'a\\u202eb  x\\u000ay', 'c         d']);
  });

  it('escape values printed with String()', () => {
    expect(keyValues({ reason: '\u009b2J\u001b]0;owned\u0007' })).toContain('\\u009b2J\\u001b]0;owned\\u0007');
  });
});
