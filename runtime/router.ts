// The node's NATS edge: requests on ppos.cmd.<kind>.<id> (a queue group, so any node may
// receive) are checked, routed to the actor's owner and answered on the reply subject.
// Bad input is answered here and never reaches a mailbox.
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ActorKind } from '../actors/kind.js';
import type { Journal } from '../persistence/journal.js';
import { errorReply, isReply, parseAddress, parseEnvelope, type Reply } from './envelope.js';
import { OMITTED_HINT, respondWithin } from './fit-reply.js';
import type { Ownership } from './ownership.js';
import type { ActorRegistry } from './registry.js';
import type { NodeStats } from './stats.js';
import { childSpan, endSpan, nameCommandSpan, receiveSpan, traceHeaders, traceparentOf, type Trace } from './tracing.js';
import {
  COMMAND_SUBJECT_PREFIX,
  forwardPrefix,
  forwardSubject,
  QUEUE_GROUP,
  STEP_SUBJECT_PREFIX,
  type Origin,
} from './subjects.js';

/** The reply with its state left out: what is sent when the whole reply is too large for NATS. */
function withoutState(reply: Reply): Reply {
  return reply.ok ? { ...reply, state: { omitted: `state ${OMITTED_HINT}` } } : reply;
}

export interface RouterOptions {
  readonly nodeId: string;
  /** This process: commands forwarded to it arrive on its incarnation's subject. */
  readonly incarnation: string;
  readonly nc: NatsConnection;
  readonly kinds: ReadonlyMap<string, ActorKind>;
  readonly registry: ActorRegistry;
  readonly journal: Journal;
  readonly ownership: Ownership;
  readonly logger: Logger;
  readonly stats: NodeStats;
}

/** Tokens before `<kind>.<id>` in each subject the router serves. */
const PREFIX_TOKENS = { cmd: 2, step: 3, forwarded: 5 } as const;

export class Router {
  private readonly subscriptions: Subscription[] = [];

  constructor(private readonly options: RouterOptions) {}

  start(): void {
    const { nc, incarnation } = this.options;
    this.subscriptions.push(
      nc.subscribe(`${COMMAND_SUBJECT_PREFIX}.>`, { queue: QUEUE_GROUP, callback: (error, msg) => this.onRequest(error, msg, 'cmd', false) }),
      // Saga steps between actors: node-only subjects, where the runtime's reserved ids are allowed.
      nc.subscribe(`${STEP_SUBJECT_PREFIX}.>`, { queue: QUEUE_GROUP, callback: (error, msg) => this.onRequest(error, msg, 'step', false) }),
      // Requests another node passed on to this process because it owns the actor's shard.
      nc.subscribe(`${forwardPrefix(incarnation)}.>`, { callback: (error, msg) => this.onForwarded(error, msg) }),
    );
    // ppos.inspect.> and ppos.nodes.{actors,stats} are the node's micro service endpoints (service.ts).
  }

