// The journal over two PostgreSQL databases in two separate server processes (issue 18): the
// machine's shared server holds the first, a server this file starts holds the second, so
// cutting the second is a real process stop. Each actor's events, dedupe records and lease live
// in its shard's database; a node given another list is refused; stopping one server makes only
// its shards UNAVAILABLE while the others go on; verify reads both.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseOfShard } from '../../persistence/database-layout.js';
import { parseCommitToken } from '../../persistence/pg-journal.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import type { Reply } from '../../runtime/envelope.js';
import { shardOf } from '../../runtime/sharding.js';
import { runCli } from '../helpers/cli.js';
import { startTestNode } from '../helpers/node.js';
import { SecondPostgres } from '../helpers/second-postgres.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

const SHARDS = 16;
const LEASE_MS = 2_000;
const LAYOUT = { databases: 2, shards: SHARDS };

let first: TestDatabase;
let second: SecondPostgres;
let secondPool: pg.Pool;
let nats: PrivateNatsServer;
let node: RunningNode;
let client: PposClient;

const databaseOf = (id: string): number => databaseOfShard(shardOf({ kind: 'inventory', id }, SHARDS), LAYOUT);
/** Ids of inventory actors living in database `index`. */
const idsIn = (index: number, count: number, prefix: string): string[] => {
  const ids: string[] = [];
  for (let i = 0; ids.length < count; i += 1) if (databaseOf(`${prefix}-${i}`) === index) ids.push(`${prefix}-${i}`);
  return ids;
};

const send = (id: string, type: string, payload: Record<string, unknown>, messageId: string): Promise<Reply> =>
  client.send('inventory', id, type, payload, { messageId, timeoutMs: 10_000 });
const code = (reply: Reply): string => (reply.ok ? 'OK' : reply.error.code);

const bothUrls = (): string => `${first.url},${second.url}`;

async function rowsOf(table: string, id: string): Promise<[number, number]> {
  const sql = `SELECT count(*)::int AS n FROM ${table} WHERE actor_id = $1`;
  const [a, b] = await Promise.all([first.query<{ n: number }>(sql, [id]), secondPool.query<{ n: number }>(sql, [id])]);
  return [a.rows[0]!.n, b.rows[0]!.n];
}

beforeAll(async () => {
  [first, second, nats] = await Promise.all([createTestDatabase(), SecondPostgres.start(), startNats()]);
  secondPool = new pg.Pool({ connectionString: second.url, max: 2 });
  secondPool.on('error', () => undefined);
  node = await startTestNode(nats.url, bothUrls(), { shardCount: SHARDS, leaseMs: LEASE_MS, followers: [] });
  client = await PposClient.connect(nats.url);
}, 120_000);

afterAll(async () => {
  await client?.close();
  await node?.stop();
  await secondPool?.end();
  await nats?.stop();
  await first?.drop();
  await second?.remove();
});

