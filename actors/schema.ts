// Validation shared by every actor kind: command payloads are checked once, at the edge,
// against a zod schema, and a failure becomes a BAD_REQUEST naming the offending field.
import { z } from 'zod';
import type { Command, ParseResult } from './kind.js';

/** Actor ids and work order ids: the contract's `[A-Za-z0-9_-]{1,128}`. */
export const ACTOR_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
export const actorId = z.string().regex(ACTOR_ID_PATTERN, 'must match [A-Za-z0-9_-]{1,128}');

/** Reservation ids also allow ':' (a work order's are `<workorder id>:<line index>`). */
export const reservationId = z.string().regex(/^[A-Za-z0-9_:-]{1,200}$/, 'must match [A-Za-z0-9_:-]{1,200}');

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
