// The node as a NATS micro service (`@nats-io/services`): name `ppos`, one instance per node,
// so `nats micro ls|info|stats ppos` finds every node. Its endpoints are the read-only
// operator subjects, on exactly the subjects the contract names:
//   inspect       ppos.inspect.<kind>.<id>          (queue group: one node answers)
//   inspect-node  ppos.internal.inspect.<incarnation>.<kind>.<id>
//                                                   (this process itself: where a non-owner passes it on)
//   actors        ppos.nodes.actors                 (every node answers a page: scatter-gather)
//   actors-page   ppos.nodes.actors.<incarnation>   (this process: the next pages of its listing)
//   stats         ppos.nodes.stats                  (every node answers: scatter-gather)
//   kinds         ppos.nodes.kinds                  (every node answers: the kinds it hosts)
// Inspection reads committed in-memory state or the journal; it never enters a mailbox. Only
// the actor's owner knows its mailbox and whether it is active, so a node that does not own
// the actor passes the request on to the owner, once (the owner answers the requester).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import type { Logger } from 'pino';
import type { ActorKind } from '../actors/kind.js';
import type { Journal } from '../persistence/journal.js';
import { errorReply, parseAddress } from './envelope.js';
import { OMITTED_HINT, respondWithin } from './fit-reply.js';
import { inspectActor, parseInspectionRequest } from './inspection.js';
import { Limiter } from './limiter.js';
import { ActorListing, parseListingRequest } from './listing.js';
import type { Ownership } from './ownership.js';
import type { ActorRegistry } from './registry.js';
import type { QueryService } from './query-service.js';
import type { SagaAlarm } from './saga-runner.js';
import type { NodeStats } from './stats.js';
import { describeKinds } from './kind-catalog.js';
import { INSPECT_SUBJECT_PREFIX, inspectForwardPrefix, NODES_SUBJECT, nodeActorsSubject, QUERY_SUBJECT_PREFIX, QUEUE_GROUP } from './subjects.js';

export const SERVICE_NAME = 'ppos';

export interface NodeServiceOptions {
  readonly nodeId: string;
  /** This process: inspections passed on to it, and the next pages of its listing, come here. */
  readonly incarnation: string;
  readonly nc: NatsConnection;
  readonly kinds: ReadonlyMap<string, ActorKind>;
  readonly registry: ActorRegistry;
  readonly journal: Journal;
  readonly stats: NodeStats;
  readonly logger: Logger;
  /** Who owns which actor; without it every actor is inspected here. */
  readonly ownership?: Ownership;
  /**
   * Inspections of passivated actors read the journal through the node's own pool; at most
   * this many at once, so a dashboard polling many idle actors cannot starve command appends.
   */
  readonly maxJournalInspections?: number;
  /** Saga steps of an actor that cannot go on, shown on its inspection. */
  readonly sagaAlarms?: (ref: { kind: string; id: string }) => readonly SagaAlarm[];
  /** Queries of the projections, on ppos.query.<projection>. */
  readonly queries?: QueryService;
}

/** The version in the package.json this module ships in. */
export function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 4; depth += 1) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ppos' && pkg.version) return pkg.version;
    } catch {
      // not here; look one folder up
    }
    dir = path.dirname(dir);
  }
  return '0.0.0';
}

export class NodeService {
  private service: Service | undefined;
  private readonly listing: ActorListing;
  private readonly journalReads: Limiter;

  constructor(private readonly options: NodeServiceOptions) {
    this.journalReads = new Limiter(options.maxJournalInspections ?? 2);
    this.listing = new ActorListing(options.registry);
  }

