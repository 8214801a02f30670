// The journal over two PostgreSQL databases in two separate server processes (issue 18): the
// machine's shared server holds the first, a server this file starts holds the second, so
// cutting the second is a real process stop. Each actor's events, dedupe records and lease live
// in its shard's database; a node given another list is refused; stopping one server makes only
// its shards UNAVAILABLE while the others go on; the projections and the export follow both
// databases, each with its own checkpoint; verify and rebuild read both.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseOfShard } from '../../persistence/database-layout.js';
import { parseCommitToken } from '../../persistence/pg-journal.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import type { Reply } from '../../runtime/envelope.js';
import { shardOf } from '../../runtime/sharding.js';
import type { QueryReply } from '../../runtime/query-service.js';
import { runCli } from '../helpers/cli.js';
import { readJournalStream } from '../helpers/journal-stream.js';
import { startTestNode } from '../helpers/node.js';
import { SecondPostgres } from '../helpers/second-postgres.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

const SHARDS = 16;
const LEASE_MS = 2_000;
const LAYOUT = { databases: 2, shards: SHARDS };

let first: TestDatabase;
let second: SecondPostgres;
let secondPool: pg.Pool;
/** Between the node and the second server: to make it go silent without closing anything. */
let proxy: TcpProxy;
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

const query = async (body: unknown, timeoutMs = 15_000): Promise<QueryReply> =>
  (await client.request('ppos.query.stock', JSON.stringify(body), timeoutMs)) as unknown as QueryReply;

/** The stock row of `id`, once the projection includes the commit `token` names. */
async function stockAfter(id: string, token: string): Promise<Record<string, unknown> | undefined> {
  const reply = await query({ where: { id }, after: token, timeoutMs: 10_000 });
  if (!reply.ok) throw new Error(JSON.stringify(reply));
  return reply.rows[0];
}

async function rowsOf(table: string, id: string): Promise<[number, number]> {
  const sql = `SELECT count(*)::int AS n FROM ${table} WHERE actor_id = $1`;
  const [a, b] = await Promise.all([first.query<{ n: number }>(sql, [id]), secondPool.query<{ n: number }>(sql, [id])]);
  return [a.rows[0]!.n, b.rows[0]!.n];
}

beforeAll(async () => {
  [first, second, nats] = await Promise.all([createTestDatabase(), SecondPostgres.start(), startNats()]);
  secondPool = new pg.Pool({ connectionString: second.url, max: 2 });
  secondPool.on('error', () => undefined);
  const target = new URL(second.url);
  proxy = await TcpProxy.start(target.hostname, Number(target.port));
  node = await startTestNode(nats.url, `${first.url},${proxy.urlFor(second.url)}`, { shardCount: SHARDS, leaseMs: LEASE_MS, followers: ['stock', 'workorders', 'export'] });
  client = await PposClient.connect(nats.url);
}, 120_000);

