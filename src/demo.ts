// `ppos demo`: the main job on embedded defaults. Starts what it needs (PostgreSQL, NATS if
// none answers, a node process), drives a realistic concurrent workload with deliberate
// duplicate deliveries, kills the node with SIGKILL half-way and restarts it, then proves
// from the journal that every acknowledged command took effect exactly once.
import stringify from 'safe-stable-stringify';
import type { Logger } from 'pino';
import { actorKinds } from '../actors/index.js';
import type { DomainEvent } from '../actors/kind.js';
import type { ActorRef } from '../persistence/journal.js';
import type { Reply } from '../runtime/envelope.js';
import { crossActorChecks } from '../runtime/cross-checks.js';
import { verifyJournals, type EvidenceRecord } from '../runtime/verify.js';
import { NoAnswerError, PposClient } from './client.js';
import { newId, resolveConfig, type RawOptions } from './config.js';
import { openJournal } from './database.js';
import { printJson, table } from './format.js';
import { createLogger } from './logger.js';
import { findNatsServer, PrivateNatsServer } from './nats-server.js';
import { describeServers, NatsConnectError, natsSettings, type NatsSettings } from './nats.js';
import { Random } from './random.js';
import { NodeProcess } from './spawn.js';
import { driveWorkOrders, type WorkOrderTally } from './demo-workorders.js';
import { demoProjections, type DemoProjections } from './demo-projections.js';

export interface DemoOptions {
  readonly raw: RawOptions;
  readonly skus: number;
  readonly commands: number;
  readonly workOrders: number;
  readonly seed: number;
  readonly json: boolean;
  readonly pretty: boolean;
}

export interface DemoSummary {
  ok: boolean;
  seed: number;
  run: string;
  skus: number;
  commandsSent: number;
  duplicateDeliveriesSent: number;
  duplicatesSuppressed: number;
  retries: number;
  rejectionsByReason: Record<string, number>;
  eventsJournaled: number;
  crash: { killedAfterCommands: number; recoveryMs: number };
  workOrders: WorkOrderTally | null;
  exactlyOnce: { checked: number; missing: number; doubled: number };
  liveMatchesJournal: boolean;
  evidence: EvidenceRecord;
  /** The eventual side: a query across SKUs, the read model against the actors, each projection's lag. */
  projections: DemoProjections;
  seconds: number;
  commandsPerSecond: number;
}

