// Several nodes share the actors: each shard has one fenced owner at a time, even while nodes
// die, pause, join and drain. Nodes are real child processes; the database is checked directly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import { PposClient } from '../../src/client.js';
import { openJournal, type OpenedJournal } from '../../src/database.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { Random } from '../../src/random.js';
import { NodeProcess } from '../../src/spawn.js';
import { crossActorChecks } from '../../runtime/cross-checks.js';
import type { Reply } from '../../runtime/envelope.js';
import { shardOf } from '../../runtime/sharding.js';
import { verifyJournals } from '../../runtime/verify.js';
import { LeaseStore } from '../../persistence/leases.js';
import { silentLogger } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';

const LEASE_MS = 1_500;
const SHARDS = 32;
const SEED = Number(process.env.PPOS_TEST_SEED ?? 6006);

let db: TestDatabase;
let nats: PrivateNatsServer;
let client: PposClient;
let opened: OpenedJournal;
const nodes = new Map<string, NodeProcess>();

function launch(nodeId: string): NodeProcess {
  const node = new NodeProcess({
    nats: nats.url,
    databaseUrl: db.url,
    nodeId,
    args: ['--lease-ms', String(LEASE_MS), '--shards', String(SHARDS), '--snapshot-every', '10'],
    env: { PPOS_SAGA_RESUME_MS: '500' },
  });
  nodes.set(nodeId, node);
  return node;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Every shard has an unexpired lease held by one of `live`, and every live node holds some. */
async function ownershipSettled(live: readonly string[]): Promise<boolean> {
  const rows = await db.query<{ owner: string | null; valid: boolean }>('SELECT owner, expires_at > now() AS valid FROM ppos_shard_leases');
  if (rows.rows.length !== SHARDS) return false;
  if (!rows.rows.every((r) => r.valid && r.owner !== null && live.includes(r.owner))) return false;
  const owners = new Set(rows.rows.map((r) => r.owner));
  return live.every((n) => owners.has(n));
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Per shard, epochs never go down in commit order: no append from an owner that lost the shard. */
async function staleAppends(): Promise<string[]> {
  const rows = await db.query<{ kind: string; actor_id: string; epoch: number; position: number }>(
    'SELECT kind, actor_id, epoch, position FROM ppos_events ORDER BY position',
  );
  const highest = new Map<number, number>();
  const stale: string[] = [];
  for (const row of rows.rows) {
    const shard = shardOf({ kind: row.kind, id: row.actor_id }, SHARDS);
    if (row.epoch < (highest.get(shard) ?? 0)) stale.push(`${row.kind}/${row.actor_id} at position ${row.position} with epoch ${row.epoch}`);
    highest.set(shard, Math.max(row.epoch, highest.get(shard) ?? 0));
  }
  return stale;
}

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  client = await PposClient.connect(nats.url);
  opened = await openJournal({ databaseUrl: db.url, dataDir: '.ppos' }, silentLogger, { poolSize: 2 });
});

afterAll(async () => {
  for (const node of nodes.values()) {
    node.child.kill('SIGCONT');
    await node.crash();
  }
  await client?.close();
  await opened?.close();
  await nats?.stop();
  await db?.drop();
});

describe('fencing in the journal', () => {
  it('refuses an append carrying an old epoch, in the database, and writes nothing', async () => {
    const leases = new LeaseStore(opened.journal.first.pool);
    await leases.ensureShards(SHARDS);
    const ref = { kind: 'inventory', id: 'fenced-sku' };
    const shard = shardOf(ref, SHARDS);
    await leases.register('node-old', 'inc-old', 60_000);
    await leases.register('node-new', 'inc-new', 60_000);
    const [old] = await leases.acquire('node-old', 'inc-old', [shard], 60_000);
    // The lease moves on (as after expiry): a new owner, a new epoch.
    await opened.journal.first.pool.query('UPDATE ppos_shard_leases SET expires_at = now() - interval \'1 second\' WHERE shard = $1', [shard]);
    const [fresh] = await leases.acquire('node-new', 'inc-new', [shard], 60_000);
    expect(fresh!.epoch).toBe(old!.epoch + 1);
    const append = (epoch: number, messageId: string) =>
      opened.journal.append({
        ref,
        expectedSeq: 0,
        event: { type: 'Received', qty: 1 },
        messageId,
        fingerprint: messageId,
        reply: { ok: true, seq: 1, events: [{ type: 'Received', qty: 1 }] },
        machineVersion: 1,
        recordedAt: new Date(),
        epoch,
        shard,
      });
    expect(await append(old!.epoch, 'from-the-old-owner')).toEqual({ status: 'fenced' });
    const count = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM ppos_events WHERE actor_id = 'fenced-sku'");
    expect(count.rows[0]!.n).toBe(0);
    const dedupe = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM ppos_dedupe WHERE actor_id = 'fenced-sku'");
    expect(dedupe.rows[0]!.n).toBe(0);
    expect(await append(fresh!.epoch, 'from-the-new-owner')).toMatchObject({ status: 'committed' });
    // Give the shard back so the cluster below can use it.
    await leases.release('node-new', 'inc-new', [fresh!]);
    await leases.leave('node-old', 'inc-old');
    await leases.leave('node-new', 'inc-new');
  });
});