afterAll(async () => {
  await client?.close();
  proxy?.restore();
  await node?.stop();
  await proxy?.close();
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

  it('places actors by a rule SQL can compute too: ppos_shard_of agrees with the runtime', async () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';
    let seed = 7;
    const next = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const refs = Array.from({ length: 2_000 }, () => ({
      kind: next(2) === 0 ? 'inventory' : 'workorder',
      id: Array.from({ length: 1 + next(128) }, () => alphabet[next(alphabet.length)]).join(''),
    }));
    for (const shards of [16, 256, 1_000]) {
      const sql = await first.query<{ shard: number }>('SELECT ppos_shard_of(k, i, $3) AS shard FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r(k, i, n) ORDER BY n', [
        refs.map((r) => r.kind),
        refs.map((r) => r.id),
        shards,
      ]);
      expect(sql.rows.map((row) => row.shard)).toEqual(refs.map((ref) => shardOf(ref, shards)));
    }
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

  it('refuses a node given the databases in another order, one of them, another database in either place, or one twice', async () => {
    const other = await createTestDatabase();
    try {
      for (const urls of [`${second.url},${first.url}`, first.url, `${first.url},${other.url}`, `${other.url},${second.url}`, `${first.url},${first.url}`]) {
        await expect(startTestNode(nats.url, urls, { nodeId: 'refused', shardCount: SHARDS, followers: [] })).rejects.toThrow(/database \d+ (given|is database)/);
      }
      // Nothing was written to the database that does not belong.
      expect((await other.query("SELECT count(*)::int AS n FROM ppos_cluster WHERE key = 'layout'")).rows[0]!.n).toBe(0);
    } finally {
      await other.drop();
    }
  });

  it("the stock projection reads each database in its own order: a query after a command's token sees it, whichever database", async () => {
    for (const index of [0, 1]) {
      const [id] = idsIn(index, 1, 'proj');
      const reply = await send(id!, 'Receive', { qty: 7 }, `${id}-proj`);
      expect(reply.ok && parseCommitToken(reply.token!)?.database).toBe(index);
      if (!reply.ok) return;
      expect(await stockAfter(id!, reply.token!)).toMatchObject({ id, onHand: 7, available: 7 });
    }
    // One checkpoint row per database, under the projection's one lease.
    const rows = await first.query<{ name: string }>("SELECT name FROM ppos_projections WHERE name LIKE 'stock%' ORDER BY name");
    expect(rows.rows.map((row) => row.name)).toEqual(['stock', 'stock@2']);
    const listed = await runCli(['projections', '--json'], { PPOS_DATABASE_URL: bothUrls(), PPOS_NATS_URL: nats.url });
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { name: string }[]).map((r) => r.name)).toEqual(expect.arrayContaining(['stock', 'stock@2', 'export', 'export@2']));
  });

  it('exports every event of both databases to the stream once, each actor in its order', async () => {
    const expected = Number((await first.query<{ n: number }>('SELECT count(*)::int AS n FROM ppos_events')).rows[0]!.n) +
      Number((await secondPool.query<{ n: number }>('SELECT count(*)::int AS n FROM ppos_events')).rows[0]!.n);
    const streamed = await waitFor('the export to catch up', async () => {
      const read = await readJournalStream(nats.url);
      return read.length >= expected ? read : undefined;
    });
    expect(new Set(streamed.map((m) => m.msgId)).size).toBe(streamed.length);
    expect(streamed.length).toBe(expected);
    const lastSeq = new Map<string, number>();
    for (const m of streamed) {
      const key = `${m.body.kind}/${m.body.id}`;
      expect(m.body.seq).toBe((lastSeq.get(key) ?? 0) + 1);
      lastSeq.set(key, m.body.seq);
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
      // The projection goes on applying the first database's events meanwhile.
      const last = homeReplies[homeReplies.length - 1]!;
      if (n % 5 === 1 && last.ok) expect(await stockAfter(home[home.length - 1]!, last.token!)).toMatchObject({ reserved: n });
      for (const reply of awayReplies) expect(code(reply), JSON.stringify(reply)).toBe('UNAVAILABLE');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(n).toBeGreaterThan(2);

    await second.restart();
    const after = await waitFor('the second database serving again', async () => {
      const replies = await Promise.all(away.map((id) => send(id, 'Reserve', { reservationId: 'after', qty: 1 }, `${id}-after`)));
      return replies.every((reply) => reply.ok) ? replies : undefined;
    }, 30_000);
    // Its followers catch up from their checkpoints: a write made there is read back.
    const last = after[after.length - 1]!;
    expect(last.ok && (await stockAfter(away[away.length - 1]!, last.token!))).toMatchObject({ reserved: 1 });
    await waitFor('every follower back within budget', async () => {
      const listed = await runCli(['projections', '--json'], { PPOS_DATABASE_URL: bothUrls(), PPOS_NATS_URL: nats.url });
      const reports = JSON.parse(listed.stdout) as { name: string; status: string }[];
      return reports.length === 6 && reports.every((r) => r.status === 'ok') ? reports : undefined;
    });
    // Nothing of the refused commands was written; everything of the first database's was.
    for (const id of away) expect(await rowsOf('ppos_events', id)).toEqual([0, 2]);
    for (const id of home) expect(await rowsOf('ppos_events', id)).toEqual([n + 1, 0]);
  }, 60_000);

  it('a second database gone silent (connections open, nothing answered) holds up only its own actors', async () => {
    const home = idsIn(0, 4, 'silent');
    const away = idsIn(1, 4, 'silent');
    for (const id of [...home, ...away]) expect(code(await send(id, 'Receive', { qty: 100 }, `${id}-stock`))).toBe('OK');
    proxy.freeze();
    try {
      const until = Date.now() + LEASE_MS * 3;
      let n = 0;
      while (Date.now() < until) {
        n += 1;
        // Answered well within the lease, however long the silent database keeps its statements.
        const replies = await Promise.all(home.map((id) => client.send('inventory', id, 'Receive', { qty: 1 }, { messageId: `${id}-frozen-${n}`, timeoutMs: LEASE_MS })));
        for (const reply of replies) expect(code(reply), JSON.stringify(reply)).toBe('OK');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Its own actors are not served meanwhile (refused, or not answered at all).
      const awayReply = await client.send('inventory', away[0]!, 'Receive', { qty: 1 }, { messageId: `${away[0]}-frozen`, timeoutMs: 1_000 }).catch(() => null);
      expect(awayReply?.ok ?? false).toBe(false);
    } finally {
      proxy.restore();
    }
    await waitFor('the silent database serving again', async () => {
      const replies = await Promise.all(away.map((id) => send(id, 'Receive', { qty: 1 }, `${id}-thawed`)));
      return replies.every((reply) => reply.ok) || undefined;
    }, 40_000);
  }, 90_000);

  it('verify and history read both databases', async () => {
    const env = { PPOS_DATABASE_URL: bothUrls(), PPOS_NATS_URL: nats.url };
    const [away] = idsIn(1, 1, 'home');
    const history = await runCli(['history', 'inventory', away!, '--json'], env);
    expect(history.code, history.stderr).toBe(0);
    expect(history.stdout).toContain('Reserved');
    const then = await runCli(['state', 'inventory', away!, '--at', '1', '--json'], env);
    expect(then.code, then.stderr).toBe(0);
    expect(JSON.parse(then.stdout)).toMatchObject({ kind: 'inventory', id: away, state: { onHand: 10, reserved: 0 } });
    const verified = await runCli(['verify', '--all'], env);
    expect(verified.code, verified.stderr + verified.stdout).toBe(0);
    const record = JSON.parse(verified.stdout) as { confidence_status: string; projections_changed: number };
    expect(record.confidence_status).toBe('trusted');
    expect(record.projections_changed).toBe(0);

    // A hand edit of the row of an actor in the second database is caught, and a rebuild mends it.
    await first.query('UPDATE ppos_proj_stock SET on_hand = on_hand + 1000, available = available + 1000 WHERE id = $1', [away]);
    const tampered = await runCli(['verify', '--all'], env);
    expect(tampered.code).toBe(1);
    expect(JSON.parse(tampered.stdout)).toMatchObject({ confidence_status: 'suspect', projections_changed: 1 });
    const rebuilt = await runCli(['projections', 'rebuild', 'stock'], env);
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    expect(JSON.parse(rebuilt.stdout)).toMatchObject({ projection: 'stock', projections_changed: 1 });
    const again = await runCli(['verify', '--all'], env);
    expect(JSON.parse(again.stdout)).toMatchObject({ confidence_status: 'trusted', projections_changed: 0 });
  }, 60_000);
});
