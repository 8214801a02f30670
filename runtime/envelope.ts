// The wire contract (CONTRACT.md sections 2 and 3): subjects, request envelopes, replies.
import { z } from 'zod';
import { ACTOR_ID_PATTERN } from '../actors/schema.js';
import { describeIssues } from '../actors/schema.js';
import type { DomainEvent } from '../actors/kind.js';

export const MAX_REQUEST_BYTES = 64 * 1024;
export const COMMAND_SUBJECT_PREFIX = 'ppos.cmd';
export const INSPECT_SUBJECT_PREFIX = 'ppos.inspect';
/** Journaled events, published after commit for live watchers: ppos.events.<kind>.<id>. */
export const EVENTS_SUBJECT_PREFIX = 'ppos.events';

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
    }
  | { readonly ok: false; readonly duplicate: boolean; readonly error: ReplyError };

export const errorReply = (code: ErrorCode, message: string, extra: { reason?: string; [k: string]: unknown } = {}): Reply => ({
  ok: false,
  duplicate: false,
  error: { code, ...extra, message },
});

// Ids that travel in envelopes: printable, no whitespace or control characters (PostgreSQL
// text refuses NUL), bounded so they stay cheap to index.
const messageId = z.string().regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters without spaces');
const traceId = z.string().regex(/^[\x21-\x7e]{1,256}$/, 'must be 1-256 printable ASCII characters without spaces');

const envelopeSchema = z.object({
  id: messageId,
  type: z.string().min(1).max(64),
  payload: z.record(z.string(), z.unknown()).optional(),
  correlationId: traceId.optional(),
  causationId: traceId.optional(),
});

export type Envelope = z.infer<typeof envelopeSchema>;

export interface Address {
  readonly kind: string;
  readonly id: string;
}

export const commandSubject = (kind: string, id: string): string => `${COMMAND_SUBJECT_PREFIX}.${kind}.${id}`;
export const inspectSubject = (kind: string, id: string): string => `${INSPECT_SUBJECT_PREFIX}.${kind}.${id}`;

/** `ppos.<verb>.<kind>.<id>` → the address, or why it is not one. */
export function parseAddress(subject: string, knownKinds: ReadonlySet<string> | ReadonlyMap<string, unknown>): Address | string {
  const tokens = subject.split('.');
  if (tokens.length !== 4) return `subject ${subject} must be ppos.<verb>.<kind>.<id> with an id matching [A-Za-z0-9_-]{1,128}`;
  const kind = tokens[2]!;
  const id = tokens[3]!;
  if (!knownKinds.has(kind)) return `unknown actor kind ${JSON.stringify(kind)}; known: ${[...knownKinds.keys()].join(', ')}`;
  if (!ACTOR_ID_PATTERN.test(id)) return `actor id ${JSON.stringify(id)} must match [A-Za-z0-9_-]{1,128}`;
  return { kind, id };
}

/** Request bytes → an envelope, or the BAD_REQUEST reply explaining why not. */
export function parseEnvelope(data: Uint8Array): Envelope | Reply {
  if (data.length > MAX_REQUEST_BYTES) {
    return errorReply('BAD_REQUEST', `request body is ${data.length} bytes; the limit is ${MAX_REQUEST_BYTES}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch (error) {
    return errorReply('BAD_REQUEST', `request body is not JSON: ${(error as Error).message}`);
  }
  const result = envelopeSchema.safeParse(body);
  if (!result.success) return errorReply('BAD_REQUEST', `bad envelope: ${describeIssues(result.error)}`);
  return result.data;
}

export const isReply = (value: Envelope | Reply): value is Reply => 'ok' in value && typeof (value as Reply).ok === 'boolean';
