// The node's NATS edge: requests on ppos.cmd.<kind>.<id> (a queue group, so any node may
// receive) are checked, routed to the actor's owner and answered on the reply subject.
// Bad input is answered here and never reaches a mailbox.
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ActorKind } from '../actors/kind.js';
import type { Journal } from '../persistence/journal.js';
import {
  COMMAND_SUBJECT_PREFIX,
  errorReply,
  isReply,
  parseAddress,
  parseEnvelope,
  type Reply,
} from './envelope.js';
import { OMITTED_HINT, respondWithin } from './fit-reply.js';
import type { Ownership } from './ownership.js';
import type { ActorRegistry } from './registry.js';
import type { NodeStats } from './stats.js';

export const QUEUE_GROUP = 'ppos';

/** The reply with its state left out: what is sent when the whole reply is too large for NATS. */
function withoutState(reply: Reply): Reply {
  return reply.ok ? { ...reply, state: { omitted: `state ${OMITTED_HINT}` } } : reply;
}
export const NODES_SUBJECT = 'ppos.nodes';

/** Where a node receives commands forwarded to it: ppos.node.<node id>.cmd.<kind>.<id>. */
export const forwardPrefix = (nodeId: string): string => `ppos.node.${nodeId}.cmd`;

export interface RouterOptions {
  readonly nodeId: string;
  readonly nc: NatsConnection;
  readonly kinds: ReadonlyMap<string, ActorKind>;
  readonly registry: ActorRegistry;
  readonly journal: Journal;
  readonly ownership: Ownership;
  readonly logger: Logger;
  readonly stats: NodeStats;
}

export class Router {
  private readonly subscriptions: Subscription[] = [];

  constructor(private readonly options: RouterOptions) {}

  start(): void {
    const { nc } = this.options;
    this.subscriptions.push(
      nc.subscribe(`${COMMAND_SUBJECT_PREFIX}.>`, { queue: QUEUE_GROUP, callback: (error, msg) => this.onCommand(error, msg, false) }),
      // Commands another node forwarded here because this node owns the actor's shard.
      nc.subscribe(`${forwardPrefix(this.options.nodeId)}.>`, { callback: (error, msg) => this.onCommand(error, msg, true) }),
    );
    // ppos.inspect.> and ppos.nodes.{actors,stats} are the node's micro service endpoints (service.ts).
  }

  /** Stops taking new messages; what is already in mailboxes still runs. */
  async stop(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.drain().catch(() => undefined)));
  }

  /** Requests this node passed on to the owner of their actor. */
  forwarded = 0;

  private onCommand(error: Error | null, msg: Msg, forwarded: boolean): void {
    if (error) {
      this.options.logger.error({ err: error }, 'command subscription failed');
      return;
    }
    const receivedAt = new Date();
    const started = performance.now();
    if (!msg.reply) return; // a plain publish has nobody to answer: commands are request/reply only
    const respond = (reply: Reply): void => {
      this.options.stats.recordCommand(performance.now() - started, reply);
      respondWithin(msg, JSON.stringify(reply), () => JSON.stringify(withoutState(reply)), (failure) =>
        this.options.logger.error({ subject: msg.subject, err: failure.message }, 'could not send a reply'),
      );
    };
    const subject = forwarded ? `${COMMAND_SUBJECT_PREFIX}${msg.subject.slice(forwardPrefix(this.options.nodeId).length)}` : msg.subject;
    const address = parseAddress(subject, this.options.kinds);
    if (typeof address === 'string') return respond(errorReply('BAD_REQUEST', address));
    const route = this.options.ownership.route(address);
    if (!route.local) {
      // At most one hop: the owner answers the client's reply subject directly. A forwarded
      // request that finds its shard moving is refused, never passed on again.
      if (!forwarded && route.owner !== null) {
        this.forwarded += 1;
        this.options.nc.publish(`${forwardPrefix(route.owner)}.${address.kind}.${address.id}`, msg.data, { reply: msg.reply });
        return;
      }
      return respond(errorReply('UNAVAILABLE', `shard ${route.shard} of ${address.kind}/${address.id} is moving between nodes; nothing was applied, retry`));
    }
    const envelope = parseEnvelope(msg.data);
    if (isReply(envelope)) return respond(envelope);
    this.options.registry.dispatch(address, { envelope, receivedAt }, respond);
  }
}
