// The embedded PostgreSQL asks for a password (security issue): a cluster ppos initialises uses
// scram-sha-256 with a random password kept in a 0600 file next to pgdata, the URL it returns
// carries it, and a cluster an older ppos made with `trust` is secured on its next start.
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresBinaries, startEmbeddedPostgres, type EmbeddedPostgres } from '../../persistence/embedded.js';
import { freePort } from '../../persistence/local-processes.js';

const run = promisify(execFile);
const homes: string[] = [];
const started: EmbeddedPostgres[] = [];

/** A fresh folder for a cluster; as root, owned by `postgres`, which runs the server and must reach it. */
async function clusterHome(prefix: string): Promise<string> {
  const home = mkdtempSync(path.join(os.tmpdir(), prefix));
  homes.push(home);
  const { user } = await postgresBinaries();
  if (user.uid !== undefined) chownSync(home, user.uid, user.gid!);
  return home;
}

async function start(dataDir: string, logs: string[] = []): Promise<EmbeddedPostgres> {
  const embedded = await startEmbeddedPostgres({ dataDir, log: (line) => logs.push(line) });
  started.push(embedded);
  return embedded;
}

async function query<R extends pg.QueryResultRow>(config: pg.ClientConfig, sql: string): Promise<R[]> {
  const db = new pg.Client({ ...config, connectionTimeoutMillis: 5_000 });
  await db.connect();
  try {
    return (await db.query<R>(sql)).rows;
  } finally {
    await db.end();
  }
}

/** The error a connection attempt ends with. */
async function refusal(config: pg.ClientConfig): Promise<Error & { code?: string }> {
  const error = await query(config, 'SELECT 1').then(
    () => null,
    (failure: Error & { code?: string }) => failure,
  );
  expect(error, 'the connection was let in').not.toBeNull();
  return error!;
}

/** The server's first answer to a startup packet for `postgres`: 0 lets it in at once (trust), 10 asks for SCRAM. */
async function authenticationRequest(port: number): Promise<number> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const parameters = Buffer.from('user\0postgres\0database\0postgres\0\0');
  const header = Buffer.alloc(8);
  header.writeInt32BE(header.length + parameters.length, 0);
  header.writeInt32BE(196_608, 4); // protocol 3.0
  socket.write(Buffer.concat([header, parameters]));
  const [reply] = (await once(socket, 'data')) as [Buffer];
  socket.destroy();
  expect(String.fromCharCode(reply[0]!)).toBe('R');
  return reply.readInt32BE(5);
}

const passwordIn = (file: string): string => readFileSync(file, 'utf8').trim();
const portOf = (url: string): number => Number(new URL(url).port);
const asPostgres = (url: string, password?: string): pg.ClientConfig => ({
  host: '127.0.0.1',
  port: portOf(url),
  user: 'postgres',
  database: 'ppos',
  ...(password === undefined ? {} : { password }),
});

async function authMethods(url: string): Promise<string[]> {
  const rows = await query<{ auth_method: string }>({ connectionString: url }, 'SELECT DISTINCT auth_method FROM pg_hba_file_rules');
  return rows.map((row) => row.auth_method);
}

