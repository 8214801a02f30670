// The node as a NATS micro service (`@nats-io/services`): name `ppos`, one instance per node,
// so `nats micro ls|info|stats ppos` finds every node. Its endpoints are the read-only
// operator subjects, on exactly the subjects the contract names:
//   inspect       ppos.inspect.<kind>.<id>              (queue group: one node answers)
//   inspect-node  ppos.node.<node id>.inspect.<kind>.<id> (this node itself: where a non-owner passes it on)
//   actors        ppos.nodes.actors                     (every node answers: scatter-gather)
//   stats         ppos.nodes.stats                      (every node answers: scatter-gather)
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
import { errorReply, INSPECT_SUBJECT_PREFIX, parseAddress } from './envelope.js';
import { OMITTED_HINT, respondWithin } from './fit-reply.js';
import { inspectActor } from './inspection.js';
import { stateHash } from './recovery.js';
import type { Ownership } from './ownership.js';
import type { ActiveActor, ActorRegistry } from './registry.js';
import { NODES_SUBJECT, QUEUE_GROUP } from './router.js';
import type { NodeStats } from './stats.js';

export const SERVICE_NAME = 'ppos';

/** Inspections addressed to one node: ppos.node.<node id>.inspect.<kind>.<id>. */
export const inspectNodePrefix = (nodeId: string): string => `ppos.node.${nodeId}.inspect`;

export interface NodeServiceOptions {
  readonly nodeId: string;
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

/** A tiny counting semaphore: waiting callers queue in order. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active += 1;
    try {
      return await task();
    } finally {
      this.active -= 1;
      this.waiting.shift()?.();
    }
  }
}

const LISTING_TTL_MS = 1_000;

/** `{"limit": N}` asks for a bounded listing; an empty body for the full one (the contract's form). */
function requestedLimit(data: Uint8Array): number | null {
  if (data.length === 0) return null;
  try {
    const body = JSON.parse(Buffer.from(data).toString('utf8')) as { limit?: unknown };
    return typeof body.limit === 'number' && Number.isSafeInteger(body.limit) && body.limit > 0 ? Math.min(body.limit, 10_000) : null;
  } catch {
    return null;
  }
}

export class NodeService {
  private service: Service | undefined;
  private listing: { at: number; actors: ActiveActor[] } | undefined;
  private readonly journalReads: Limiter;

  constructor(private readonly options: NodeServiceOptions) {
    this.journalReads = new Limiter(options.maxJournalInspections ?? 2);
  }

