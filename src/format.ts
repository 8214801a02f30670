// Human output: plain aligned tables. Scripts use --json instead. Everything ppos prints goes
// out through writeOut/writeErr, so text from the network or the journal (a forged feed line,
// an error message) can never steer the operator's terminal.

// What can move the cursor, start an escape sequence or reorder what the operator reads:
// C0 but newline, DEL and C1; the bidi marks, embeddings, overrides and isolates; lone surrogates.
const CONTROLS = String.raw`\u0000-\u0009\u000b-\u001f\u007f-\u009f`;
const BIDI = String.raw`\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069`;
const LONE_SURROGATE = String.raw`[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]`;
const unsafe = (extra: string): RegExp => new RegExp(`[${CONTROLS}${BIDI}${extra}]|${LONE_SURROGATE}`, 'g');
const TERMINAL_UNSAFE = unsafe('');
// Newline too, for text that must stay on one line (a table cell, a feed line).
const TERMINAL_UNSAFE_ON_ONE_LINE = unsafe(String.raw`\n`);

const escapeCodeUnit = (char: string): string => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * `text` with every character that could act on a terminal shown as a visible `\uXXXX` escape.
 * Idempotent, and inside JSON text it keeps the JSON valid and equal in value (`\uXXXX` is JSON's own escape).
 */
export function forTerminal(text: string, options: { oneLine?: boolean } = {}): string {
  return text.replace(options.oneLine ? TERMINAL_UNSAFE_ON_ONE_LINE : TERMINAL_UNSAFE, escapeCodeUnit);
}

export function writeOut(text: string): void {
  process.stdout.write(forTerminal(text));
}

export function writeErr(text: string): void {
  process.stderr.write(forTerminal(text));
}

export function table(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = rows.map((row) => row.map(cell));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** One cell is one line: escaped before the widths are measured, so columns stay aligned. */
function cell(value: unknown): string {
  return forTerminal(cellText(value), { oneLine: true });
}

function cellText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** A record as two columns, nested values as compact JSON. */
export function keyValues(record: Record<string, unknown>): string {
  return table(
    ['field', 'value'],
    Object.entries(record).map(([k, v]) => [k, v]),
  );
}

export function printJson(value: unknown): void {
  writeOut(`${JSON.stringify(value, null, process.stdout.isTTY ? 2 : undefined)}\n`);
}
