// Validation shared by every actor kind: command payloads are checked once, at the edge,
// against a zod schema, and a failure becomes a BAD_REQUEST naming the offending field.
import { z } from 'zod';
import type { Command, ParseResult } from './kind.js';

/** Actor ids and work order ids: the contract's `[A-Za-z0-9_-]{1,128}`. */
export const ACTOR_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
export const actorId = z.string().regex(ACTOR_ID_PATTERN, 'must match [A-Za-z0-9_-]{1,128}');

/** Reservation ids: the contract's `[A-Za-z0-9_:-]{1,128}` (':' because a work order's are `<workorder id>:<line index>`). */
export const reservationId = z.string().regex(/^[A-Za-z0-9_:-]{1,128}$/, 'must match [A-Za-z0-9_:-]{1,128}');

/**
 * Characters text must not hold: C0 controls (NUL among them: jsonb cannot store it), DEL and C1
 * controls, bidi controls that make text read other than it is stored, and lone surrogates
 * (not valid Unicode, so PostgreSQL refuses them).
 */
const UNSAFE_CHARACTER = /[\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]|\p{Cs}/u;

const codePointName = (code: number): string => `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;

function unsafeCharacterKind(code: number): string {
  if (code === 0) return 'a NUL';
  if (code <= 0x9f) return 'a control character';
  if (code >= 0xd800 && code <= 0xdfff) return 'a lone surrogate';
  return 'a bidi control character';
}

/** Why `text` cannot be journaled, naming the first offending character and its index; null when it can. */
function unsafeTextProblem(text: string): string | null {
  const found = UNSAFE_CHARACTER.exec(text);
  if (!found) return null;
  const code = found[0].codePointAt(0)!;
  return `has ${unsafeCharacterKind(code)} (${codePointName(code)}) at index ${found.index}`;
}

/** Free text (names, reasons): `min`..`max` UTF-16 units of well-formed Unicode without controls or bidi controls. */
export const safeText = (min: number, max: number) =>
  z
    .string()
    .min(min)
    .max(max)
    .superRefine((text, ctx) => {
      const problem = unsafeTextProblem(text);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });

/** Quantities are whole units; the cap keeps sums exact in JSON numbers. */
export const MAX_QTY = 1_000_000_000_000;
export const positiveQty = z.number().int('must be a whole number').positive('must be positive').max(MAX_QTY);
export const nonNegativeQty = z.number().int('must be a whole number').nonnegative('must not be negative').max(MAX_QTY);

export const emptyPayload = z.object({}).strict();

export type PayloadSchemas = Readonly<Record<string, z.ZodType<Record<string, unknown>>>>;

export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join('.') : 'payload';
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

/** Parses `payload` for command `type` of a kind whose payloads `schemas` describes. */
export function parseWith(kindName: string, schemas: PayloadSchemas, type: string, payload: unknown): ParseResult {
  const schema = Object.hasOwn(schemas, type) ? schemas[type] : undefined;
  if (!schema) {
    return {
      ok: false,
      code: 'UNKNOWN_COMMAND',
      message: `${kindName} has no command ${JSON.stringify(type)}; known: ${Object.keys(schemas).join(', ')}`,
    };
  }
  const result = schema.safeParse(payload ?? {});
  if (!result.success) return { ok: false, code: 'BAD_REQUEST', message: `${type} ${describeIssues(result.error)}` };
  const command: Command = { type, payload: result.data };
  return { ok: true, command };
}