  /** Stops taking new messages; what is already in mailboxes still runs. */
  async stop(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.drain().catch(() => undefined)));
  }

  /** Requests this node passed on to the owner of their actor. */
  forwarded = 0;

  private onForwarded(error: Error | null, msg: Msg): void {
    // ppos.internal.fwd.<incarnation>.<origin>.<kind>.<id>
    const origin = msg.subject.split('.')[4];
    if (origin !== 'cmd' && origin !== 'step') {
      this.options.logger.warn({ subject: msg.subject }, 'forwarded request with an unknown origin dropped');
      return;
    }
    this.onRequest(error, msg, origin, true);
  }

  private onRequest(error: Error | null, msg: Msg, origin: Origin, forwarded: boolean): void {
    if (error) {
      this.options.logger.error({ err: error }, 'command subscription failed');
      return;
    }
    const receivedAt = new Date();
    const started = performance.now();
    if (!msg.reply) return; // a plain publish has nobody to answer: commands are request/reply only
    // What the metrics label the command with, once known: only names the node knows, so a
    // client cannot make up label values.
    let kind = '_unknown';
    let type = '_unknown';
    // For the debug line: what the request named, as far as it could be read.
    let actor: string | undefined;
    let envelopeType: string | undefined;
    let messageId: string | undefined;
    // The command's span, once the command is this node's to handle (a request passed on to
    // the owner is traced there, its headers passed on with it).
    let traced: Trace | undefined;
    const respond = (reply: Reply | null): void => {
      // null: the outcome of the command is unknown (a commit's answer was lost). Saying
      // "nothing was applied" could be false, so nothing is said; the client's retry with the
      // same id gets the truth from the journal's dedupe record.
      if (reply === null) {
        if (traced) endSpan(traced.span, { ok: false, code: 'UNKNOWN', message: 'commit outcome unknown; not answered' });
        return;
      }
      const ms = performance.now() - started;
      this.options.stats.recordCommand(ms, reply, kind, type);
      // One line per command at debug level (off by default): cheap to skip.
      if (this.options.logger.isLevelEnabled('debug')) {
        this.options.logger.debug(
          { actor: actor ?? msg.subject, type: envelopeType, messageId, outcome: reply.ok ? (reply.duplicate ? 'duplicate' : 'ok') : reply.error.code, ms: Math.round(ms * 100) / 100 },
          'command',
        );
      }
      if (!traced) {
        respondWithin(msg, JSON.stringify(reply), () => JSON.stringify(withoutState(reply)), (failure) =>
          this.options.logger.error({ actor: actor ?? msg.subject, messageId, err: failure.message }, 'could not send a reply'),
        );
        return;
      }
      // The reply names the command's span: in a header, and in the body for clients that read only the body.
      const sending = childSpan(traced.context, 'ppos.reply');
      const traceparent = traceparentOf(traced.context);
      const headers = traceHeaders(traceparent);
      const body = traceparent === undefined ? reply : { ...reply, traceparent };
      respondWithin(
        { respond: (data) => msg.respond(data, headers ? { headers } : undefined) },
        JSON.stringify(body),
        () => JSON.stringify(withoutState(body as Reply)),
        (failure) => this.options.logger.error({ actor: actor ?? msg.subject, messageId, err: failure.message }, 'could not send a reply'),
      );
      endSpan(sending.span, { ok: true });
      endSpan(traced.span, reply.ok ? { ok: true, code: reply.duplicate ? 'duplicate' : 'ok' } : { ok: reply.error.code === 'REJECTED', code: reply.error.code, message: reply.error.message });
    };
    const address = parseAddress(msg.subject, this.options.kinds, forwarded ? PREFIX_TOKENS.forwarded : PREFIX_TOKENS[origin]);
    if (typeof address === 'string') return respond(errorReply('BAD_REQUEST', address));
    const route = this.options.ownership.route(address);
    if (!route.local) {
      // At most one hop, to the owner's process: it answers the client's reply subject
      // directly. A forwarded request that finds its shard moving is refused, never passed on.
      if (!forwarded && route.forwardTo !== null) {
        this.forwarded += 1;
        this.options.nc.publish(forwardSubject(route.forwardTo, origin, address.kind, address.id), msg.data, { reply: msg.reply, ...(msg.headers ? { headers: msg.headers } : {}) });
        return;
      }
      return respond(errorReply('UNAVAILABLE', `shard ${route.shard} of ${address.kind}/${address.id} is moving between nodes; nothing was applied, retry`));
    }
    kind = address.kind;
    actor = `${address.kind}/${address.id}`;
    traced = receiveSpan(msg.headers, 'ppos.command', { 'ppos.actor': actor, 'ppos.origin': origin });
    const envelope = parseEnvelope(msg.data, origin);
    if (isReply(envelope)) return respond(envelope);
    envelopeType = envelope.type;
    messageId = envelope.id;
    if (this.options.kinds.get(address.kind)?.commands.has(envelope.type)) type = envelope.type;
    nameCommandSpan(traced.span, kind, type, envelope.id);
    this.options.registry.dispatch(address, { envelope, receivedAt, trace: traced }, respond);
  }
}
