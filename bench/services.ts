// What the bench starts and must always take down again: its own PostgreSQL database on the
// machine's server (never the server itself), a private nats-server, node and helper
// processes. Every resource registers its undo here the moment it exists.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { JOURNAL_TYPES } from '../persistence/pg-types.js';
import { JOURNAL_STREAM } from '../runtime/journal-export.js';
import { ulid } from 'ulid';
import { migrate } from '../persistence/migrations.js';
import { PrivateNatsServer } from '../src/nats-server.js';
import { CLI_PATH, NodeProcess } from '../src/spawn.js';

export const ADMIN_PG_URL = process.env.PPOS_BENCH_PG_URL ?? process.env.PPOS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export class Cleanup {
  private readonly tasks: { name: string; undo: () => Promise<void> }[] = [];
  private running: Promise<void> | undefined;

  /** Registers an undo; returns a function that runs it now (and forgets it). */
  add(name: string, undo: () => Promise<void>): () => Promise<void> {
    const task = { name, undo };
    this.tasks.push(task);
    return async () => {
      const at = this.tasks.indexOf(task);
      if (at < 0) return;
      this.tasks.splice(at, 1);
      await undo();
    };
  }

  /** Undoes everything, newest first; one failing undo never skips the others. */
  runAll(): Promise<void> {
    this.running ??= (async () => {
      while (this.tasks.length > 0) {
        const task = this.tasks.pop()!;
        try {
          await task.undo();
        } catch (error) {
          process.stderr.write(`bench cleanup: ${task.name}: ${(error as Error).message}\n`);
        }
      }
    })();
    return this.running;
  }
}

export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  readonly pool: pg.Pool;
}

/** A fresh database ppos_bench_<ulid> with the ppos schema; dropped by `cleanup`. */
export async function createDatabase(cleanup: Cleanup): Promise<BenchDatabase> {
  const name = `ppos_bench_${ulid().toLowerCase()}`;
  const admin = new pg.Client({ connectionString: ADMIN_PG_URL, connectionTimeoutMillis: 5_000 });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(
      `the bench needs PostgreSQL at ${ADMIN_PG_URL} (set PPOS_BENCH_PG_URL to use another): ${(error as Error).message}`,
    );
  }
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(ADMIN_PG_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 8, types: JOURNAL_TYPES });
  pool.on('error', () => undefined);
  cleanup.add(`database ${name}`, async () => {
    await pool.end().catch(() => undefined);
    const dropper = new pg.Client({ connectionString: ADMIN_PG_URL });
    await dropper.connect();
    try {
      await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await dropper.end();
    }
  });
  await migrate(pool);
  return { name, url: url.toString(), pool };
}

