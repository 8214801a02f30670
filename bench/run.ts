// `npm run bench [-- --quick] [-- --profile]`: ppos against the alternatives a user would
// pick instead, side by side in one run on this machine, and a markdown table of the result
// (printed, and written to bench/results/<date>.md). Everything it starts (a database on
// the machine's PostgreSQL, a private nats-server, node and helper processes) it removes
// again, also when it fails or is interrupted. Never part of `npm test`.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ulid } from 'ulid';
import type { BenchContext, Settings } from './context.js';
import { LoadGenerator } from './load.js';
import { cpuPercent, readCpu } from './proc.js';
import { runProfile } from './profile.js';
import { clusterSection } from './cluster.js';
import { historySection } from './history.js';
import { databasesSection } from './databases.js';
import { eventualSection } from './eventual.js';
import { activationSection, crashSection, memorySection } from './recovery.js';
import { timersSection } from './timers.js';
import { httpSection } from './http.js';
import { renderReport, type BenchResults, type Machine } from './report.js';
import { Cleanup, commandOutput, createDatabase, postgresPidsOf, startNats, type BenchDatabase } from './services.js';
import { baselineBSection, comparisonSection, echoSection } from './throughput.js';

/** Below this (% of one core, whole machine), the machine counts as quiet for --wait-quiet. */
const QUIET_BUSY_PERCENT = 30;

const SECTIONS = ['echo', 'ppos', 'a', 'b', 'eventual', 'databases', 'history', 'cluster', 'recovery', 'crash', 'memory', 'timers', 'http'] as const;
type Section = (typeof SECTIONS)[number];

const FULL: Settings = {
  name: 'full',
  warmupMs: 2_000,
  measureMs: 8_000,
  actors: 1_000,
  levels: [1, 16, 64, 256],
  hotOutstanding: 64,
  clientsFor: (outstanding) => (outstanding >= 64 ? 2 : 1),
  baselineAPool: 32,
  recoverySizes: [10_000, 100_000],
  recoveryRepeats: 3,
  crashActors: 10_000,
  memoryActors: 100_000,
};

const QUICK: Settings = {
  ...FULL,
  name: 'quick',
  warmupMs: 1_000,
  measureMs: 2_500,
  recoveryRepeats: 1,
  crashActors: 3_000,
  memoryActors: 5_000,
};

const here = path.dirname(fileURLToPath(import.meta.url));
/** bench/results in the source tree (this file runs from dist/bench). */
const RESULTS_DIR = path.resolve(here, '..', '..', 'bench', 'results');

function usage(): never {
  process.stderr.write(
    'usage: npm run bench [-- --quick] [--only echo,ppos,a,b,eventual,databases,history,cluster,recovery,crash,memory,timers,http] [--clients N] [--a-pool N] [--wait-quiet S] [--no-write]\n' +
      '       npm run bench -- --profile [--quick]   (CPU profile of the node at 1000 actors, 64 outstanding)\n',
  );
  process.exit(2);
}