afterAll(async () => {
  // Every postmaster this file started, whatever failed above; pg_ctl stop on a stopped one is harmless.
  const { bins, user } = await postgresBinaries();
  const dataDirs = new Set([...started.map((e) => e.dataDir), ...homes.map((home) => path.join(home, 'pgdata'))]);
  for (const dataDir of dataDirs) {
    if (existsSync(path.join(dataDir, 'postmaster.pid'))) {
      await run(bins.pg_ctl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30'], { ...user }).catch(() => undefined);
    }
  }
  for (const home of homes) rmSync(home, { recursive: true, force: true });
});

describe('the embedded PostgreSQL of a fresh folder', () => {
  let home: string;
  let dataDir: string;
  let first: EmbeddedPostgres;
  let password: string;

  beforeAll(async () => {
    home = await clusterHome('ppos-auth-');
    dataDir = path.join(home, 'pgdata');
  });

  it('keeps a random password in a 0600 file of the user ppos runs as, next to pgdata, and puts it in the URL', async () => {
    first = await start(dataDir);
    expect(first.startedHere).toBe(true);
    expect(first.passwordFile).toBe(path.join(home, 'password'));
    const info = statSync(first.passwordFile);
    expect(info.mode & 0o777).toBe(0o600);
    expect(info.uid).toBe(process.getuid!());
    password = passwordIn(first.passwordFile);
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/); // 192 bits, URL-safe
    const url = new URL(first.url);
    expect([url.username, url.password, url.hostname, url.pathname]).toEqual(['postgres', password, '127.0.0.1', '/ppos']);
    // Neither initdb's password file nor the one carried inside the new cluster is left behind.
    expect(readdirSync(home).sort()).toEqual(['password', 'pgdata', 'postgres.log']);
    expect(readdirSync(dataDir).filter((name) => name.includes('password'))).toEqual([]);
  });

  it('lets in the password from the file, over scram-sha-256 on every pg_hba.conf line', async () => {
    expect(await query(asPostgres(first.url, password), 'SELECT current_user AS who')).toEqual([{ who: 'postgres' }]);
    expect(await authMethods(first.url)).toEqual(['scram-sha-256']);
  });

  it('refuses a connection without the password, or with a wrong one', async () => {
    expect(await authenticationRequest(portOf(first.url))).toBe(10);
    expect((await refusal(asPostgres(first.url))).message).toMatch(/password/);
    expect((await refusal(asPostgres(first.url, 'not-the-password'))).code).toBe('28P01');
  });

  it('reaches a server that is already running with the same password', async () => {
    const again = await start(dataDir);
    expect(again.startedHere).toBe(false);
    expect(again.url).toBe(first.url);
    expect(await query({ connectionString: again.url }, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('keeps the password across a stop and a start', async () => {
    await first.stop();
    const restarted = await start(dataDir);
    expect(restarted.startedHere).toBe(true);
    expect(new URL(restarted.url).password).toBe(password);
    expect(await query(asPostgres(restarted.url, password), 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('refuses to start, naming the file and the way out, when the password file is gone', async () => {
    const aside = `${first.passwordFile}.aside`;
    renameSync(first.passwordFile, aside);
    try {
      await expect(startEmbeddedPostgres({ dataDir })).rejects.toThrow(/asks for a password, but .*password is missing.*trust, and start ppos again/);
    } finally {
      renameSync(aside, first.passwordFile);
    }
  });
});

describe('a cluster an older ppos made with --auth=trust', () => {
  let home: string;
  let dataDir: string;
  let legacyPort: number;
  let secured: EmbeddedPostgres;

  // What an older ppos left: initdb --auth=trust, and its postmaster still running after a kill -9.
  beforeAll(async () => {
    home = await clusterHome('ppos-auth-legacy-');
    dataDir = path.join(home, 'pgdata');
    const { bins, user } = await postgresBinaries();
    const env = { ...process.env, LC_ALL: 'C' };
    await run(bins.initdb, ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-instructions'], { ...user, env });
    legacyPort = await freePort();
    await run(
      bins.pg_ctl,
      ['start', '-w', '-D', dataDir, '-l', path.join(home, 'postgres.log'), '-o', `-p ${legacyPort} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`],
      { ...user, env },
    );
    await query({ host: '127.0.0.1', port: legacyPort, user: 'postgres', database: 'postgres' }, 'CREATE DATABASE ppos');
    await query(
      { host: '127.0.0.1', port: legacyPort, user: 'postgres', database: 'ppos' },
      "CREATE TABLE marker AS SELECT 'written under trust'::text AS note",
    );
    expect(await authenticationRequest(legacyPort)).toBe(0);
  });

  it('is secured on the next start: a password in a 0600 file, the role set to it, pg_hba.conf scram-sha-256, reloaded', async () => {
    const logs: string[] = [];
    secured = await start(dataDir, logs);
    expect(secured.startedHere).toBe(false);
    expect(portOf(secured.url)).toBe(legacyPort);
    expect(logs.some((line) => line.includes('lets any local user in (trust): setting a password'))).toBe(true);
    expect(statSync(secured.passwordFile).mode & 0o777).toBe(0o600);
    const password = passwordIn(secured.passwordFile);
    expect(new URL(secured.url).password).toBe(password);

    expect(await authenticationRequest(legacyPort)).toBe(10);
    expect((await refusal(asPostgres(secured.url, 'not-the-password'))).code).toBe('28P01');
    expect(await query(asPostgres(secured.url, password), 'SELECT note FROM marker')).toEqual([{ note: 'written under trust' }]);
    expect(await authMethods(secured.url)).toEqual(['scram-sha-256']);
    // The role's verifier was made in ppos: the password itself is in no server log.
    expect(readFileSync(path.join(home, 'postgres.log'), 'utf8')).not.toContain(password);
  });

  it('starts again after a stop with the same password and nothing left to secure', async () => {
    const password = passwordIn(secured.passwordFile);
    await secured.stop();
    const logs: string[] = [];
    const restarted = await start(dataDir, logs);
    expect(restarted.startedHere).toBe(true);
    expect(logs.some((line) => line.includes('setting a password'))).toBe(false);
    expect(new URL(restarted.url).password).toBe(password);
    expect(await authenticationRequest(portOf(restarted.url))).toBe(10);
    expect(await query({ connectionString: restarted.url }, 'SELECT note FROM marker')).toEqual([{ note: 'written under trust' }]);
  });
});