/** The backends of this run's bench databases (ppos_bench_*: the cluster section makes its own) plus the server's shared WAL writer, checkpointer and background writer. */
export async function postgresPidsOf(pool: pg.Pool): Promise<Set<number>> {
  const result = await pool.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
     WHERE datname = current_database() OR datname LIKE 'ppos\_bench\_%' OR backend_type IN ('walwriter', 'checkpointer', 'background writer')`,
  );
  return new Set(result.rows.map((row) => row.pid));
}

export async function startNats(cleanup: Cleanup): Promise<PrivateNatsServer> {
  const nats = await PrivateNatsServer.start();
  cleanup.add(`nats-server on ${nats.port}`, () => nats.stop());
  return nats;
}

export interface NodeHandle {
  readonly node: NodeProcess;
  /** SIGTERM and wait (the node drains); SIGKILL if it has not exited after 20 s. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  crash(): Promise<void>;
}

/** The journal (database URL) whose events the private nats-server's PPOS_JOURNAL holds. */
let streamHolds: string | undefined;

/**
 * Deletes the journal stream when a node about to export follows another journal than the one
 * it holds. In a deployment a stream holds one journal; the bench starts many journals with the
 * same actor ids against one nats-server, and their events share message ids
 * (`inventory/SKU-042/7`), so a later section's events were dropped as duplicates of an earlier
 * section's, and its export measured the wrong work.
 */
async function streamFor(natsUrl: string, databaseUrl: string, args: readonly string[], followers = process.env.PPOS_FOLLOWERS): Promise<void> {
  const at = args.indexOf('--followers');
  const names = at >= 0 ? args[at + 1] : followers;
  const exports = names === undefined || names.split(',').map((name) => name.trim()).includes('export');
  if (!exports || streamHolds === databaseUrl) return;
  const nc = await connect({ servers: natsUrl, name: 'ppos-bench-stream' });
  try {
    await (await jetstreamManager(nc)).streams.delete(JOURNAL_STREAM).catch(() => false);
  } finally {
    await nc.close();
  }
  streamHolds = databaseUrl;
}

/** A `ppos start` child process, registered for cleanup; resolves once it is ready. */
export async function startNode(
  cleanup: Cleanup,
  natsUrl: string,
  databaseUrl: string,
  nodeId: string,
  args: string[] = [],
): Promise<NodeHandle> {
  await streamFor(natsUrl, databaseUrl, args);
  const logs: string[] = [];
  const node = new NodeProcess({
    nats: natsUrl,
    databaseUrl,
    nodeId,
    args,
    env: { PPOS_LOG_LEVEL: 'info' },
    onLog: (line) => {
      logs.push(line);
      if (logs.length > 40) logs.shift();
    },
  });
  let expectedExit = false;
  void node.exited.then((code) => {
    if (!expectedExit) process.stderr.write(`bench: node ${nodeId} exited unexpectedly (${code}); its last log lines:\n${logs.join('\n')}\n`);
  });
  const undo = cleanup.add(`node ${nodeId}`, () => {
    expectedExit = true;
    return node.crash();
  });
  try {
    await node.ready;
  } catch (error) {
    await undo();
    throw error;
  }
  return {
    node,
    async stop() {
      expectedExit = true;
      const timer = setTimeout(() => void node.crash(), 20_000);
      await node.stop();
      clearTimeout(timer);
      await undo();
    },
    async crash() {
      await undo();
    },
  };
}

export async function commandOutput(command: string, args: string[]): Promise<string> {
  try {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    await once(child, 'exit');
    return out.trim();
  } catch {
    return 'unknown';
  }
}

export interface ResponderCounters {
  readonly commits: number;
  readonly attempts: number;
  readonly serializationFailures: number;
  readonly failures: number;
}

export interface ResponderHandle {
  readonly pid: number | undefined;
  /** Counters since the last call (the responder resets them). */
  stats(): Promise<ResponderCounters>;
  stop(): Promise<void>;
}

/** A baseline responder process (bench/responder.ts) on the ppos command subjects. */
export async function startResponder(
  cleanup: Cleanup,
  mode: 'echo' | 'serializable',
  natsUrl: string,
  databaseUrl: string,
  poolSize: number,
  subjectPrefix: string,
): Promise<ResponderHandle> {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'responder.js');
  // The URLs go in the environment, never on the command line.
  const child = fork(file, [mode, String(poolSize), subjectPrefix], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, PPOS_NATS_URL: natsUrl, PPOS_DATABASE_URL: databaseUrl },
  });
  const undo = cleanup.add(`responder ${mode}`, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  const next = (type: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`responder ${mode} exited with ${code}`));
      child.once('exit', onExit);
      const onMessage = (message: Record<string, unknown>): void => {
        if (message.type !== type) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message);
      };
      child.on('message', onMessage);
    });
  await next('ready');
  return {
    pid: child.pid,
    async stats() {
      const answer = next('stats');
      child.send({ type: 'stats' });
      return (await answer).counters as ResponderCounters;
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = once(child, 'exit');
        child.send({ type: 'exit' });
        await exited;
      }
      await undo();
    },
  };
}

/**
 * `ppos start` under V8 flags (--cpu-prof, --perf-prof): NodeProcess cannot pass them, and
 * NODE_OPTIONS refuses --cpu-prof. Resolves once the node logged that it started; killed by
 * `cleanup` unless stopped before.
 */
export async function startNodeWithV8Flags(
  cleanup: Cleanup,
  options: { natsUrl: string; databaseUrl: string; nodeId: string; v8Flags: readonly string[]; cwd?: string; label: string },
): Promise<ChildProcess> {
  await streamFor(options.natsUrl, options.databaseUrl, []);
  // URLs in the environment, never on the command line (another user could read them in /proc).
  const child = spawn(process.execPath, [...options.v8Flags, CLI_PATH, 'start', '--node', options.nodeId], {
    ...(options.cwd ? { cwd: options.cwd } : {}),
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PPOS_LOG_LEVEL: 'info', PPOS_NATS_URL: options.natsUrl, PPOS_DATABASE_URL: options.databaseUrl },
  });
  cleanup.add(options.label, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  await new Promise<void>((resolve, reject) => {
    let buffered = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      if (buffered.includes('"msg":"node started"')) resolve();
      if (buffered.length > 1_000_000) buffered = buffered.slice(-1000);
    });
    child.once('exit', (code) => reject(new Error(`${options.label} exited with ${code} before it was ready`)));
  });
  return child;
}
