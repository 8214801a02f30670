// A client of ppos over NATS: what the CLI, the demo, the tests and actor-to-actor sagas use.
// Retries always reuse the message id, so at-least-once delivery yields exactly-once effect.
import { headers, RequestError, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import type { Reply } from '../runtime/envelope.js';
import type { ActiveActor } from '../runtime/registry.js';
import { TRACEPARENT_HEADER } from '../runtime/tracing.js';
import { commandSubject, inspectSubject, NODES_SUBJECT, nodeActorsSubject } from '../runtime/subjects.js';
import { newId } from './config.js';
import { connectNats, natsSettings, type NatsSettings } from './nats.js';

export interface SendOptions {
  readonly messageId?: string;
  readonly timeoutMs?: number;
  readonly correlationId?: string;
  readonly causationId?: string;
  /** A W3C traceparent sent as the request's header: the command joins that trace. */
  readonly traceparent?: string;
}

export interface RetryOptions extends SendOptions {
  /** Give up after this long in all (default 30 s). */
  readonly deadlineMs?: number;
  /** Called before each retry, with why. */
  readonly onRetry?: (reason: string, attempt: number) => void;
}

/** One page of a node's active actors, as `ppos.nodes.actors` answers. */
interface ListingAnswer {
  readonly node: string;
  readonly incarnation: string;
  /** How old the node's listing was when it answered, ms. */
  readonly ageMs?: number;
  readonly total: number;
  readonly actors: readonly ActiveActor[];
  readonly next?: string;
}

export interface NodeActors {
  readonly node: string;
  /** How old the node's listing was when it answered, ms (nodes list at most once a second). */
  readonly ageMs?: number;
  readonly total: number;
  readonly actors: readonly ActiveActor[];
}

/** No node answered: nobody listening, or no reply in time. The command may still have been applied. */
export class NoAnswerError extends Error {
  constructor(
    message: string,
    readonly noResponders: boolean,
  ) {
    super(message);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const retryable = (reply: Reply): boolean => !reply.ok && (reply.error.code === 'UNAVAILABLE' || reply.error.code === 'OVERLOADED');

export class PposClient {
  constructor(readonly nc: NatsConnection) {}

  /** `target`: resolved settings (credentials, TLS), or a bare URL (its userinfo used, nothing from the environment). */
  static async connect(target: NatsSettings | string, name = 'ppos-client', waitMs = 3_000): Promise<PposClient> {
    const settings = typeof target === 'string' ? natsSettings({ nats: target }, {}) : target;
    return new PposClient(await connectNats(settings, name, undefined, waitMs));
  }

  /** One attempt. Throws NoAnswerError when no node answers in time. */
  async send(kind: string, id: string, type: string, payload: Record<string, unknown> | undefined, options: SendOptions = {}): Promise<Reply> {
    const envelope = {
      id: options.messageId ?? newId(),
      type,
      ...(payload === undefined ? {} : { payload }),
      ...(options.correlationId ? { correlationId: options.correlationId } : {}),
      ...(options.causationId ? { causationId: options.causationId } : {}),
    };
    let traced: MsgHdrs | undefined;
    if (options.traceparent) {
      traced = headers();
      traced.set(TRACEPARENT_HEADER, options.traceparent);
    }
    return this.request(commandSubject(kind, id), JSON.stringify(envelope), options.timeoutMs ?? 5_000, traced);
  }

  /** Sends until a definite answer, reusing one message id; retries timeouts, UNAVAILABLE and OVERLOADED. */
  async sendWithRetry(kind: string, id: string, type: string, payload: Record<string, unknown> | undefined, options: RetryOptions = {}): Promise<Reply> {
    const messageId = options.messageId ?? newId();
    const deadline = Date.now() + (options.deadlineMs ?? 30_000);
    for (let attempt = 1; ; attempt += 1) {
      let reason: string;
      try {
        const reply = await this.send(kind, id, type, payload, { ...options, messageId });
        if (!retryable(reply) || Date.now() > deadline) return reply;
        reason = reply.ok ? 'ok' : reply.error.code;
      } catch (error) {
        if (!(error instanceof NoAnswerError) || Date.now() > deadline) throw error;
        reason = error.message;
      }
      options.onRetry?.(reason, attempt);
      await sleep(Math.min(1_000, 25 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()));
    }
  }

  async request(subject: string, body: string, timeoutMs: number, requestHeaders?: MsgHdrs): Promise<Reply> {
    try {
      const msg = await this.nc.request(subject, body, { timeout: timeoutMs, ...(requestHeaders ? { headers: requestHeaders } : {}) });
      return msg.json<Reply>();
    } catch (error) {
      if (error instanceof RequestError && error.isNoResponders()) {
        throw new NoAnswerError(`no ppos node is listening on ${subject} (start one with \`ppos start\`)`, true);
      }
      if (error instanceof Error && (error.name === 'TimeoutError' || /timeout/i.test(error.message))) {
        throw new NoAnswerError(`no reply on ${subject} within ${timeoutMs} ms`, false);
      }
      throw error;
    }
  }

  /** `request`: a page of a long context (`{page: {reservations: {after, limit}}}`), or the whole state's hash (`{hash: true}`). */
  async inspect(kind: string, id: string, timeoutMs = 5_000, request?: { page?: Record<string, unknown>; hash?: boolean }): Promise<Record<string, unknown>> {
    const body = request === undefined ? '' : JSON.stringify(request);
    return (await this.request(inspectSubject(kind, id), body, timeoutMs)) as unknown as Record<string, unknown>;
  }

  /** Scatter-gather across every node; answers collected for `waitMs`. */
  /**
   * Every node's answer. `stallMs`: stop that long after the last answer instead of waiting out
   * `waitMs` (then `waitMs` can be generous: a busy node answers late but is still counted).
   */
  async gather(what: 'actors' | 'stats' | 'kinds', waitMs = 500, body = '', stallMs?: number): Promise<Record<string, unknown>[]> {
    const answers: Record<string, unknown>[] = [];
    try {
      const replies = await this.nc.requestMany(`${NODES_SUBJECT}.${what}`, body, stallMs === undefined ? { maxWait: waitMs } : { strategy: 'stall', maxWait: waitMs, stall: stallMs });
      for await (const msg of replies) answers.push(msg.json<Record<string, unknown>>());
    } catch (error) {
      if (!(error instanceof RequestError && error.isNoResponders())) throw error;
    }
    return answers;
  }

  /** Every active actor of every node: each node's listing, page after page. */
  async activeActors(waitMs = 500, stallMs?: number): Promise<NodeActors[]> {
    const firstPages = (await this.gather('actors', waitMs, '', stallMs)) as unknown as ListingAnswer[];
    return Promise.all(
      firstPages.map(async (first) => {
        const actors = [...first.actors];
        for (let next = first.next; next !== undefined; ) {
          const page = (await this.nc.request(nodeActorsSubject(first.incarnation), JSON.stringify({ after: next }), { timeout: 5_000 })).json<ListingAnswer>();
          actors.push(...page.actors);
          next = page.next;
        }
        return { node: first.node, ...(first.ageMs === undefined ? {} : { ageMs: first.ageMs }), total: first.total, actors };
      }),
    );
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => undefined);
  }
}
