// One runtime node: journal + registry + NATS router, and an orderly drain on stop.
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { actorKinds } from '../actors/index.js';
import type { ActorKind } from '../actors/kind.js';
import type { Journal } from '../persistence/journal.js';
import type { Ownership } from '../runtime/ownership.js';
import { ClusterOwnership } from '../runtime/cluster.js';
import { LeaseStore } from '../persistence/leases.js';
import { withinMs } from '../persistence/time-limit.js';
import { ActorRegistry } from '../runtime/registry.js';
import { Router } from '../runtime/router.js';
import { NodeService } from '../runtime/service.js';
import { NodeStats } from '../runtime/stats.js';
import type { Reply } from '../runtime/envelope.js';
import { SagaRunner } from '../runtime/saga-runner.js';
import { TimerService } from '../runtime/timer-service.js';
import { traceHeaders } from '../runtime/tracing.js';
import { startHttpEndpoint, type HttpEndpoint } from '../runtime/http-endpoint.js';
import { NodeMetrics } from '../runtime/metrics.js';
import { projectionReports } from '../runtime/projection-status.js';
import { packageVersion } from '../runtime/service.js';
import { CLUSTER_CHANGED_SUBJECT, eventsSubject, stepSubject } from '../runtime/subjects.js';
import { ProjectionStore } from '../persistence/projection-store.js';
import { readOrderProblem } from '../persistence/journal-feed.js';
import { builtInProjections } from '../persistence/projections/index.js';
import { JournalExport, EXPORT_NAME } from '../runtime/journal-export.js';
import { ProjectionRunner, projectionFollower, type Follower } from '../runtime/projection-runner.js';
import { QueryService } from '../runtime/query-service.js';
import { logRecoveryEvidence, type NodeRecoveryEvidence } from '../runtime/recovery-evidence.js';
import type { ActorRef } from '../persistence/journal.js';
import { PposClient } from './client.js';
import { newId, type NodeConfig } from './config.js';
import { openJournal, type OpenedJournal } from './database.js';
import { connectNats, describeServers } from './nats.js';

export interface RunningNode {
  readonly nodeId: string;
  /** This process's incarnation of the node id. */
  readonly incarnation: string;
  /**
   * Resolves, with why, if the node stopped on its own: another process took its node id over,
   * or NATS closed the connection for good (credentials revoked). `ppos start` then exits 1.
   */
  readonly halted: Promise<string>;
  readonly registry: ActorRegistry;
  readonly journal: Journal;
  readonly stats: NodeStats;
  readonly databaseUrl: string;
  /** The evidence record of this node's recovery at start (null if it could not be gathered). */
  readonly recoveryEvidence: Promise<NodeRecoveryEvidence | null>;
  /** Shard ownership (absent when a test injected its own). */
  readonly cluster: ClusterOwnership | undefined;
  /** Where /metrics, /healthz and /readyz are served (with `--http`). */
  readonly httpUrl: string | undefined;
  /** Stops taking messages, finishes those in mailboxes, then closes NATS and the journal. */
  stop(): Promise<void>;
}

export interface NodeDependencies {
  readonly kinds?: ReadonlyMap<string, ActorKind>;
  readonly ownership?: Ownership;
}

