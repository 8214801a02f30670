// A client typed by kind: `send` takes only the kind's commands, each with its own payload type,
// from the same zod schemas the node validates with. Underneath, the one PposClient: retries
// reuse the message id, so at-least-once delivery keeps exactly-once effect.
import type { z } from 'zod';
import type { ObjectSchemas } from '../../actors/define-kind.js';
import type { Reply } from '../../runtime/envelope.js';
import type { PposClient, RetryOptions } from '../client.js';

/** What a typed client needs of a kind: its name and command schemas (a `defineKind` result, or a built-in's). */
export interface KindCommands<C extends ObjectSchemas> {
  readonly kind: string;
  readonly commandSchemas: C;
}

/**
 * A command's type, its payload and the options, as one tuple per command: the payload is
 * checked against the type it is sent with, even when the type is a union of several.
 */
export type CommandArgs<C extends ObjectSchemas> = { [T in keyof C & string]: [type: T, payload: z.input<C[T]>, options?: RetryOptions] }[keyof C & string];

export class KindClient<C extends ObjectSchemas> {
  constructor(
    readonly client: PposClient,
    readonly target: KindCommands<C>,
  ) {}

  /** Sends until a definite answer (UNAVAILABLE, OVERLOADED and timeouts are retried with the same message id). */
  send(id: string, ...[type, payload, options]: CommandArgs<C>): Promise<Reply> {
    return this.client.sendWithRetry(this.target.kind, id, type, payload as Record<string, unknown>, options ?? {});
  }

  /** One attempt, no retry: the answer, or a NoAnswerError when nobody answered in time. */
  sendOnce(id: string, ...[type, payload, options]: CommandArgs<C>): Promise<Reply> {
    return this.client.send(this.target.kind, id, type, payload as Record<string, unknown>, options ?? {});
  }
}

/** A typed client for `kind` over an open PposClient. */
export const clientFor = <C extends ObjectSchemas>(client: PposClient, kind: KindCommands<C>): KindClient<C> => new KindClient(client, kind);
