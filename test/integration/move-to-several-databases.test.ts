// Moving a running journal from one database to two, as docs/several-databases.md says: stop the
// node, copy the journal into the new database with pg_dump and pg_restore, run
// scripts/split-journal.sql in each, start with both URLs. Afterwards every actor is in its
// shard's database only, repeats still get their first answers, verify (projections included)
// is trusted, and the projections and the export go on from where they were, nothing applied or
// published twice.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseOfShard } from '../../persistence/database-layout.js';
import type { Reply } from '../../runtime/envelope.js';
import type { QueryReply } from '../../runtime/query-service.js';
import { shardOf } from '../../runtime/sharding.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import { runCli } from '../helpers/cli.js';
import { readJournalStream } from '../helpers/journal-stream.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const pgBin = (tool: string): string => (process.env.PPOS_TEST_PG_BIN ? path.join(process.env.PPOS_TEST_PG_BIN, tool) : tool);
const SPLIT_SCRIPT = path.resolve(import.meta.dirname, '../../scripts/split-journal.sql');
const SHARDS = 16;
const FOLLOWERS = ['stock', 'workorders', 'export'];

let first: TestDatabase;
let second: TestDatabase;
let nats: PrivateNatsServer;
let node: RunningNode | undefined;
let client: PposClient;
let dumpDir: string;

const SKUS = Array.from({ length: 24 }, (_, i) => `mv-sku-${i}`);
const databaseOf = (id: string): number => databaseOfShard(shardOf({ kind: 'inventory', id }, SHARDS), { databases: 2, shards: SHARDS });
const send = (id: string, type: string, payload: Record<string, unknown>, messageId: string): Promise<Reply> =>
  client.send('inventory', id, type, payload, { messageId, timeoutMs: 10_000 });
const stockRow = async (id: string, after: string): Promise<Record<string, unknown> | undefined> => {
  const reply = (await client.request('ppos.query.stock', JSON.stringify({ where: { id }, after, timeoutMs: 10_000 }), 15_000)) as unknown as QueryReply;
  if (!reply.ok) throw new Error(JSON.stringify(reply));
  return reply.rows[0];
};
const eventCount = async (db: TestDatabase, id: string): Promise<number> =>
  (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM ppos_events WHERE kind = 'inventory' AND actor_id = $1", [id])).rows[0]!.n;

beforeAll(async () => {
  [first, second, nats] = await Promise.all([createTestDatabase(), createTestDatabase(), startNats()]);
  client = await PposClient.connect(nats.url);
  dumpDir = await mkdtemp(path.join(os.tmpdir(), 'ppos-move-'));
});

afterAll(async () => {
  await client?.close();
  await node?.stop();
  await nats?.stop();
  await first?.drop();
  await second?.drop();
  if (dumpDir) await rm(dumpDir, { recursive: true, force: true });
});

describe('moving a journal from one database to two, offline', () => {
  const replies = new Map<string, Reply>();

  it('runs on one database first, its followers caught up', async () => {
    node = await startTestNode(nats.url, first.url, { shardCount: SHARDS, followers: FOLLOWERS });
    let last: Reply | undefined;
    for (const id of SKUS) {
      replies.set(`${id}-r`, await send(id, 'Receive', { qty: 20 }, `${id}-r`));
      last = await send(id, 'Reserve', { reservationId: 'old', qty: 3 }, `${id}-s`);
      replies.set(`${id}-s`, last);
    }
    expect(last?.ok).toBe(true);
    expect(await stockRow(SKUS[SKUS.length - 1]!, (last as Extract<Reply, { ok: true }>).token!)).toMatchObject({ reserved: 3 });
    await waitFor('the export to publish every event', async () => (await readJournalStream(nats.url)).length === SKUS.length * 2 || undefined);
    await node.stop();
    node = undefined;
  }, 60_000);

  it('is copied into the second database and split with scripts/split-journal.sql', async () => {
    const dump = path.join(dumpDir, 'journal.dump');
    await run(pgBin('pg_dump'), ['--format=custom', `--file=${dump}`, `--dbname=${first.url}`]);
    await run(pgBin('pg_restore'), ['--no-owner', `--dbname=${second.url}`, dump]);
    for (const [index, db] of [first, second].entries()) {
      await run(pgBin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', 'databases=2', '-v', `shards=${SHARDS}`, '-v', `index=${index}`, '-f', SPLIT_SCRIPT, db.url]);
    }
    for (const id of SKUS) {
      const counts = [await eventCount(first, id), await eventCount(second, id)];
      expect(counts).toEqual(databaseOf(id) === 0 ? [2, 0] : [0, 2]);
    }
    expect(SKUS.some((id) => databaseOf(id) === 0) && SKUS.some((id) => databaseOf(id) === 1)).toBe(true);
  }, 60_000);

  it('serves from both: repeats get their first answers, new commands land in their database, followers go on from their checkpoints', async () => {
    node = await startTestNode(nats.url, `${first.url},${second.url}`, { shardCount: SHARDS, followers: FOLLOWERS });
    for (const id of SKUS) {
      const again = await send(id, 'Reserve', { reservationId: 'old', qty: 3 }, `${id}-s`);
      const before = replies.get(`${id}-s`) as Extract<Reply, { ok: true }>;
      expect(again).toMatchObject({ ok: true, duplicate: true, seq: before.seq, events: before.events });
      const fresh = await send(id, 'Reserve', { reservationId: 'new', qty: 2 }, `${id}-n`);
      expect(fresh.ok).toBe(true);
      if (!fresh.ok) return;
      expect(await stockRow(id, fresh.token!)).toMatchObject({ onHand: 20, reserved: 5, available: 15, openReservations: 2 });
    }
    // Each event in the stream once: the split kept the export's place in both databases.
    const streamed = await waitFor('the export to publish the new events', async () => {
      const read = await readJournalStream(nats.url);
      return read.length >= SKUS.length * 3 ? read : undefined;
    });
    expect(streamed).toHaveLength(SKUS.length * 3);
    expect(new Set(streamed.map((m) => m.msgId)).size).toBe(SKUS.length * 3);

    const env = { PPOS_DATABASE_URL: `${first.url},${second.url}`, PPOS_NATS_URL: nats.url };
    const verified = await runCli(['verify', '--all'], env);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ confidence_status: 'trusted', projections_changed: 0 });
    // The old list alone is refused now: the first database knows it has a second.
    const alone = await runCli(['history', 'inventory', SKUS[0]!], { ...env, PPOS_DATABASE_URL: first.url });
    expect(alone.code).not.toBe(0);
    expect(alone.stderr).toMatch(/database 1 of 2/);
  }, 90_000);
});