async function machine(db: BenchDatabase): Promise<Machine> {
  const version = ((await db.pool.query('SHOW server_version')).rows[0] as { server_version: string }).server_version;
  const settings = await db.pool.query(
    `SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections', 'wal_sync_method') ORDER BY name`,
  );
  const commit = await commandOutput('git', ['-C', path.resolve(here, '..', '..'), 'describe', '--always', '--dirty']);
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: os.release(),
    node: process.versions.node,
    postgres: `PostgreSQL ${version.split(' ')[0]}`,
    postgresSettings: settings.rows.map((r: { name: string; setting: string }) => `${r.name}=${r.setting}`).join(', '),
    nats: (await commandOutput('nats-server', ['--version'])).replace(/^nats-server: /, 'nats-server '),
    commit: process.env.PPOS_BENCH_COMMIT ?? (/^[0-9a-f]{7,}(-dirty)?$/.test(commit) ? commit : 'unknown'),
  };
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        profile: { type: 'boolean', default: false },
        only: { type: 'string' },
        clients: { type: 'string' },
        'a-pool': { type: 'string' },
        'no-write': { type: 'boolean', default: false },
        'wait-quiet': { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch {
    usage();
  }
  if (args.help) usage();
  let settings: Settings = args.quick ? QUICK : FULL;
  if (args.clients !== undefined) {
    const clients = Number(args.clients);
    if (!Number.isInteger(clients) || clients < 1) usage();
    settings = { ...settings, clientsFor: () => clients };
  }
  if (args['a-pool'] !== undefined) settings = { ...settings, baselineAPool: Number(args['a-pool']) };
  const only = new Set((args.only ?? SECTIONS.join(',')).split(',').map((s) => s.trim()) as Section[]);
  for (const section of only) if (!SECTIONS.includes(section)) usage();

  const cleanup = new Cleanup();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}, cleaning up\n`);
    void cleanup.runAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const startedAt = new Date();
  const began = performance.now();
  const progress = (text: string): void => {
    process.stderr.write(`[${((performance.now() - began) / 1000).toFixed(0).padStart(4)} s] ${text}\n`);
  };
  try {
    progress(`bench (${settings.name}): creating a database and a private nats-server`);
    const [db, nats] = await Promise.all([createDatabase(cleanup), startNats(cleanup)]);
    const load = await LoadGenerator.start(nats.url, 2, cleanup, () => postgresPidsOf(db.pool));
    const waitQuietS = args['wait-quiet'] === undefined ? 0 : Number(args['wait-quiet']);
    if (!Number.isFinite(waitQuietS) || waitQuietS < 0) usage();
    let waitedS = 0;
    let checkpointRefused: string | undefined;
    const settle = async (): Promise<void> => {
      // Every window starts at the same point of PostgreSQL's checkpoint cycle: a checkpoint
      // that began during one window (every few minutes under this load, by WAL volume) made
      // that window pay the full-page writes that follow it, and a mean of three windows moved
      // by a tenth with it. Now each window pays them alike, from its start.
      await db.pool.query('CHECKPOINT').catch((error: Error) => {
        checkpointRefused ??= error.message;
      });
      const deadline = performance.now() + waitQuietS * 1000;
      let announced = false;
      while (performance.now() < deadline) {
        const from = readCpu(undefined);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        const busy = cpuPercent(from, readCpu(undefined)).machine;
        if (busy < QUIET_BUSY_PERCENT) return;
        waitedS += 1;
        if (!announced) progress(`waiting for the machine to be quiet (${Math.round(busy)} % busy)`);
        announced = true;
      }
    };
    const ctx: BenchContext = { settings, cleanup, db, nats, load, runTag: ulid().slice(-8), progress, settle };
    const info = await machine(db);
    const before = readCpu(undefined);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const idleBusy = cpuPercent(before, readCpu(undefined)).machine;
    if (idleBusy > 25) progress(`warning: the machine was already ${Math.round(idleBusy)} % busy (of one core) before the bench started`);

    if (args.profile) {
      const report = await runProfile(ctx);
      process.stdout.write(`${report}\n`);
      if (!args['no-write']) write(`${startedAt.toISOString().slice(0, 10)}-profile${settings.name === 'quick' ? '-quick' : ''}.md`, report);
      return;
    }

    const notes: string[] = [`Before the bench started, the machine was ${Math.round(idleBusy)} % busy (% of one core) with other work.`];
    const waitNote = (): string | undefined =>
      waitQuietS > 0 ? `--wait-quiet ${waitQuietS}: ${waitedS} s spent waiting for other work on the machine to stop before measurements.` : undefined;
    const results: Record<string, unknown> = {};
    if (only.has('echo')) results.echo = await echoSection(ctx);
    if (only.has('ppos') || only.has('a')) {
      const compared = await comparisonSection(ctx, { ppos: only.has('ppos'), baselineA: only.has('a') });
      if (only.has('ppos')) results.ppos = compared.ppos;
      if (only.has('a')) results.baselineA = compared.baselineA;
      results.halfPeak = compared.halfPeak;
    }
    if (only.has('b')) results.baselineB = await baselineBSection(ctx);
    if (only.has('eventual')) results.eventual = await eventualSection(ctx);
    if (only.has('databases')) results.databases = await databasesSection(ctx);
    if (only.has('history')) results.history = await historySection(ctx);
    if (only.has('cluster')) results.cluster = await clusterSection(ctx);
    if (only.has('recovery')) results.activation = await activationSection(ctx);
    if (only.has('crash')) results.crash = await crashSection(ctx);
    if (only.has('memory')) results.memory = await memorySection(ctx);
    if (only.has('timers')) results.timers = await timersSection(ctx);
    if (only.has('http')) results.http = await httpSection(ctx);
    await load.stop();

    for (const rows of [results.ppos, results.baselineA, results.echo] as (BenchResults['ppos'] | undefined)[]) {
      for (const row of rows ?? []) {
        if (row.result.clientCpuMax >= 85) {
          notes.push(
            `${row.workload.name} at ${row.workload.outstanding} outstanding: a load-generator process used ${Math.round(row.result.clientCpuMax)} % of a core; ` +
              'the client may be what limits this figure (try --clients).',
          );
        }
      }
    }
    notes.push(
      'All figures come from this one run on this machine; the load generator, the server under test and PostgreSQL share its cores, ' +
        'so "machine busy" near 200 % means the machine, not one component, is the limit.',
    );
    const waited = waitNote();
    if (waited) notes.push(waited);
    notes.push(
      checkpointRefused === undefined
        ? 'PostgreSQL was checkpointed before each measurement window, so every window starts at the same point of the checkpoint cycle.'
        : `PostgreSQL refused the CHECKPOINT run before each window (${checkpointRefused}): windows fall at random points of the checkpoint cycle, and a mean of a few moves by about a tenth.`,
    );
    const report = renderReport({
      ...(results as Partial<BenchResults>),
      settings: settings.name,
      startedAt,
      seconds: (performance.now() - began) / 1000,
      machine: info,
      notes,
    } as BenchResults);
    process.stdout.write(`\n${report}\n`);
    if (!args['no-write']) {
      const file = write(`${startedAt.toISOString().slice(0, 10)}${settings.name === 'quick' ? '-quick' : ''}.md`, report);
      progress(`written to ${file}`);
    }
  } finally {
    await cleanup.runAll();
  }
}

function write(name: string, text: string): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, name);
  writeFileSync(file, `${text}\n`);
  return path.relative(process.cwd(), file);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
