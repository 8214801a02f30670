// The chaos run: a fresh PostgreSQL database and a private nats-server, real `ppos start`
// children, a client workload with at-least-once retries, faults on a seeded schedule, and
// then the evidence: the driver's ledger against the journal, every saga settled, the real
// `ppos verify --all` trusted. Everything it started is stopped, even when it fails.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import pg from 'pg';
import { JOURNAL_TYPES } from '../persistence/pg-types.js';
import { ulid } from 'ulid';
import { databaseOfShard } from '../persistence/database-layout.js';
import { PgJournal } from '../persistence/pg-journal.js';
import { ShardedJournal } from '../persistence/sharded-journal.js';
import { shardOf } from '../runtime/sharding.js';
import type { EvidenceRecord } from '../runtime/verify.js';
import { PposClient } from '../src/client.js';
import { PrivateNatsServer } from '../src/nats-server.js';
import { Random } from '../src/random.js';
import { CLI_PATH } from '../src/spawn.js';
import { checkHolds, checkLedger, checkSagasSettled, type Invariant } from './checks.js';

/** How long past its deadline a hold may stay open while nodes run (timer polls, faults just healed). */
const HOLD_LATE_MS = 10_000;
import { checkStream, LagSampler, waitForFollowers } from './eventual.js';
import { FAULT_KINDS, FaultInjector, planFaults, type FaultKind, type FaultRecord } from './faults.js';
import { MULTI_NODE_READY, NodeSet } from './nodes.js';
import { Workload, type WorkloadStats } from './workload.js';

export interface ChaosOptions {
  readonly seed: number;
  readonly minutes: number;
  readonly nodes: number;
  /** Databases the journal spreads its shards over (default 1), all in the server of `pgAdminUrl`. */
  readonly databases?: number;
  /** A PostgreSQL URL allowed to CREATE DATABASE; the run gets its own database(s) there. */
  readonly pgAdminUrl?: string;
  /** Progress lines (stderr by default). */
  readonly log?: (line: string) => void;
  /** Aborting stops the workload and the faults at once and skips the checks; cleanup still runs. */
  readonly signal?: AbortSignal;
  /** Keep the run's database when the run fails, for forensics with plain SQL or `ppos history`. */
  readonly keepFailedDatabase?: boolean;
}

export interface Percentiles {
  readonly n: number;
  readonly p50: number | null;
  readonly p99: number | null;
}

export interface ChaosResult {
  ok: boolean;
  seed: number;
  minutes: number;
  nodes: number;
  databases: number;
  reproduce: string;
  workload: WorkloadStats;
  unacknowledged: number;
  unackedApplied: number;
  eventsJournaled: number;
  faults: Record<FaultKind, number>;
  recoveryMs: Record<FaultKind | 'all', Percentiles>;
  nodeStarts: number;
  nodeErrors: string[];
  invariants: Invariant[];
  evidence: EvidenceRecord | null;
  seconds: number;
  /** The run's database URL(s) when kept (a failed run with keepFailedDatabase). */
  keptDatabase: string | null;
}

export class ChaosUsageError extends Error {}

export const DEFAULT_PG_ADMIN_URL = process.env.PPOS_CHAOS_PG_URL ?? process.env.PPOS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Request timeouts drawn from this range; a paused node stays paused longer than the longest. */
const TIMEOUT_MS: readonly [number, number] = [300, 2_500];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number | null => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!);
  return { n: sorted.length, p50: at(0.5), p99: at(0.99) };
}