  async start(): Promise<void> {
    const { nc, nodeId, stats, registry } = this.options;
    // @nats-io/services 3.0.0-25 (the newest) types against its own nats-core pre-release;
    // the connection is the same object at run time.
    this.service = await new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]).add({
      name: SERVICE_NAME,
      version: packageVersion(),
      description: 'ppos runtime node: durable, exactly-once actors over NATS and PostgreSQL',
      metadata: { node: nodeId },
      // No default queue group: the node listings are scatter-gather, every node answers.
      queue: '',
      // `nats micro stats` shows the node's own counters on the stats endpoint.
      statsHandler: async (endpoint) => (endpoint.subject === `${NODES_SUBJECT}.stats` ? stats.snapshot(registry) : null),
    });
    this.service.addEndpoint('inspect', {
      subject: `${INSPECT_SUBJECT_PREFIX}.>`,
      queue: QUEUE_GROUP,
      metadata: { description: 'live view of one actor: ppos.inspect.<kind>.<id>' },
      handler: (error, msg) => this.onInspect(error, msg),
    });
    this.service.addEndpoint('inspect-node', {
      subject: `${inspectNodePrefix(nodeId)}.>`,
      metadata: { description: 'live view of one actor, answered by this node: ppos.node.<node id>.inspect.<kind>.<id>' },
      handler: (error, msg) => this.onInspect(error, msg, true),
    });
    this.service.addEndpoint('actors', {
      subject: `${NODES_SUBJECT}.actors`,
      metadata: { description: "this node's active actors with mailbox depths" },
      handler: (error, msg) => {
        if (error || !msg.reply) return;
        const limit = requestedLimit(msg.data);
        if (limit === null) {
          // A node with very many active actors lists more than one NATS message holds: it then
          // sends the busiest and most recent ones, with the total, and says so.
          respondWithin(
            msg,
            JSON.stringify({ node: nodeId, actors: registry.list() }),
            () => JSON.stringify({ node: nodeId, truncated: true, ...this.busiestActors(100) }),
            (failure) => this.options.logger.error({ err: failure.message }, 'could not send the actor listing'),
          );
          return;
        }
        respondWithin(
          msg,
          JSON.stringify({ node: nodeId, ...this.busiestActors(limit) }),
          () => JSON.stringify({ node: nodeId, truncated: true, ...this.busiestActors(Math.min(limit, 100)) }),
          (failure) => this.options.logger.error({ err: failure.message }, 'could not send the actor listing'),
        );
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

  /**
   * For pollers (the dashboard): the actors with mail waiting, then the most recently used,
   * at most `limit`, plus the total. The full listing behind it is taken at most once per
   * LISTING_TTL_MS however many dashboards poll, so watching a 100k-actor node costs it little.
   */
  private busiestActors(limit: number): { total: number; actors: ActiveActor[] } {
    const now = Date.now();
    if (!this.listing || now - this.listing.at > LISTING_TTL_MS) this.listing = { at: now, actors: this.options.registry.list() };
    const all = this.listing.actors;
    const waiting = all.filter((a) => a.mailboxDepth > 0).sort((a, b) => b.mailboxDepth - a.mailboxDepth);
    const picked = new Set(waiting.slice(0, limit));
    // list() is in recency order, least recently used first.
    for (let i = all.length - 1; i >= 0 && picked.size < limit; i -= 1) picked.add(all[i]!);
    return { total: all.length, actors: [...picked] };
  }

  async stop(): Promise<void> {
    await this.service?.stop().catch(() => undefined);
  }

  private onInspect(error: Error | null, msg: ServiceMsg, direct = false): void {
    if (error || !msg.reply) return;
    const { kinds, nodeId, registry, journal, stats, ownership, nc } = this.options;
    const subject = direct ? `${INSPECT_SUBJECT_PREFIX}${msg.subject.slice(inspectNodePrefix(nodeId).length)}` : msg.subject;
    const address = parseAddress(subject, kinds);
    if (typeof address === 'string') {
      msg.respondError(400, address, JSON.stringify(errorReply('BAD_REQUEST', address)));
      return;
    }
    const route = ownership?.route(address);
    if (!direct && route && !route.local && route.owner !== null && route.owner !== nodeId) {
      nc.publish(`${inspectNodePrefix(route.owner)}.${address.kind}.${address.id}`, msg.data, { reply: msg.reply });
      return;
    }
    stats.recordInspection();
    const kind = kinds.get(address.kind)!;
    // An active actor answers from memory at once; only passivated ones wait for a journal slot.
    const view = registry.activeHost(address)
      ? inspectActor(nodeId, registry, journal, kind, address)
      : this.journalReads.run(() => inspectActor(nodeId, registry, journal, kind, address));
    view.then(
      (inspection) =>
        respondWithin(
          msg,
          JSON.stringify(inspection),
          // What was left out is named, and its hash sent, so `ppos verify` still compares it.
          () =>
            JSON.stringify({
              ...inspection,
              context: { omitted: `context ${OMITTED_HINT}` },
              state: { omitted: `state ${OMITTED_HINT}` },
              omitted: ['context', 'state'],
              stateHash: stateHash({ value: inspection.value, context: inspection.context as Record<string, unknown> }),
            }),
          (failure) => this.options.logger.error({ subject: msg.subject, err: failure.message }, 'could not send an inspection'),
        ),
      (failure: Error) => {
        const reply = errorReply('UNAVAILABLE', `inspection failed: ${failure.message}`);
        try {
          msg.respondError(503, reply.ok ? '' : reply.error.message, JSON.stringify(reply));
        } catch (error) {
          // The connection is closing: nobody to answer. Thrown here it would be an unhandled rejection.
          this.options.logger.warn({ subject: msg.subject, err: (error as Error).message }, 'could not send an inspection failure');
        }
      },
    );
  }
}