describe('the journal over two databases', () => {
  it("keeps each actor's events, dedupe records and lease in its shard's database only", async () => {
    for (const index of [0, 1]) {
      for (const id of idsIn(index, 5, 'home')) {
        expect(code(await send(id, 'Receive', { qty: 10 }, `${id}-r`))).toBe('OK');
        expect(code(await send(id, 'Reserve', { reservationId: 'a', qty: 3 }, `${id}-s`))).toBe('OK');
        const [events, dedupe] = await Promise.all([rowsOf('ppos_events', id), rowsOf('ppos_dedupe', id)]);
        expect(events).toEqual(index === 0 ? [2, 0] : [0, 2]);
        expect(dedupe).toEqual(index === 0 ? [2, 0] : [0, 2]);
      }
    }
    const leasesIn = async (db: { query: (sql: string) => Promise<pg.QueryResult> }): Promise<number[]> =>
      (await db.query('SELECT shard FROM ppos_shard_leases ORDER BY shard')).rows.map((row) => row.shard as number);
    expect(await leasesIn(first)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(await leasesIn(secondPool)).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('answers a repeat from the right database, and tokens name the database of the commit', async () => {
    const [id] = idsIn(1, 1, 'token');
    const reply = await send(id!, 'Receive', { qty: 4 }, 'token-once');
    const again = await send(id!, 'Receive', { qty: 4 }, 'token-once');
    expect(reply.ok && again.ok).toBe(true);
    if (!reply.ok || !again.ok) return;
    expect(again.duplicate).toBe(true);
    expect(again.token).toBe(reply.token);
    expect(parseCommitToken(reply.token!)?.database).toBe(1);
    const [home] = idsIn(0, 1, 'token');
    const homeReply = await send(home!, 'Receive', { qty: 4 }, 'token-home');
    expect(homeReply.ok && parseCommitToken(homeReply.token!)?.database).toBe(0);
  });

  it('refuses a node given the databases in another order, one of them, or another database in a place', async () => {
    const other = await createTestDatabase();
    try {
      for (const urls of [`${second.url},${first.url}`, first.url, `${first.url},${other.url}`]) {
        await expect(startTestNode(nats.url, urls, { nodeId: 'refused', shardCount: SHARDS, followers: [] })).rejects.toThrow(/database .* given|databases? of the journal/);
      }
      // Nothing was written to the database that does not belong.
      expect((await other.query("SELECT count(*)::int AS n FROM ppos_cluster WHERE key = 'layout'")).rows[0]!.n).toBe(0);
    } finally {
      await other.drop();
    }
  });

  it("stopping the second database's server makes only its actors UNAVAILABLE, and they answer again once it is back", async () => {
    const home = idsIn(0, 4, 'cut');
    const away = idsIn(1, 4, 'cut');
    for (const id of [...home, ...away]) expect(code(await send(id, 'Receive', { qty: 100 }, `${id}-stock`))).toBe('OK');

    await second.stop();
    // Longer than a lease: the first database's leases must go on being renewed meanwhile.
    const until = Date.now() + LEASE_MS * 2;
    let n = 0;
    while (Date.now() < until) {
      n += 1;
      const [homeReplies, awayReplies] = await Promise.all([
        Promise.all(home.map((id) => send(id, 'Reserve', { reservationId: `r${n}`, qty: 1 }, `${id}-during-${n}`))),
        Promise.all(away.map((id) => send(id, 'Reserve', { reservationId: `r${n}`, qty: 1 }, `${id}-during-${n}`))),
      ]);
      for (const reply of homeReplies) expect(code(reply), JSON.stringify(reply)).toBe('OK');
      for (const reply of awayReplies) expect(code(reply), JSON.stringify(reply)).toBe('UNAVAILABLE');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(n).toBeGreaterThan(2);

    await second.restart();
    await waitFor('the second database serving again', async () => {
      const replies = await Promise.all(away.map((id) => send(id, 'Reserve', { reservationId: 'after', qty: 1 }, `${id}-after`)));
      return replies.every((reply) => reply.ok) || undefined;
    }, 30_000);
    // Nothing of the refused commands was written; everything of the first database's was.
    for (const id of away) expect(await rowsOf('ppos_events', id)).toEqual([0, 2]);
    for (const id of home) expect(await rowsOf('ppos_events', id)).toEqual([n + 1, 0]);
  }, 60_000);

  it('verify and history read both databases', async () => {
    const env = { PPOS_DATABASE_URL: bothUrls(), PPOS_NATS_URL: nats.url };
    const [away] = idsIn(1, 1, 'home');
    const history = await runCli(['history', 'inventory', away!, '--json'], env);
    expect(history.code, history.stderr).toBe(0);
    expect(history.stdout).toContain('Reserved');
    const verified = await runCli(['verify', '--all'], env);
    expect(verified.code, verified.stderr + verified.stdout).toBe(0);
    const record = JSON.parse(verified.stdout) as { confidence_status: string; actors_checked?: number };
    expect(record.confidence_status).toBe('trusted');
  }, 60_000);
});