/** Runs the real CLI: `ppos verify --all` against the database, comparing live nodes too. */
async function cliVerify(databaseUrl: string, natsUrl: string): Promise<{ code: number | null; record: EvidenceRecord | null; output: string }> {
  // URLs through the environment, never the command line (they may carry passwords).
  const child = spawn(process.execPath, [CLI_PATH, 'verify', '--all'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PPOS_DATABASE_URL: databaseUrl, PPOS_NATS_URL: natsUrl },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const [code] = (await once(child, 'exit')) as [number | null];
  try {
    return { code, record: JSON.parse(stdout) as EvidenceRecord, output: stderr };
  } catch {
    return { code, record: null, output: `${stdout}\n${stderr}` };
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (!Number.isSafeInteger(options.seed) || options.seed < 0) throw new ChaosUsageError('--seed must be a whole number >= 0');
  if (!(options.minutes > 0)) throw new ChaosUsageError('--minutes must be > 0');
  if (!Number.isSafeInteger(options.nodes) || options.nodes < 1) throw new ChaosUsageError('--nodes must be a whole number >= 1');
  if (options.nodes > 1 && !MULTI_NODE_READY) {
    throw new ChaosUsageError(
      `--nodes ${options.nodes}: several nodes need fenced single ownership per actor (issue 6), which is not in this build yet; ` +
        'run with --nodes 1, or set MULTI_NODE_READY in chaos/nodes.ts once ownership with fencing has landed',
    );
  }
  const databases = options.databases ?? 1;
  if (!Number.isSafeInteger(databases) || databases < 1 || databases > 8) throw new ChaosUsageError('--databases must be a whole number from 1 to 8');
  const started = performance.now();
  const runMs = Math.round(options.minutes * 60_000);
  const reproduce =
    `npm run chaos -- --seed ${options.seed} --minutes ${options.minutes}${options.nodes > 1 ? ` --nodes ${options.nodes}` : ''}` +
    (databases > 1 ? ` --databases ${databases}` : '');
  log(`chaos: seed ${options.seed}, ${options.minutes} minute(s), ${options.nodes} node(s), ${databases} database(s); reproduce with: ${reproduce}`);

  const adminUrl = options.pgAdminUrl ?? DEFAULT_PG_ADMIN_URL;
  const runTag = `ppos_chaos_${options.seed}_${ulid().toLowerCase().slice(-8)}`;
  const dbNames = databases === 1 ? [runTag] : Array.from({ length: databases }, (_, i) => `${runTag}_d${i + 1}`);
  const databaseUrls = dbNames.map((name) => {
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return url.toString();
  });
  const databaseUrl = databaseUrls.join(',');
  // The shard count the nodes run with (the default): which database an actor lives in.
  const SHARDS = 256;
  const databaseOf = (ref: { kind: string; id: string }): number => databaseOfShard(shardOf(ref, SHARDS), { databases, shards: SHARDS });

  const nodeLogs = new Map<string, string[]>();
  const nodeErrors: string[] = [];
  const nodeEvidence: { node: string; evidence: EvidenceRecord }[] = [];
  const unexpectedExits: string[] = [];
  let nats: PrivateNatsServer | undefined;
  let nodes: NodeSet | undefined;
  let client: PposClient | undefined;
  let admins: pg.Pool[] = [];
  let journal: ShardedJournal | undefined;
  const dbCreated: string[] = [];
  let keep = false;
  // If the driver's own process exits abruptly: nothing stays paused or running.
  const emergency = (): void => {
    nodes?.destroySync();
    (nats as unknown as { child?: { kill(signal: string): void } } | undefined)?.child?.kill('SIGKILL');
  };
  const aborted = (): void => {
    if (options.signal?.aborted) throw new Error(`aborted (seed ${options.seed})`);
  };
  process.once('exit', emergency);
  try {
    const creator = new pg.Client({ connectionString: adminUrl });
    await creator.connect();
    try {
      for (const name of dbNames) {
        await creator.query(`CREATE DATABASE ${name}`);
        dbCreated.push(name);
      }
    } finally {
      await creator.end();
    }
    nats = await PrivateNatsServer.start();
    const knobs = new Random(options.seed ^ 0x2545f491);
    const args = ['--snapshot-every', String(knobs.int(3, 12)), '--passivate-after-ms', String(knobs.int(1_500, 8_000)), '--max-active', String(knobs.int(40, 120))];
    // Short leases with several nodes: a paused or cut-off owner loses its shards within a fault.
    const leaseMs = knobs.int(2_000, 4_000);
    if (options.nodes > 1) args.push('--lease-ms', String(leaseMs));
    nodes = new NodeSet({
      count: options.nodes,
      natsUrl: nats.url,
      databaseUrls,
      args,
      env: { PPOS_SAGA_RESUME_MS: '1000', PPOS_LOG_LEVEL: 'info' },
      onLog: (nodeId, line) => {
        const lines = nodeLogs.get(nodeId) ?? [];
        lines.push(line);
        if (lines.length > 60) lines.shift();
        nodeLogs.set(nodeId, lines);
        let entry: { level?: number; msg?: string; evidence?: EvidenceRecord; err?: { message?: string } | string; actor?: string };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          return; // not pino: e.g. the stack trace of a node dying, kept in nodeLogs above
        }
        if (entry.msg === 'recovery evidence' && entry.evidence) nodeEvidence.push({ node: nodeId, evidence: entry.evidence });
        else if ((entry.level ?? 0) >= 50 && nodeErrors.length < 20) {
          const why = typeof entry.err === 'string' ? entry.err : entry.err?.message;
          // Answering UNAVAILABLE while the database is cut is the faults working, not a bug.
          if (why && /^journal unavailable|terminating connection due to administrator command|Connection terminated/.test(why)) return;
          nodeErrors.push(`${nodeId}: ${entry.msg}${entry.actor ? ` (${entry.actor})` : ''}${why ? `: ${why}` : ''}`);
        }
      },
      onUnexpectedExit: (nodeId, code) => {
        unexpectedExits.push(`${nodeId} exited with ${code}`);
        log(`!! ${nodeId} exited on its own (code ${code}); last log lines:\n${(nodeLogs.get(nodeId) ?? []).slice(-30).join('\n')}`);
      },
    });
    log(`database${dbNames.length > 1 ? 's' : ''} ${dbNames.join(', ')}, nats ${nats.url}, nodes ${args.join(' ')}`);
    await nodes.start();
    admins = databaseUrls.map((url) => {
      const pool = new pg.Pool({ connectionString: url, max: 3, types: JOURNAL_TYPES });
      pool.on('error', () => undefined);
      return pool;
    });
    journal = new ShardedJournal(
      databaseUrls.map((url) => new PgJournal({ connectionString: url, poolSize: 2 })),
      SHARDS,
    );
    client = await PposClient.connect(nats.url, 'ppos-chaos');

    const workload = new Workload({
      client,
      seed: options.seed,
      clients: 10,
      skus: 24,
      timeoutMs: TIMEOUT_MS,
      commandDeadlineMs: 120_000,
      duplicateRate: 0.12,
      giveUpRate: 0.03,
      giveUpAfterMs: [300, 2_500],
      lateRate: 0.35,
      lateDelayMs: [2_000, 20_000],
    });
    await workload.seedStock();
    const probeRef = { kind: 'inventory', id: 'probe' };
    // An actor outside the last database (several databases): a cut of that database must not reach it.
    let elsewhereIndex = 0;
    while (databases > 1 && databaseOf({ kind: 'inventory', id: `probe-elsewhere-${elsewhereIndex}` }) === databases - 1) elsewhereIndex += 1;
    const elsewhereRef = { kind: 'inventory', id: `probe-elsewhere-${elsewhereIndex}` };
    const injector = new FaultInjector({
      nodes,
      nats,
      admins,
      probe: async () => (await workload.command(probeRef, 'Receive', { qty: 1 }, { duplicates: false, patient: true }))?.ok === true,
      // Answered while the cut lasts (the cut is lifted only after it), within a few seconds, or it counts as refused.
      probeElsewhere: async () => (await workload.command(elsewhereRef, 'Receive', { qty: 1 }, { duplicates: false, patient: true, deadlineMs: 3_000 }))?.ok === true,
      log,
    });
    const lags = new LagSampler(admins[0]!, admins);
    lags.start();
    const plan = planFaults(options.seed, Math.ceil(runMs / 1_000), options.nodes, TIMEOUT_MS[1], options.nodes > 1 ? leaseMs + 2_000 : 3_500, databases);
    const endAt = Date.now() + runMs;
    const running = workload.run();
    const progress = setInterval(() => {
      const s = workload.stats;
      log(`  ${Math.round((endAt - Date.now()) / 1000)} s left: ${s.commands} commands, ${s.acks} acks, ${s.retries} retries, ${s.duplicatesSuppressed} duplicates suppressed, ${injector.done.length} faults`);
    }, 15_000);
    progress.unref();
    const stopWorkload = setTimeout(() => workload.stop(), runMs);
    const onAbort = (): void => workload.stop();
    options.signal?.addEventListener('abort', onAbort);
    try {
      await injector.run(plan, () => Date.now() < endAt && !options.signal?.aborted);
      while (Date.now() < endAt && !options.signal?.aborted) await sleep(Math.min(250, endAt - Date.now()));
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      clearTimeout(stopWorkload);
      workload.stop();
    }
    // Every fault lifted (a node that died on its own is already being started again).
    for (const node of nodes.nodes) {
      for (const proxy of node.proxies) proxy.restore();
      nodes.resume(node);
      await node.process?.ready.catch(() => undefined);
    }
    log('workload stopped; waiting for in-flight commands and late duplicates');
    await running;
    clearInterval(progress);
    aborted();

    log('waiting for every saga to settle');
    const settleDeadline = Date.now() + 120_000;
    while ((await journal.openSagas()).length > 0 && Date.now() < settleDeadline) await sleep(250);

    log('waiting for the holds that are due to expire');
    const holdsDeadline = Date.now() + 30_000;
    let holds = await checkHolds(admins, HOLD_LATE_MS);
    while (!holds.ok && Date.now() < holdsDeadline) {
      await sleep(250);
      holds = await checkHolds(admins, HOLD_LATE_MS);
    }

    log('waiting for the projections and the export to catch up');
    const caughtUp = await waitForFollowers(admins, 60_000);
    lags.stop();

    log('checking: the ledger against the journal, sagas, ppos verify --all (projections included), the stream');
    const ledger = await checkLedger(admins, workload.ledger);
    const sagas = await checkSagasSettled(journal);
    const verified = await cliVerify(databaseUrl, nats.url);
    const stream = await checkStream(admins, nats.url);
    const crossing = databases > 1 ? await sagasAcrossDatabases(journal, databaseOf) : null;
    const exitCodes = await nodes.stopAll();

    const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, injector.done.filter((f) => f.kind === k).length])) as Record<FaultKind, number>;
    const recovery = (kind?: FaultKind): Percentiles =>
      percentiles(injector.done.filter((f) => (kind === undefined || f.kind === kind) && f.recoveryMs !== null).map((f) => f.recoveryMs!));
    const unrecovered = injector.done.filter((f) => f.recoveryMs === null).map((f) => `${f.kind} on ${f.node}`);
    const suspectEvidence = nodeEvidence.filter((e) => e.evidence.confidence_status !== 'trusted');
    const verifyFailures = verified.record?.reconciliation_failures.map((f) => `${f.check} ${f.actor ?? ''} ${f.detail}`) ?? [verified.output.trim().slice(0, 300)];
    const invariants: Invariant[] = [
      ...ledger.invariants,
      sagas,
      holds,
      {
        name: 'verify_all_trusted',
        ok: verified.code === 0 && verified.record?.confidence_status === 'trusted',
        detail:
          verified.code === 0 && verified.record
            ? `ppos verify --all: trusted, ${verified.record.actors} actors, ${verified.record.events_processed} events, ${verified.record.checks.length} checks`
            : `ppos verify --all exited ${verified.code}: ${verifyFailures.slice(0, 5).join('; ')}`,
      },
      caughtUp,
      {
        name: 'projections_equal_journal_fold',
        ok: verified.record !== null && verified.record.projections_changed === 0 && verified.record.checks.includes('projections_match_journal'),
        detail:
          verified.record === null
            ? 'no evidence record'
            : `stock and workorders rebuilt from the journal: ${verified.record.projections_changed} row(s) differ from the live read models`,
      },
      stream,
      lags.recoveredAfterEach(injector.done),
      {
        name: 'node_recovery_evidence_trusted',
        ok: suspectEvidence.length === 0 && nodeEvidence.length > 0,
        detail:
          suspectEvidence.length === 0
            ? `${nodeEvidence.length} recovery evidence records, all trusted`
            : suspectEvidence
                .slice(0, 3)
                .map((e) => `${e.node}: ${e.evidence.reconciliation_failures.map((f) => `${f.check} ${f.actor ?? ''} ${f.detail}`).join(', ')}`)
                .join('; '),
      },
      { name: 'no_protocol_anomalies', ok: workload.stats.anomalies.length === 0, detail: workload.stats.anomalies.length === 0 ? 'no ID_REUSED, BAD_REQUEST or UNKNOWN_COMMAND for a correct client' : workload.stats.anomalies.slice(0, 5).join('; ') },
      { name: 'every_fault_recovered', ok: unrecovered.length === 0, detail: unrecovered.length === 0 ? `${injector.done.length} faults, the system answered after each` : `no answer after: ${unrecovered.join(', ')}` },
      ...(databases > 1 ? [cutsStayedLocal(injector.done), crossing!] : []),
      { name: 'no_node_died_on_its_own', ok: unexpectedExits.length === 0, detail: unexpectedExits.length === 0 ? 'only the faults killed nodes' : unexpectedExits.join('; ') },
      {
        name: 'nodes_drain_on_sigterm',
        ok: exitCodes.every((c) => c === 0),
        detail: exitCodes.every((c) => c === 0) ? 'every node drained and exited 0' : `exit codes ${exitCodes.join(', ')}`,
      },
    ];
    const result: ChaosResult = {
      ok: invariants.every((i) => i.ok),
      seed: options.seed,
      minutes: options.minutes,
      nodes: options.nodes,
      databases,
      reproduce,
      workload: workload.stats,
      unacknowledged: ledger.unackedApplied + ledger.unackedNotApplied,
      unackedApplied: ledger.unackedApplied,
      eventsJournaled: ledger.eventsJournaled,
      faults,
      recoveryMs: { ...(Object.fromEntries(FAULT_KINDS.map((k) => [k, recovery(k)])) as Record<FaultKind, Percentiles>), all: recovery() },
      nodeStarts: nodes.nodes.reduce((n, node) => n + node.starts, 0),
      nodeErrors,
      invariants,
      evidence: verified.record,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      keptDatabase: null,
    };
    if (!result.ok && options.keepFailedDatabase) {
      keep = true;
      result.keptDatabase = databaseUrl;
      log(`kept the database of this failed run: ${databaseUrl}`);
    }
    return result;
  } finally {
    process.removeListener('exit', emergency);
    await client?.close().catch(() => undefined);
    await nodes?.destroy().catch(() => undefined);
    await nats?.stop().catch(() => undefined);
    await journal?.close().catch(() => undefined);
    await Promise.all(admins.map((admin) => admin.end().catch(() => undefined)));
    if (dbCreated.length > 0 && !keep) {
      const dropper = new pg.Client({ connectionString: adminUrl });
      await dropper.connect();
      for (const name of dbCreated) await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await dropper.end();
    }
  }
}