  async start(): Promise<void> {
    const { nc, nodeId, incarnation, stats, registry } = this.options;
    // @nats-io/services 3.0.0-25 (the newest) types against its own nats-core pre-release;
    // the connection is the same object at run time.
    this.service = await new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]).add({
      name: SERVICE_NAME,
      version: packageVersion(),
      description: 'ppos runtime node: durable, exactly-once actors over NATS and PostgreSQL',
      metadata: { node: nodeId, incarnation },
      // No default queue group: the node listings are scatter-gather, every node answers.
      queue: '',
      // `nats micro stats` shows the node's own counters on the stats endpoint.
      statsHandler: async (endpoint) => (endpoint.subject === `${NODES_SUBJECT}.stats` ? stats.snapshot(registry) : null),
    });
    this.service.addEndpoint('inspect', {
      subject: `${INSPECT_SUBJECT_PREFIX}.>`,
      queue: QUEUE_GROUP,
      metadata: { description: 'live view of one actor: ppos.inspect.<kind>.<id>' },
      handler: (error, msg) => this.onInspect(error, msg, false),
    });
    this.service.addEndpoint('inspect-node', {
      subject: `${inspectForwardPrefix(incarnation)}.>`,
      metadata: { description: 'live view of one actor, answered by this process: ppos.internal.inspect.<incarnation>.<kind>.<id>' },
      handler: (error, msg) => this.onInspect(error, msg, true),
    });
    const listActors = (error: Error | null, msg: ServiceMsg): void => {
      if (error || !msg.reply) return;
      const page = this.listing.page(parseListingRequest(msg.data));
      respondWithin(
        msg,
        JSON.stringify({ node: nodeId, incarnation, ...page }),
        // A page of very long ids can still outgrow a small max_payload: then a tenth of it.
        () => JSON.stringify({ node: nodeId, incarnation, ...this.listing.page({ ...parseListingRequest(msg.data), limit: Math.max(1, Math.floor(page.actors.length / 10)) }) }),
        (failure) => this.options.logger.error({ err: failure.message }, 'could not send the actor listing'),
      );
    };
    this.service.addEndpoint('actors', {
      subject: `${NODES_SUBJECT}.actors`,
      metadata: { description: "a page of this node's active actors with mailbox depths; `next` names the next page" },
      handler: listActors,
    });
    this.service.addEndpoint('actors-page', {
      subject: nodeActorsSubject(incarnation),
      metadata: { description: "the next pages of this node's listing: {after, limit}" },
      handler: listActors,
    });
    const queries = this.options.queries;
    if (queries) {
      this.service.addEndpoint('query', {
        subject: `${QUERY_SUBJECT_PREFIX}.*`,
        queue: QUEUE_GROUP,
        metadata: { description: 'query a projection: ppos.query.<projection> with {where, after?, timeoutMs?, limit?, cursor?}' },
        handler: (error, msg) => {
          if (error || !msg.reply) return;
          const name = msg.subject.slice(QUERY_SUBJECT_PREFIX.length + 1);
          void queries.answer(name, msg.data).then((reply) =>
            respondWithin(
              msg,
              JSON.stringify(reply),
              () => JSON.stringify({ ok: false, error: { code: 'BAD_REQUEST', message: 'the page is larger than one NATS message: ask for a smaller limit' } }),
              (failure) => this.options.logger.error({ subject: msg.subject, err: failure.message }, 'could not send a query reply'),
            ),
          );
        },
      });
    }
    // Computed once: the kinds a node hosts do not change while it runs.
    const catalog = JSON.stringify({ node: nodeId, incarnation, kinds: describeKinds(this.options.kinds) });
    this.service.addEndpoint('kinds', {
      subject: `${NODES_SUBJECT}.kinds`,
      metadata: { description: 'the actor kinds this node hosts: commands with their payloads as JSON Schema, queries, state version' },
      handler: (error, msg) => {
        if (error || !msg.reply) return;
        msg.respond(catalog);
      },
    });
    this.service.addEndpoint('stats', {
      subject: `${NODES_SUBJECT}.stats`,
      metadata: { description: 'node counters: uptime, commands/s, latencies, activations, snapshots' },
      handler: (error, msg) => {
        if (error || !msg.reply) return;
        msg.respond(JSON.stringify(stats.snapshot(registry)));
      },
    });
    void this.service.stopped.then((failure) => {
      if (failure) this.options.logger.error({ err: failure }, 'operator service stopped');
    });
  }

  async stop(): Promise<void> {
    await this.service?.stop().catch(() => undefined);
  }

  private onInspect(error: Error | null, msg: ServiceMsg, direct: boolean): void {
    if (error || !msg.reply) return;
    const { kinds, nodeId, registry, journal, stats, ownership, nc } = this.options;
    // ppos.inspect.<kind>.<id>, or ppos.internal.inspect.<incarnation>.<kind>.<id>
    const address = parseAddress(msg.subject, kinds, direct ? 4 : 2);
    if (typeof address === 'string') {
      msg.respondError(400, address, JSON.stringify(errorReply('BAD_REQUEST', address)));
      return;
    }
    const route = ownership?.route(address);
    if (!direct && route && !route.local) {
      // Only the owner knows the actor's memory and mailbox: pass it on, once; while the shard
      // moves there is no owner to ask, and an answer from the journal could be out of date.
      if (route.forwardTo !== null) nc.publish(`${inspectForwardPrefix(route.forwardTo)}.${address.kind}.${address.id}`, msg.data, { reply: msg.reply });
      else this.respondUnavailable(msg, `shard ${route.shard} of ${address.kind}/${address.id} is moving between nodes; retry`);
      return;
    }
    stats.recordInspection();
    const kind = kinds.get(address.kind)!;
    const request = parseInspectionRequest(msg.data);
    const alarms = this.options.sagaAlarms?.(address) ?? [];
    // An active actor answers from memory at once; only passivated ones wait for a journal slot.
    const view = (
      registry.activeHost(address)
        ? inspectActor(nodeId, registry, journal, kind, address, request)
        : this.journalReads.run(() => inspectActor(nodeId, registry, journal, kind, address, request))
    ).then((inspection) => (alarms.length > 0 ? { ...inspection, sagaAlarms: alarms } : inspection));
    view.then(
      (inspection) =>
        respondWithin(
          msg,
          JSON.stringify(inspection),
          // Bounded by every kind's view; a server with a tiny max_payload still gets the rest, named.
          () => JSON.stringify({ ...inspection, context: { omitted: `context ${OMITTED_HINT}` }, omitted: ['context'] }),
          (failure) => this.options.logger.error({ subject: msg.subject, err: failure.message }, 'could not send an inspection'),
        ),
      (failure: Error) => this.respondUnavailable(msg, `inspection failed: ${failure.message}`),
    );
  }

  private respondUnavailable(msg: ServiceMsg, message: string): void {
    try {
      msg.respondError(503, message, JSON.stringify(errorReply('UNAVAILABLE', message)));
    } catch (error) {
      // The connection is closing: nobody to answer. Thrown here it would be an unhandled rejection.
      this.options.logger.warn({ subject: msg.subject, err: (error as Error).message }, 'could not send an inspection failure');
    }
  }
}
