// Each node is the NATS micro service `ppos` (what `nats micro ls/info/stats` read), its node
// stats add up to what it did, and the cluster listings (`ppos actors`, `ppos nodes`) gather
// every node.
import { readFileSync } from 'node:fs';
import { Svcm, type ServiceClient, type ServiceInfo, type ServiceStats } from '@nats-io/services';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { desiredOwner, shardOf } from '../../runtime/sharding.js';
import { runCli, runCliJson, type CliTarget } from './cli.js';
import { waitUntil } from './wait.js';

const packageVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function collect<T>(iterator: Promise<AsyncIterable<T>>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of await iterator) items.push(item);
  return items;
}

describe('one node', () => {
  let db: TestDatabase;
  let nats: PrivateNatsServer;
  let node: RunningNode;
  let client: PposClient;
  let micro: ServiceClient;
  let target: CliTarget;

  beforeAll(async () => {
    [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
    node = await startTestNode(nats.url, db.url, { snapshotEvery: 10, passivateAfterMs: 400 });
    client = await PposClient.connect(nats.url);
    micro = new Svcm(client.nc as unknown as ConstructorParameters<typeof Svcm>[0]).client({ strategy: 'timer', maxWait: 500 });
    target = { natsUrl: nats.url, databaseUrl: db.url };
  });

  afterAll(async () => {
    await client?.close();
    await node?.stop();
    await nats?.stop();
    await db?.drop();
  });

  it('registers as the micro service ppos with its version, node id, incarnation and its operator endpoints', async () => {
    const infos = await collect<ServiceInfo>(micro.info('ppos'));
    expect(infos).toHaveLength(1);
    const info = infos[0]!;
    expect(info).toMatchObject({ name: 'ppos', version: packageVersion, metadata: { node: node.nodeId, incarnation: node.incarnation } });
    expect(info.endpoints.map((e) => [e.name, e.subject, e.queue_group])).toEqual([
      ['inspect', 'ppos.inspect.>', 'ppos'],
      ['inspect-node', `ppos.internal.inspect.${node.incarnation}.>`, ''],
      ['actors', 'ppos.nodes.actors', ''],
      ['actors-page', `ppos.nodes.actors.${node.incarnation}`, ''],
      ['query', 'ppos.query.*', 'ppos'],
      ['kinds', 'ppos.nodes.kinds', ''],
      ['stats', 'ppos.nodes.stats', ''],
    ]);
    const pings = await collect(micro.ping('ppos'));
    expect(pings.map((p) => p.id)).toEqual([info.id]);
  });

  it('counts inspections in the service stats and carries the node stats on the stats endpoint', async () => {
    const before = (await collect<ServiceStats>(micro.stats('ppos')))[0]!;
    const inspectBefore = before.endpoints!.find((e) => e.name === 'inspect')!.num_requests;
    for (let i = 0; i < 5; i += 1) await client.inspect('inventory', `svc-${i}`);
    const after = (await collect<ServiceStats>(micro.stats('ppos')))[0]!;
    expect(after.endpoints!.find((e) => e.name === 'inspect')!.num_requests).toBe(inspectBefore + 5);
    const data = after.endpoints!.find((e) => e.name === 'stats')!.data as Record<string, unknown>;
    expect(data).toMatchObject({ node: node.nodeId, uptimeSeconds: expect.any(Number), inspections: expect.any(Number) });
  });

  it('reports commands, latencies, activations, passivations and snapshots as they happened', async () => {
    const statsBefore = (await client.gather('stats'))[0]!;
    for (let i = 0; i < 25; i += 1) {
      const reply = await client.send('inventory', 'stat-1', 'Receive', { qty: 1 });
      expect(reply.ok).toBe(true);
    }
    expect((await client.send('inventory', 'stat-1', 'Adjust', { onHand: -1 })).ok).toBe(false);
    // stat-1 goes idle: the sweeper unloads it.
    await expect.poll(() => node.registry.list().length, { timeout: 10_000 }).toBe(0);
    // Snapshots at 10 and 20 are saved after their commits; wait for both to be counted.
    await expect.poll(async () => ((await client.gather('stats'))[0]!.snapshotsSaved as number) - (statsBefore.snapshotsSaved as number), { timeout: 10_000 }).toBe(2);
    const snapshots = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM ppos_snapshots WHERE actor_id = 'stat-1'");
    expect(snapshots.rows[0]!.n).toBe(2);

    const nodes = await runCliJson<{ nodes: Record<string, unknown>[] }>(target, ['nodes']);
    expect(nodes.nodes).toHaveLength(1);
    const stats = nodes.nodes[0]!;
    expect(stats.node).toBe(node.nodeId);
    expect(stats.commands).toBe((statsBefore.commands as number) + 26);
    expect((stats.outcomes as Record<string, number>).ok).toBeGreaterThanOrEqual(25);
    expect((stats.outcomes as Record<string, number>).BAD_REQUEST).toBeGreaterThanOrEqual(1);
    for (const key of ['latencyMs', 'appendLatencyMs'] as const) {
      const p = stats[key] as { p50: number; p99: number };
      expect(p.p50).toBeGreaterThan(0);
      expect(p.p99).toBeGreaterThanOrEqual(p.p50);
    }
    expect(stats.activations).toBeGreaterThanOrEqual(1);
    expect(stats.passivations).toBeGreaterThanOrEqual(1);
    expect(stats.activeActors).toBe(0);
    expect(stats.uptimeSeconds).toEqual(expect.any(Number));
    expect(stats.commandsPerSecond).toEqual(expect.any(Number));

    const human = await runCli(target, ['nodes']);
    expect(human.stdout).toMatch(/^node\s+uptime s\s+commands\s+cmd\/s\s+p50 ms\s+p99 ms/m);
    expect(human.stdout).toContain(node.nodeId);
  });

  it('inspects a passivated actor from the journal without activating it', async () => {
    await expect.poll(() => node.registry.list().length, { timeout: 10_000 }).toBe(0);
    const activations = (await client.gather('stats'))[0]!.activations;
    const view = await runCliJson(target, ['inspect', 'inventory', 'stat-1']);
    expect(view).toMatchObject({ status: 'passivated', seq: 25, snapshotSeq: 20, mailboxDepth: 0, context: { onHand: 25 } });
    expect((await client.gather('stats'))[0]!.activations).toBe(activations);
    expect(node.registry.list()).toEqual([]);
  });
});

describe('two nodes sharing one journal', () => {
  const SHARDS = 8;
  let db: TestDatabase;
  let nats: PrivateNatsServer;
  let nodes: RunningNode[];
  let client: PposClient;
  let target: CliTarget;
  const actors = Array.from({ length: 12 }, (_, i) => `spread-${i}`);

  async function ownerOf(id: string): Promise<string> {
    const shard = shardOf({ kind: 'inventory', id }, SHARDS);
    const rows = await db.query<{ owner: string }>('SELECT owner FROM ppos_shard_leases WHERE shard = $1', [shard]);
    return rows.rows[0]!.owner;
  }

  beforeAll(async () => {
    [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
    nodes = [];
    for (const nodeId of ['node-a', 'node-b']) nodes.push(await startTestNode(nats.url, db.url, { nodeId, shardCount: SHARDS, leaseMs: 4_000 }));
    client = await PposClient.connect(nats.url);
    target = { natsUrl: nats.url, databaseUrl: db.url };
    // Rebalancing has finished before anything is sent: every shard is held by the node
    // rendezvous hashing gives it to. Waiting only until both nodes hold *some* shards let a
    // shard move after its actor was activated, so the new owner had it passivated.
    const members = nodes.map((n) => n.nodeId).sort();
    await waitUntil(
      'every shard on its settled owner',
      async () =>
        (await db.query<{ shard: number; owner: string }>('SELECT shard, owner FROM ppos_shard_leases WHERE expires_at > now()')).rows,
      (rows) => rows.length === SHARDS && rows.every((r) => r.owner === desiredOwner(r.shard, members)),
    );
    // ... and each node has read that table, so the one a request reaches knows where to send it.
    const settled = Array.from({ length: SHARDS }, (_, shard) => desiredOwner(shard, members));
    await waitUntil(
      'every node to see the settled owners',
      async () => nodes.map((n) => n.cluster!.view().shards.map((v) => v.owner)),
      (views) => views.every((owners) => JSON.stringify(owners) === JSON.stringify(settled)),
    );
    for (const [i, id] of actors.entries()) {
      const reply = await client.sendWithRetry('inventory', id, 'Receive', { qty: i + 1 }, { deadlineMs: 20_000 });
      if (!reply.ok) throw new Error(`Receive on ${id}: ${JSON.stringify(reply.error)}`);
    }
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    for (const node of nodes ?? []) await node.stop();
    await nats?.stop();
    await db?.drop();
  });

  it('answers every inspection from the actor\'s owner, whichever node the request reaches', async () => {
    for (const [i, id] of actors.entries()) {
      const owner = await ownerOf(id);
      for (let attempt = 0; attempt < 4; attempt += 1) {
        const view = await client.inspect('inventory', id);
        expect({ id, node: view.node, status: view.status, seq: view.seq, onHand: (view.context as { onHand: number }).onHand }).toEqual({
          id,
          node: owner,
          status: 'active',
          seq: 1,
          onHand: i + 1,
        });
      }
    }
  });

  it('ppos actors lists every active actor of every node, each on its owner', async () => {
    const listing = await runCliJson<{ nodes: string[]; actors: Record<string, unknown>[] }>(target, ['actors']);
    expect([...listing.nodes].sort()).toEqual(nodes.map((n) => n.nodeId).sort());
    const expected = nodes.flatMap((n) => n.registry.list().map((a) => [n.nodeId, a.kind, a.id, a.seq, a.mailboxDepth]));
    expect(listing.actors.map((a) => [a.node, a.kind, a.id, a.seq, a.mailboxDepth]).sort()).toEqual(expected.sort());
    for (const id of actors) expect(listing.actors.filter((a) => a.id === id).map((a) => a.node)).toEqual([await ownerOf(id)]);

    const human = await runCli(target, ['actors', '--sort', 'seq']);
    expect(human.stdout).toContain(`2 node(s), ${listing.actors.length} active actor(s)`);
    expect(human.stdout).toMatch(/^node\s+kind\s+id\s+seq\s+mailbox\s+messages\s+activated/m);
  });

  it('both nodes answer the micro service discovery', async () => {
    const micro = new Svcm(client.nc as unknown as ConstructorParameters<typeof Svcm>[0]).client({ strategy: 'timer', maxWait: 500 });
    const infos = await collect<ServiceInfo>(micro.info('ppos'));
    expect(infos.map((i) => i.metadata?.node).sort()).toEqual(nodes.map((n) => n.nodeId).sort());
  });
});
