// The embedded PostgreSQL started as root from a folder the `postgres` user cannot enter (a
// `mktemp -d`, anything under /root): the cluster goes where that user can reach it, one per
// intended folder, the intended place links there, and the reported location is the real one.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_REACHABLE_DIR, startEmbeddedPostgres, type EmbeddedPostgres } from '../../persistence/embedded.js';

const isRoot = process.getuid?.() === 0;

// mkdtemp makes 0700 folders owned by root: exactly what the postgres user cannot enter.
const closed = mkdtempSync(path.join(os.tmpdir(), 'ppos-closed-'));
const started: EmbeddedPostgres[] = [];

async function start(dataDir: string, logs: string[] = []): Promise<EmbeddedPostgres> {
  const embedded = await startEmbeddedPostgres({ dataDir, log: (line) => logs.push(line) });
  started.push(embedded);
  return embedded;
}

async function query<R extends pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    return (await db.query<R>(sql)).rows;
  } finally {
    await db.end();
  }
}

beforeAll(() => {
  expect(statSync(closed).mode & 0o777).toBe(0o700);
});

afterAll(async () => {
  for (const embedded of started) await embedded.stop();
  // Each cluster's own folder under /var/lib/ppos; the shared parent stays for other checkouts.
  for (const dataDir of new Set(started.map((e) => e.dataDir))) {
    if (dataDir.startsWith(`${POSTGRES_REACHABLE_DIR}/`)) rmSync(path.dirname(dataDir), { recursive: true, force: true });
  }
  rmSync(closed, { recursive: true, force: true });
});

describe.runIf(isRoot)('the embedded PostgreSQL, as root, asked for a folder the postgres user cannot enter', () => {
  const intended = path.join(closed, 'one', '.ppos', 'pgdata');
  let first: EmbeddedPostgres;

  it('puts the cluster under /var/lib/ppos, says so, links the intended place there, and takes writes', async () => {
    const logs: string[] = [];
    first = await start(intended, logs);
    expect(first.startedHere).toBe(true);
    expect(path.dirname(path.dirname(first.dataDir))).toBe(POSTGRES_REACHABLE_DIR);
    expect(logs.some((line) => line.includes(`is in ${first.dataDir}`))).toBe(true);
    expect(readlinkSync(intended)).toBe(first.dataDir);
    expect(readFileSync(path.join(path.dirname(first.dataDir), 'origin'), 'utf8')).toBe(`${intended}\n`);
    // The password sits with the cluster it opens, readable by root alone.
    expect(first.passwordFile).toBe(path.join(path.dirname(first.dataDir), 'password'));
    const passwordInfo = statSync(first.passwordFile);
    expect([passwordInfo.uid, passwordInfo.mode & 0o777]).toEqual([0, 0o600]);
    expect(statSync(POSTGRES_REACHABLE_DIR).mode & 0o777).toBe(0o755);

    await query(first.url, "CREATE TABLE marker AS SELECT 'first checkout'::text AS note");
    // The write is in the reported folder: it is the one the server runs on, and it holds the table's file.
    expect(await query(first.url, 'SHOW data_directory')).toEqual([{ data_directory: first.dataDir }]);
    const [table] = await query<{ file: string }>(first.url, "SELECT pg_relation_filepath('marker') AS file");
    expect(existsSync(path.join(first.dataDir, table!.file))).toBe(true);
  });

  it('reuses the running server for the same intended folder', async () => {
    const again = await start(intended);
    expect(again.startedHere).toBe(false);
    expect(again.dataDir).toBe(first.dataDir);
    expect(await query(again.url, 'SELECT note FROM marker')).toEqual([{ note: 'first checkout' }]);
  });

  it('keeps another intended folder apart, in a cluster of its own', async () => {
    const other = await start(path.join(closed, 'two', '.ppos', 'pgdata'));
    expect(other.startedHere).toBe(true);
    expect(other.dataDir).not.toBe(first.dataDir);
    expect(path.dirname(path.dirname(other.dataDir))).toBe(POSTGRES_REACHABLE_DIR);
    expect(other.url).not.toBe(first.url);
    expect(await query(other.url, "SELECT to_regclass('marker') AS marker")).toEqual([{ marker: null }]);
  });

  it('refuses, as before, when a real folder is already in the intended place', async () => {
    const occupied = path.join(closed, 'three', '.ppos', 'pgdata');
    mkdirSync(occupied, { recursive: true });
    await expect(startEmbeddedPostgres({ dataDir: occupied })).rejects.toThrow(/cannot enter .*move that folder away/);
  });
});