describe('three nodes under load', () => {
  it(`keep one owner per shard and exactly-once effect through a kill, a pause, a join and a drain (seed ${SEED})`, async () => {
    const random = new Random(SEED);
    for (const id of ['n1', 'n2', 'n3']) launch(id);
    await Promise.all([...nodes.values()].map((n) => n.ready));
    await waitFor('three owners', () => ownershipSettled(['n1', 'n2', 'n3']));

    const skus = Array.from({ length: 40 }, (_, i) => `sku-${i}`);
    const acked = new Map<string, Reply>();
    let stop = false;
    let sent = 0;
    const load = Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        while (!stop) {
          const sku = skus[random.skewed(skus.length)]!;
          const messageId = `w${worker}-${sent++}`;
          const reply = await client.sendWithRetry('inventory', sku, 'Receive', { qty: random.int(1, 5) }, { messageId, timeoutMs: 1_000, deadlineMs: 60_000 });
          acked.set(messageId, reply);
        }
      }),
    );
    const checkpoint = async (live: string[], what: string): Promise<void> => {
      await waitFor(`${what}: ownership settled on ${live.join(', ')}`, () => ownershipSettled(live));
      await sleep(300);
      expect(await staleAppends(), what).toEqual([]);
    };

    await sleep(1_000);
    // 1. A node dies: its shards are taken over once its leases expire.
    await nodes.get('n1')!.crash();
    await checkpoint(['n2', 'n3'], 'after SIGKILL of n1');

    // 2. A node pauses for longer than its lease, then wakes: it must not append.
    const paused = nodes.get('n2')!;
    paused.child.kill('SIGSTOP');
    await sleep(LEASE_MS * 3);
    await waitFor('n3 owns every shard', () => ownershipSettled(['n3']));
    paused.child.kill('SIGCONT');
    await sleep(LEASE_MS);
    await checkpoint(['n2', 'n3'], 'after SIGSTOP/SIGCONT of n2');

    // 3. A fourth node joins: shards spread to it.
    await launch('n4').ready;
    await checkpoint(['n2', 'n3', 'n4'], 'after n4 joined');

    // 4. A node drains: it hands its shards over and exits 0.
    expect(await nodes.get('n3')!.stop()).toBe(0);
    await checkpoint(['n2', 'n4'], 'after n3 drained');

    stop = true;
    await load;
    expect(sent).toBeGreaterThan(50);

    // Every acknowledged command is in the journal exactly once; nothing else is.
    const rows = await db.query<{ message_id: string; n: number }>(
      "SELECT message_id, count(*)::int AS n FROM ppos_events WHERE kind = 'inventory' AND actor_id LIKE 'sku-%' GROUP BY message_id",
    );
    const journaled = new Map(rows.rows.map((r) => [r.message_id, r.n]));
    for (const [messageId, reply] of acked) {
      expect(reply.ok, `${messageId}: ${JSON.stringify(reply)}`).toBe(true);
      expect(journaled.get(messageId), messageId).toBe(1);
    }
    expect([...journaled.keys()].filter((id) => !acked.has(id))).toEqual([]);
    const evidence = await verifyJournals({ journal: opened.journal, kinds: actorKinds, crossChecks: crossActorChecks(actorKinds) });
    expect(evidence.reconciliation_failures).toEqual([]);
    expect(evidence.confidence_status).toBe('trusted');
  }, 180000);
});
