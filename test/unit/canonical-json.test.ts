// State hashes are taken of canonical JSON: the same value gives the same text however its
// keys were ordered (jsonb stores them in its own order), and the text is ordinary JSON.
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../runtime/canonical-json.js';

describe('canonical JSON', () => {
  it('sorts keys at every depth, so key order never changes the text', () => {
    const a = { b: 1, a: { y: [1, 2, { q: 1, p: 2 }], x: 'x' }, c: null };
    const b = { c: null, a: { x: 'x', y: [1, 2, { p: 2, q: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a)).toBe('{"a":{"x":"x","y":[1,2,{"p":2,"q":1}]},"b":1,"c":null}');
  });

  it('is JSON that parses back to the value, with undefined members left out as JSON.stringify does', () => {
    const value = { ids: ['__proto__', 'constructor', 'x\ud800'], qty: [1, 2, 3], wo: [null, 'w', null], gone: undefined };
    const text = canonicalJson(value);
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
    expect(text).not.toContain('gone');
  });

  it('keeps array order, and distinguishes values JSON.stringify distinguishes', () => {
    expect(canonicalJson([2, 1])).not.toBe(canonicalJson([1, 2]));
    expect(canonicalJson({ a: '1' })).not.toBe(canonicalJson({ a: 1 }));
    expect(canonicalJson({ a: [] })).not.toBe(canonicalJson({ a: {} }));
    expect(canonicalJson([undefined, { a: undefined }])).toBe('[null,{}]');
  });
});