/** Each database cut (several databases): every command to an actor of another database meanwhile was answered. */
function cutsStayedLocal(faults: readonly FaultRecord[]): Invariant {
  const cuts = faults.filter((f) => f.kind === 'db_cut' && f.elsewhere);
  const leaked = cuts.filter((f) => f.elsewhere!.refused > 0).map((f) => `${f.elsewhere!.refused} of ${f.elsewhere!.sent} refused`);
  const sent = cuts.reduce((n, f) => n + f.elsewhere!.sent, 0);
  return {
    name: 'database_cut_stays_local',
    ok: cuts.length > 0 && leaked.length === 0,
    detail:
      cuts.length === 0
        ? 'no database was cut (run longer)'
        : leaked.length === 0
          ? `${cuts.length} cut(s) of the last database: all ${sent} commands to actors of the others answered meanwhile`
          : `during a cut of the last database, commands to the others were refused: ${leaked.join('; ')}`,
  };
}

/** Work orders whose saga reached inventories in another database than their own (several databases): the crossing was exercised. */
async function sagasAcrossDatabases(journal: ShardedJournal, databaseOf: (ref: { kind: string; id: string }) => number): Promise<Invariant> {
  let crossing = 0;
  const orders = await journal.listActors('workorder');
  for (const ref of orders) {
    const created = (await journal.readEvents(ref, 0, 1))[0]?.event as { type?: string; bom?: { sku: string }[] } | undefined;
    if (created?.type === 'Created' && (created.bom ?? []).some((line) => databaseOf({ kind: 'inventory', id: line.sku }) !== databaseOf(ref))) crossing += 1;
  }
  return {
    name: 'sagas_across_databases',
    ok: crossing > 0,
    detail: `${crossing} of ${orders.length} work orders reserve stock in another database than their own (every saga settled: sagas_settled)`,
  };
}
