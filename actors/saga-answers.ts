// Commands only the runtime sends (saga answers, timer firings), and the saga protocol, once for every kind: a kind declares what it sends (`pendingEffects`) and
// how it decides the answers (`answers`); the internal answer command, its schema and its
// routing to that decision are here, not in the kind's own commands, so no domain code
// re-implements them and no client can send an answer (it is parsed only when internal).
import { z } from 'zod';
import { ANSWER_COMMAND, type ActorKind, type AnswerPayload, type Command, type Decision, type Facts, type ParseResult } from './kind.js';
import { describeIssues, safeText } from './schema.js';
import type { AnyMachineSnapshot } from 'xstate';

const answerSchemas = new WeakMap<ActorKind, z.ZodType<AnswerPayload>>();

function answerSchema(kind: ActorKind, tag: z.ZodType<Record<string, unknown>>): z.ZodType<AnswerPayload> {
  let schema = answerSchemas.get(kind);
  if (!schema) {
    // The reason is journaled by the kind's decision (a line short for SHORTAGE, say): text the journal can store.
    schema = z.object({ tag, ok: z.boolean(), reason: safeText(0, 64).optional() }).strict() as z.ZodType<AnswerPayload>;
    answerSchemas.set(kind, schema);
  }
  return schema;
}

/** Parses a command for `kind`; `internal` (sent by the runtime itself) also admits saga answers. */
export function parseCommandOf(kind: ActorKind, type: string, payload: unknown, internal = false): ParseResult {
  const runtimeOnly = internal && kind.internalCommands && Object.hasOwn(kind.internalCommands, type) ? kind.internalCommands[type] : undefined;
  if (runtimeOnly) {
    const parsed = runtimeOnly.safeParse(payload ?? {});
    if (!parsed.success) return { ok: false, code: 'BAD_REQUEST', message: `${type} ${describeIssues(parsed.error)}` };
    return { ok: true, command: { type, payload: parsed.data } };
  }
  if (type !== ANSWER_COMMAND || !internal || !kind.answers) return kind.parseCommand(type, payload);
  const parsed = answerSchema(kind, kind.answers.tag).safeParse(payload ?? {});
  if (!parsed.success) return { ok: false, code: 'BAD_REQUEST', message: `${ANSWER_COMMAND} ${describeIssues(parsed.error)}` };
  return { ok: true, command: { type, payload: parsed.data as unknown as Record<string, unknown> } };
}

/** Decides a parsed command: an answer by the kind's `answers`, anything else by `decide`. */
export function decideOf(kind: ActorKind, state: AnyMachineSnapshot, command: Command, actorId: string, messageId: string, facts: Facts, receivedAt?: number): Decision {
  if (command.type === ANSWER_COMMAND && kind.answers) return kind.answers.decide(state, command.payload as unknown as AnswerPayload);
  return kind.decide(state, command, actorId, messageId, facts, receivedAt);
}