export async function startNode(config: NodeConfig, rootLogger: Logger, deps: NodeDependencies = {}): Promise<RunningNode> {
  const startedAt = performance.now();
  const incarnation = newId();
  const logger = rootLogger.child({ node: config.nodeId, incarnation });
  let reportHalt: (why: string) => void = () => undefined;
  const halted = new Promise<string>((resolve) => {
    reportHalt = resolve;
  });
  const halt = (why: string): void => {
    void stopNode?.().finally(() => reportHalt(why));
  };
  let stopNode: (() => Promise<void>) | undefined;
  let followersRef: ProjectionRunner | undefined;
  const kinds = deps.kinds ?? actorKinds;
  // Prometheus metrics, when the node serves an HTTP port (`--http`): set up below.
  let metrics: NodeMetrics | undefined;
  const opened: OpenedJournal = await openJournal(config, logger, {
    // Every commit in flight holds a connection; reads (activation, inspection) need a few more,
    // and each follower of the journal one while it applies a batch.
    poolSize: Math.max(8, config.commitInFlight + 4) + config.followers.length,
    groupCommit: {
      maxBatch: config.commitBatch,
      lingerMs: config.commitLingerMs,
      maxInFlight: config.commitInFlight,
      onFlushed: (size, ms) => metrics?.recordCommit(size, ms),
    },
  });
  const journal = opened.journal;
  const firstPool = journal.first.pool;
  const sources = journal.sources;
  const misordered = await firstProblem(journal.parts, (part) =>
    readOrderProblem(part.pool).catch((error: Error) => `cannot check the journal's read order: ${error.message}`),
  );
  if (misordered !== null) {
    await opened.close();
    throw new Error(`refusing to start: ${misordered}`);
  }
  // Filled in below: ownership, the saga runner and the registry need each other.
  let registryRef: ActorRegistry | undefined;
  let resumeRef: (() => Promise<unknown>) | undefined;
  let announceChange: (() => void) | undefined;
  const cluster =
    deps.ownership === undefined
      ? new ClusterOwnership({
          nodeId: config.nodeId,
          incarnation,
          leases: new LeaseStore({ membership: firstPool, journals: journal.sources }, { answerWithinMs: Math.max(200, Math.floor(config.leaseMs / 4)) }),
          shardCount: config.shardCount,
          leaseMs: config.leaseMs,
          renewMs: Math.max(200, Math.floor(config.leaseMs / 3)),
          logger,
          onAcquired: () => void resumeRef?.(),
          onChanged: () => announceChange?.(),
          onReplaced: halt,
          unload: async (shards) => {
            await registryRef?.unloadWhere((ref) => shards.has(cluster!.shardOf(ref)));
          },
        })
      : undefined;
  const ownership: Ownership = deps.ownership ?? cluster!;
  let nc: NatsConnection;
  // The export publishes a batch of hundreds of messages at once and awaits their acks: on a
  // connection of its own, so command replies never queue behind a batch on the node's socket.
  let exportNc: NatsConnection | undefined;
  try {
    nc = await connectNats(config.nats, `ppos-node-${config.nodeId}`, logger);
  } catch (error) {
    await opened.close();
    throw error;
  }
  try {
    if (config.followers.includes(EXPORT_NAME)) exportNc = await connectNats(config.nats, `ppos-export-${config.nodeId}`, logger);
  } catch (error) {
    await nc.close().catch(() => undefined);
    await opened.close();
    throw error;
  }
  const stats = new NodeStats(config.nodeId);
  const sagaClient = new PposClient(nc);
  const sagas = new SagaRunner({
    logger,
    owns: (ref) => ownership.route(ref).local,
    // On the node-only step subject: the only place the runtime's reserved ids are accepted.
    send: (step, context) =>
      sagaClient.request(
        stepSubject(step.kind, step.id),
        JSON.stringify({ id: step.messageId, type: step.type, payload: step.payload, correlationId: context.correlationId, causationId: context.causationId }),
        3_000,
        traceHeaders(context.trace.context),
      ),
    deliver: (ref, envelope, trace) =>
      new Promise<Reply | null>((resolve) => registryRef!.dispatch(ref, { envelope, receivedAt: new Date(), internal: true, trace }, resolve)),
    lastCause: async (host) => {
      const [last] = await journal.readEvents(host.ref, host.seq - 1, host.seq);
      return last && { messageId: last.messageId, correlationId: last.correlationId, traceparent: last.traceparent };
    },
  });
  const registry = new ActorRegistry({
    kinds,
    logger,
    mailboxCapacity: config.mailboxCapacity,
    idleMs: config.passivateAfterMs,
    maxActive: config.maxActiveActors,
    onActivated: (host) => sagas.ensure(host),
    busyOutside: (ref) => sagas.busy(ref),
    host: {
      journal,
      logger,
      snapshotEvery: config.snapshotEvery,
      recentReplies: 256,
      fence: (ref) => ownership.fence(ref),
      metrics: stats.hostMetrics,
      onCommitted: (host, commit) => {
        sagas.ensure(host);
        if (commit.event) followersRef?.nudge();
        // Watchers (`ppos watch`, the dashboard) follow journaled events live; core NATS,
        // fire and forget: the journal, not this feed, is the record.
        if (commit.event) {
          nc.publish(
            eventsSubject(host.ref.kind, host.ref.id),
            JSON.stringify({ node: config.nodeId, kind: host.ref.kind, id: host.ref.id, seq: commit.seq, event: commit.event, messageId: commit.messageId, recordedAt: commit.recordedAt }),
          );
        }
      },
    },
  });
  registryRef = registry;
  registry.start();
  /** A start that fails part-way lets go of what it holds: timers, connections, the pool. */
  const abandonStart = async (): Promise<void> => {
    registry.stop();
    await followersRef?.stop().catch(() => undefined);
    await nc.close().catch(() => undefined);
    await exportNc?.close().catch(() => undefined);
    await opened.close();
  };
  if (cluster) {
    try {
      await cluster.start();
    } catch (error) {
      await abandonStart();
      throw error;
    }
    // Membership changes (a node joined, handed over or left) run everyone's lease cycle soon
    // (rate-limited in the cluster: a flood of notices costs one cycle per interval). Another
    // process with this very node id is told too: that is how it learns it was replaced.
    nc.subscribe(CLUSTER_CHANGED_SUBJECT, {
      callback: (_error, msg) => {
        if (msg.string() !== incarnation) cluster.nudge();
      },
    });
    announceChange = () => {
      if (!nc.isClosed()) nc.publish(CLUSTER_CHANGED_SUBJECT, incarnation);
    };
    announceChange();
  }
  const projectionStore = new ProjectionStore(firstPool);
  const router = new Router({ nodeId: config.nodeId, incarnation, nc, kinds, registry, journal, ownership, logger, stats });
  router.start();
  const service = new NodeService({
    nodeId: config.nodeId,
    incarnation,
    nc,
    kinds,
    registry,
    journal,
    stats,
    logger,
    ownership,
    sagaAlarms: (ref) => sagas.alarmsOf(ref),
    queries: new QueryService(firstPool, projectionStore, builtInProjections, sources),
  });
  try {
    await service.start();
  } catch (error) {
    await router.stop();
    await abandonStart();
    throw error;
  }
  // The journal's followers (projections, the export to JetStream): each run by one node at a time.
  const followers: Follower[] = config.followers.map((name) =>
    name === EXPORT_NAME ? new JournalExport(exportNc!, config.nats.inboxPrefix) : projectionFollower(builtInProjections.get(name)!),
  );
  const runner = new ProjectionRunner({
    pool: firstPool,
    sources,
    store: projectionStore,
    followers,
    budgets: new Map(config.followers.map((name) => [name, config.lagBudgets.get(name) ?? 2_000])),
    nodeId: config.nodeId,
    incarnation,
    leaseMs: config.leaseMs,
    logger,
  });
  followersRef = runner;
  if (followers.length > 0) {
    try {
      await runner.start();
    } catch (error) {
      await service.stop();
      await router.stop();
      await abandonStart();
      throw error;
    }
  }
  let timersRef: TimerService | undefined;
  let draining = false;
  let http: HttpEndpoint | undefined;
  if (config.http) {
    metrics = new NodeMetrics(
      { node: config.nodeId, version: packageVersion() },
      {
        activeActors: () => registry.size,
        mailboxDepth: () => registry.totalMailboxDepth(),
        shardsOwned: () => ownership.heldShards().length,
        // The lag's age only: a scrape does not count the events waiting.
        projectionLags: async () => new Map((await projectionReports(firstPool, 1, sources)).map((r) => [r.name, r.lagMs])),
        timersFired: () => timersRef?.fired ?? 0,
        timersOverdue: () => journal.overdueTimers(ownership.heldShards(), Date.now(), 100_000),
      },
    );
    stats.metrics = metrics;
    http = await startHttpEndpoint(config.http.host, config.http.port, metrics, {
      notReady: async () => {
        if (draining) return 'draining';
        if (nc.isClosed()) return 'the NATS connection is closed';
        if (exportNc?.isClosed()) return "the export's NATS connection is closed";
        if (!(await within(1_000, nc.flush()))) return 'NATS does not answer';
        // The first database: membership and the read models. Another database away costs only
        // its shards (their commands answer UNAVAILABLE); the node still serves the rest.
        if (!(await within(1_000, firstPool.query('SELECT 1')))) return journal.parts.length === 1 ? 'PostgreSQL does not answer' : 'the first journal database does not answer';
        if (ownership.heldShards().length === 0) return 'this node holds no shard';
        return null;
      },
    }).catch(async (error: Error) => {
      await service.stop();
      await router.stop();
      await abandonStart();
      throw new Error(`--http ${config.http!.host}:${config.http!.port}: ${error.message}`);
    });
    logger.info({ http: http.url }, 'serving /metrics, /healthz and /readyz');
  }
  await nc.flush();
  logger.info({ nats: describeServers(config.nats), embedded: opened.embedded !== undefined, snapshotEvery: config.snapshotEvery }, 'node started');

  // Sagas left open by a crash resume on their own: now, and periodically (a saga whose
  // owner died elsewhere, or whose actor was dropped after a journal outage).
  const resumeOpenSagas = async (): Promise<ActorRef[]> => {
    let open: ActorRef[];
    try {
      open = await journal.openSagas();
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'could not list open sagas; will retry');
      return [];
    }
    const resumed: ActorRef[] = [];
    for (const ref of open) {
      if (!kinds.has(ref.kind) || !ownership.route(ref).local) continue;
      if (registry.activeHost(ref) && sagas.busy(ref)) continue;
      await registry.activate(ref).catch(() => undefined);
      const live = registry.activeHost(ref);
      if (live) {
        sagas.ensure(live.host);
        resumed.push(ref);
      }
    }
    if (open.length > 0) logger.info({ openSagas: open.length }, 'open sagas resumed');
    return resumed;
  };
  // One evidence record for this recovery: the actors brought back at start, checked against
  // their journals (not every actor: startup stays fast however large the journal).
  const recoveryEvidence = resumeOpenSagas().then((resumed) => logRecoveryEvidence({ journal, kinds, registry, resumed, startedAt, logger }));
  // Shards taken over later (a node died, or handed them over) are a recovery too: their
  // resumed sagas get an evidence record of their own.
  resumeRef = async () => {
    const takeoverStarted = performance.now();
    const resumed = await resumeOpenSagas();
    if (resumed.length > 0) await logRecoveryEvidence({ journal, kinds, registry, resumed, startedAt: takeoverStarted, logger });
  };
  // Durable timers (a hold's deadline): the due ones of the shards this node holds.
  const timers = (timersRef = new TimerService({
    journal,
    logger,
    heldShards: () => ownership.heldShards(),
    pollMs: config.timerPollMs,
    deliver: (timer, envelope) =>
      new Promise<Reply | null>((resolve) => registry.dispatch(timer.ref, { envelope, receivedAt: new Date(), internal: true }, resolve)),
  }));
  timers.start();
  const resumer = setInterval(() => void resumeOpenSagas(), config.sagaResumeIntervalMs);
  resumer.unref();

  // Dedupe retention (off by default): forget settled message ids older than the window.
  const prune = async (): Promise<void> => {
    if (config.dedupeRetentionHours === undefined) return;
    try {
      const removed = await journal.pruneDedupe(config.dedupeRetentionHours);
      if (removed > 0) logger.info({ removed, olderThanHours: config.dedupeRetentionHours }, 'expired dedupe records removed');
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'dedupe pruning failed; will retry');
    }
  };
  const pruner = config.dedupeRetentionHours === undefined ? undefined : setInterval(() => void prune(), 10 * 60_000);
  pruner?.unref();
  void prune();

  let stopping: Promise<void> | undefined;
  const running: RunningNode = {
    nodeId: config.nodeId,
    incarnation,
    halted,
    registry,
    journal,
    stats,
    databaseUrl: opened.embedded?.url ?? config.databaseUrl ?? '',
    recoveryEvidence,
    cluster,
    httpUrl: http?.url,
    stop() {
      stopping ??= (async () => {
        draining = true;
        logger.info('draining: no new messages, finishing in-flight ones');
        clearInterval(resumer);
        if (pruner) clearInterval(pruner);
        await service.stop();
        await router.stop();
        await runner.stop();
        await timers.stop();
        sagas.stop();
        await registry.drain();
        if (cluster) {
          // Hand every shard over now (snapshots written, leases released), so the other nodes
          // take them at once instead of after lease expiry.
          await cluster.drain();
          announceChange?.();
        }
        registry.stop();
        await nc.drain().catch(() => undefined);
        await exportNc?.drain().catch(() => undefined);
        await opened.close();
        await http?.close();
        logger.info(stats.snapshot(registry), 'node stopped');
      })();
      return stopping;
    },
  };
  stopNode = () => running.stop();
  // Reconnecting for ever, nats.js gives up only when the server keeps refusing us (credentials
  // revoked or expired): a node that cannot be reached must not look alive.
  void nc.closed().then((error) => {
    if (stopping || !error) return;
    logger.error({ err: error.message }, 'NATS closed the connection for good; stopping');
    halt(`NATS closed the connection: ${error.message}`);
  });
  // The export's own connection likewise: a node that cannot publish must not hold the export's lease.
  void exportNc?.closed().then((error) => {
    if (stopping || !error) return;
    logger.error({ err: error.message }, "NATS closed the export's connection for good; stopping");
    halt(`NATS closed the export's connection: ${error.message}`);
  });
  return running;
}

/** Whether `work` succeeds within `ms`: false when it failed or is still pending. */
const within = (ms: number, work: Promise<unknown>): Promise<boolean> => withinMs(ms, work).then(
  () => true,
  () => false,
);

/** The first non-null answer of `check` over the databases, asked all at once. */
async function firstProblem<T>(parts: readonly T[], check: (part: T, index: number) => Promise<string | null>): Promise<string | null> {
  return (await Promise.all(parts.map(check))).find((problem) => problem !== null) ?? null;
}