/** Stderr progress: one rewritten line on a terminal, a line every few seconds otherwise. */
class Progress {
  private last = 0;
  constructor(private readonly quiet: boolean) {}
  update(text: string, force = false): void {
    if (this.quiet) return;
    const now = Date.now();
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
    else if (force || now - this.last > 2_000) {
      process.stderr.write(`${text}\n`);
      this.last = now;
    }
  }
  line(text: string): void {
    if (this.quiet) return;
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${text}\n`);
  }
}

async function natsFor(settings: NatsSettings, progress: Progress): Promise<{ settings: NatsSettings; server?: PrivateNatsServer }> {
  const where = describeServers(settings);
  try {
    const probe = await PposClient.connect(settings, 'ppos-demo-probe', 1_000);
    await probe.close();
    return { settings };
  } catch (error) {
    // A server that answers but refuses us (credentials, TLS) is a mistake to report, not to work around.
    if (error instanceof NatsConnectError) throw error;
    if (!findNatsServer()) {
      throw new Error(
        `no NATS answers at ${where}, and nats-server is not on PATH. Get one with ` +
          '`apt-get install nats-server` (then `nats-server -js`), or `docker compose up -d nats`, ' +
          'or point --nats / PPOS_NATS_URL at a running server',
      );
    }
    const server = await PrivateNatsServer.start();
    progress.line(`no NATS at ${where}: started a private nats-server at ${server.url} for this demo`);
    return { settings: natsSettings({ nats: server.url }, {}), server };
  }
}

async function waitForNode(client: PposClient, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if ((await client.gather('stats', 200)).length > 0) return;
  }
  throw new Error('the demo node did not come up');
}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const started = performance.now();
  const progress = new Progress(false);
  const logger: Logger = createLogger({ pretty: options.pretty, level: process.env.PPOS_LOG_LEVEL ?? 'warn' });
  const config = resolveConfig(options.raw);
  const random = new Random(options.seed);
  const run = newId().slice(-6).toLowerCase();
  progress.line(`ppos demo: run ${run}, seed ${options.seed}`);

  const opened = await openJournal(config, logger, { poolSize: 4 });
  const databaseUrl = config.databaseUrl ?? opened.embedded!.url;
  progress.line(opened.embedded ? `journal: embedded PostgreSQL in ${opened.embedded.dataDir}` : 'journal: PostgreSQL from --db');
  const nats = await natsFor(config.nats, progress);
  const client = await PposClient.connect(nats.settings, 'ppos-demo');
  const nodeLogs: string[] = [];
  const launch = (): NodeProcess =>
    new NodeProcess({
      nats: nats.settings,
      databaseUrl,
      // The same id after the crash: the restarted node takes its shard leases back at once.
      nodeId: `demo-${run}`,
      args: ['--snapshot-every', '25'],
      onLog: (line) => {
        if (nodeLogs.length < 200) nodeLogs.push(line);
      },
    });
  let node = launch();
  try {
    await node.ready;
    await waitForNode(client, 10_000);
    progress.line(`node ${node.options.nodeId} up (pid ${node.pid})`);

    const skus = Array.from({ length: options.skus }, (_, i) => `sku-${run}-${String(i).padStart(4, '0')}`);
    const acked = new Map<string, { ref: ActorRef; events: readonly DomainEvent[] }>();
    const rejections: Record<string, number> = {};
    let sent = 0;
    let duplicateDeliveries = 0;
    let duplicatesSuppressed = 0;
    let retries = 0;
    let done = 0;
    let lastToken: string | undefined;

    const deliver = async (ref: ActorRef, type: string, payload: Record<string, unknown>, messageId = newId()): Promise<Reply> => {
      sent += 1;
      const reply = await client.sendWithRetry(ref.kind, ref.id, type, payload, {
        messageId,
        timeoutMs: 2_000,
        deadlineMs: 60_000,
        onRetry: () => {
          retries += 1;
        },
      });
      if (reply.duplicate) duplicatesSuppressed += 1;
      if (reply.ok) {
        if (reply.token !== undefined) lastToken = reply.token;
        const first = acked.get(messageId);
        // A repeat must carry exactly the events of the first reply: same id, same effect.
        if (first && stringify(first.events) !== stringify(reply.events)) throw new Error(`message ${messageId} answered differently`);
        acked.set(messageId, { ref, events: reply.events });
      } else if (!reply.duplicate) {
        const key = reply.error.reason ?? reply.error.code;
        rejections[key] = (rejections[key] ?? 0) + 1;
      }
      return reply;
    };

    // Phase 1: stock arrives.
    await pool(skus, 64, async (sku) => {
      await deliver({ kind: 'inventory', id: sku }, 'Receive', { qty: random.int(20, 200) });
    });
    progress.line(`received stock for ${skus.length} SKUs`);

    // Phase 2: a few thousand concurrent reserve/release/consume commands on skewed SKUs,
    // some delivered twice or more (at-least-once), with a SIGKILL of the node half-way.
    const open: { sku: string; reservationId: string }[] = [];
    const plan = Array.from({ length: options.commands }, (_, i) => i);
    const killAt = Math.floor(options.commands / 2);
    let crash = { killedAfterCommands: 0, recoveryMs: 0 };
    let crashing: Promise<void> | null = null;
    await pool(plan, 64, async (i) => {
      if (i === killAt && !crashing) {
        crashing = (async () => {
          progress.line(`SIGKILL node ${node.options.nodeId} after ${done} commands, mid-flight`);
          await node.crash();
          const restarted = performance.now();
          node = launch();
          await node.ready;
          // Recovery ends when an actor answers again from its rebuilt state.
          await client.sendWithRetry('inventory', skus[0]!, 'Get', undefined, { deadlineMs: 30_000 });
          crash = { killedAfterCommands: done, recoveryMs: Math.round(performance.now() - restarted) };
          progress.line(`node ${node.options.nodeId} recovered in ${crash.recoveryMs} ms; the clients kept retrying with the same ids`);
        })();
      }
      const sku = skus[random.skewed(skus.length)]!;
      const ref = { kind: 'inventory', id: sku };
      const roll = random.next();
      let type: string;
      let payload: Record<string, unknown>;
      if (roll < 0.5 || open.length === 0) {
        const reservationId = `r-${newId()}`;
        type = 'Reserve';
        payload = { reservationId, qty: random.int(1, 8) };
        open.push({ sku, reservationId });
      } else {
        const index = random.int(0, open.length - 1);
        const target = open.splice(index, 1)[0]!;
        type = roll < 0.75 ? 'Release' : 'Consume';
        payload = { reservationId: target.reservationId };
        ref.id = target.sku;
      }
      const messageId = newId();
      const copies = random.chance(0.12) ? random.int(2, 4) : 1;
      duplicateDeliveries += copies - 1;
      await Promise.all(
        Array.from({ length: copies }, async (_, copy) => {
          if (copy > 0) await new Promise((resolve) => setTimeout(resolve, random.int(0, 50)));
          await deliver(ref, type, payload, messageId);
        }),
      );
      done += 1;
      progress.update(`commands ${done}/${options.commands}  duplicates suppressed ${duplicatesSuppressed}  retries ${retries}`);
    });
    if (crashing) await crashing;
    progress.line(`commands ${done}/${options.commands} done`);

    // Phase 3: work orders through their whole life (release saga, shortages, completion).
    const workOrders = actorKinds.has('workorder')
      ? await driveWorkOrders({ client, random, run, skus, count: options.workOrders, deliver, progress: (t) => progress.line(t) })
      : null;

    // Phase 4: evidence. Every acknowledged command's events are in the journal exactly once.
    progress.line('verifying: replaying every journal of this run and checking invariants');
    const runActors = new Map<string, ActorRef>();
    for (const { ref } of acked.values()) runActors.set(`${ref.kind}/${ref.id}`, ref);
    let checked = 0;
    let missing = 0;
    let doubled = 0;
    let eventsJournaled = 0;
    let liveMatches = true;
    const liveAvailable = new Map<string, number>();
    const expectedByActor = new Map<string, Map<string, number>>();
    for (const [messageId, { ref, events }] of acked) {
      const key = `${ref.kind}/${ref.id}`;
      const expected = expectedByActor.get(key) ?? new Map<string, number>();
      // A command journals at most one event under its own id; a saga's reply also lists the
      // answers it collected, which carry their own ids.
      expected.set(messageId, events.length > 0 ? 1 : 0);
      expectedByActor.set(key, expected);
    }
    for (const [key, ref] of runActors) {
      const journaled = await opened.journal.readEvents(ref, 0);
      eventsJournaled += journaled.length;
      const byMessage = new Map<string, number>();
      for (const e of journaled) byMessage.set(e.messageId, (byMessage.get(e.messageId) ?? 0) + 1);
      for (const [messageId, count] of expectedByActor.get(key) ?? []) {
        checked += 1;
        const found = byMessage.get(messageId) ?? 0;
        if (found < count) missing += 1;
        if (found > count) doubled += 1;
      }
      if (ref.kind === 'inventory') {
        const live = await client.sendWithRetry(ref.kind, ref.id, 'Get', undefined, { deadlineMs: 10_000 });
        if (!live.ok || live.seq !== journaled.length) liveMatches = false;
        if (live.ok) liveAvailable.set(ref.id, (live.state as { available: number }).available);
      }
    }
    const evidence = await verifyJournals({
      journal: opened.journal,
      kinds: actorKinds,
      actors: [...runActors.values()],
      crossChecks: crossActorChecks(actorKinds),
      duplicatesAnswered: () => opened.journal.duplicatesAnswered(),
    });
    // Phase 5: the eventual side, read across actors from the projections.
    progress.line(`projections: which SKUs have fewer than 10 available? (read-your-writes with the last command's token)`);
    const projections = await demoProjections({ client, pool: opened.journal.first.pool, run, liveAvailable, lastToken });
    const seconds = (performance.now() - started) / 1000;
    const summary: DemoSummary = {
      ok: missing === 0 && doubled === 0 && liveMatches && evidence.confidence_status === 'trusted' && projections.matchesActors,
      seed: options.seed,
      run,
      skus: skus.length,
      commandsSent: sent,
      duplicateDeliveriesSent: duplicateDeliveries,
      duplicatesSuppressed,
      retries,
      rejectionsByReason: rejections,
      eventsJournaled,
      crash,
      workOrders,
      exactlyOnce: { checked, missing, doubled },
      liveMatchesJournal: liveMatches,
      evidence,
      projections,
      seconds: Math.round(seconds * 10) / 10,
      commandsPerSecond: Math.round(sent / seconds),
    };
    printSummary(summary, options.json);
    return summary;
  } catch (error) {
    if (error instanceof NoAnswerError || error instanceof Error) {
      progress.line(`demo failed: ${error.message}`);
      const tail = nodeLogs.slice(-5);
      if (tail.length > 0) progress.line(`last node log lines:\n${tail.join('\n')}`);
    }
    throw error;
  } finally {
    await node.stop().catch(() => undefined);
    await client.close();
    await nats.server?.stop();
    await opened.close();
  }
}

function printSummary(s: DemoSummary, json: boolean): void {
  if (json) {
    printJson(s);
    return;
  }
  const rejections = Object.entries(s.rejectionsByReason)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  const rows: [string, unknown][] = [
    ['commands sent (incl. repeats)', s.commandsSent],
    ['duplicate deliveries sent', s.duplicateDeliveriesSent],
    ['duplicates suppressed', s.duplicatesSuppressed],
    ['client retries (same message id)', s.retries],
    ['rejections by reason', rejections || 'none'],
    ['events journaled', s.eventsJournaled],
    ['node SIGKILLed after', `${s.crash.killedAfterCommands} commands`],
    ['recovery time', `${s.crash.recoveryMs} ms`],
  ];
  if (s.workOrders) {
    rows.push(['work orders', Object.entries(s.workOrders).map(([k, v]) => `${k} ${v}`).join(', ')]);
  }
  rows.push(
    ['acknowledged commands checked', s.exactlyOnce.checked],
    ['  missing from journal', s.exactlyOnce.missing],
    ['  applied twice', s.exactlyOnce.doubled],
    ['live state = journal', s.liveMatchesJournal ? 'yes' : 'NO'],
    ['invariants (ppos verify)', `${s.evidence.confidence_status} (${s.evidence.checks.length} checks, ${s.evidence.reconciliation_failures.length} failures)`],
    [
      `ppos query stock --available-below ${s.projections.lowStock.below}`,
      `${s.projections.lowStock.count} of this run's SKUs${s.projections.lowStock.first.length > 0 ? ` (${s.projections.lowStock.first.join(', ')}${s.projections.lowStock.count > s.projections.lowStock.first.length ? ', ...' : ''})` : ''}`,
    ],
    ['ppos query workorders', Object.entries(s.projections.workOrdersByStatus).map(([status, n]) => `${status} ${n}`).join(', ') || 'none'],
    ['stock projection = actors', s.projections.matchesActors ? 'yes' : `NO: ${s.projections.mismatches.join('; ')}`],
    ...s.projections.lags.map((lag): [string, unknown] => [`lag of ${lag.name}`, `${lag.lagMs} ms, ${lag.lagEvents} events behind (budget ${lag.budgetMs} ms): ${lag.status}`]),
    ['time', `${s.seconds} s (${s.commandsPerSecond} commands/s end to end)`],
  );
  process.stdout.write(`\n${table(['ppos demo summary', ''], rows)}\n`);
  process.stdout.write(s.ok ? '\nresult: OK, nothing lost, nothing applied twice\n' : '\nresult: FAILED, see above\n');
}

/** Runs `work` over `items` with at most `concurrency` at once. */
export async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++]!;
        await work(item);
      }
    }),
  );
}
