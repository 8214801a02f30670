// The wire contract (CONTRACT.md section 3): request envelopes and replies. Subjects are in
// subjects.ts.
import { z } from 'zod';
import { ACTOR_ID_PATTERN } from '../actors/schema.js';
import { describeIssues } from '../actors/schema.js';
import type { DomainEvent } from '../actors/kind.js';
import type { Origin } from './subjects.js';

export const MAX_REQUEST_BYTES = 64 * 1024;
/** Message ids of the runtime's own messages (saga steps, timers) begin with this; clients' never do. */
export const RESERVED_ID_PREFIX = 'ppos:';

export type ErrorCode = 'BAD_REQUEST' | 'UNKNOWN_COMMAND' | 'REJECTED' | 'ID_REUSED' | 'UNAVAILABLE' | 'OVERLOADED';

export interface ReplyError {
  readonly code: ErrorCode;
  readonly reason?: string;
  readonly message: string;
  readonly [detail: string]: unknown;
}

export type Reply =
  | {
      readonly ok: true;
      readonly duplicate: boolean;
      readonly seq: number;
      readonly events: readonly DomainEvent[];
      readonly state: Record<string, unknown>;
      /** Where the commit stands in the journal's read order: a query can wait for it (read-your-writes). */
      readonly token?: string;
    }
  | { readonly ok: false; readonly duplicate: boolean; readonly error: ReplyError };

export const errorReply = (code: ErrorCode, message: string, extra: { reason?: string; [k: string]: unknown } = {}): Reply => ({
  ok: false,
  duplicate: false,
  error: { code, ...extra, message },
});

// Ids that travel in envelopes: printable, no whitespace or control characters (PostgreSQL
// text refuses NUL), bounded so they stay cheap to index.
const clientMessageId = z
  .string()
  .regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters without spaces')
  .refine((id) => !id.startsWith(RESERVED_ID_PREFIX), `must not begin with "${RESERVED_ID_PREFIX}" (reserved for the runtime's own messages)`);
// A saga step's id is derived from its work order's id (up to 128 characters) and so is longer.
const stepMessageId = z
  .string()
  .regex(/^[\x21-\x7e]{1,256}$/, 'must be 1-256 printable ASCII characters without spaces')
  .refine((id) => id.startsWith(RESERVED_ID_PREFIX), `a saga step's id begins with "${RESERVED_ID_PREFIX}"`);
// Long enough for any message id (a step's causation is the id of an answer: a step id and a suffix).
const traceId = z.string().regex(/^[\x21-\x7e]{1,512}$/, 'must be 1-512 printable ASCII characters without spaces');

const envelopeFields = {
  type: z.string().min(1).max(64),
  payload: z.record(z.string(), z.unknown()).optional(),
  correlationId: traceId.optional(),
  causationId: traceId.optional(),
};
const envelopeSchemas: Readonly<Record<Origin, z.ZodType<Envelope>>> = {
  cmd: z.object({ id: clientMessageId, ...envelopeFields }),
  step: z.object({ id: stepMessageId, ...envelopeFields }),
};

export interface Envelope {
  readonly id: string;
  readonly type: string;
  readonly payload?: Record<string, unknown> | undefined;
  readonly correlationId?: string | undefined;
  readonly causationId?: string | undefined;
}

export interface Address {
  readonly kind: string;
  readonly id: string;
}

/** The last two tokens of `<prefix>.<kind>.<id>` → the address, or why it is not one. */
export function parseAddress(subject: string, knownKinds: ReadonlySet<string> | ReadonlyMap<string, unknown>, prefixTokens = 2): Address | string {
  const tokens = subject.split('.');
  if (tokens.length !== prefixTokens + 2) return `subject ${subject} must end in .<kind>.<id> with an id matching [A-Za-z0-9_-]{1,128}`;
  const kind = tokens[prefixTokens]!;
  const id = tokens[prefixTokens + 1]!;
  if (!knownKinds.has(kind)) return `unknown actor kind ${JSON.stringify(kind)}; known: ${[...knownKinds.keys()].join(', ')}`;
  if (!ACTOR_ID_PATTERN.test(id)) return `actor id ${JSON.stringify(id)} must match [A-Za-z0-9_-]{1,128}`;
  return { kind, id };
}

/** Request bytes → an envelope, or the BAD_REQUEST reply explaining why not. */
export function parseEnvelope(data: Uint8Array, origin: Origin = 'cmd'): Envelope | Reply {
  if (data.length > MAX_REQUEST_BYTES) {
    return errorReply('BAD_REQUEST', `request body is ${data.length} bytes; the limit is ${MAX_REQUEST_BYTES}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch (error) {
    return errorReply('BAD_REQUEST', `request body is not JSON: ${(error as Error).message}`);
  }
  const result = envelopeSchemas[origin].safeParse(body);
  if (!result.success) return errorReply('BAD_REQUEST', `bad envelope: ${describeIssues(result.error)}`);
  return result.data;
}

export const isReply = (value: Envelope | Reply): value is Reply => 'ok' in value && typeof (value as Reply).ok === 'boolean';
