// Requests anyone may send must not let one sender slow every node: listings are paged and taken
// at most once a second, cluster notices run the lease cycle at most once per interval however
// many arrive, and queries of actors that never existed are answered without activating them.
import { describe, expect, it } from 'vitest';
import { CLUSTER_CHANGED_SUBJECT, NODES_SUBJECT } from '../../runtime/subjects.js';
import { useSuite } from '../helpers/suite.js';
import { sleep } from '../helpers/wait.js';

const suite = useSuite();

describe('the active-actor listing', () => {
  it('answers a page at a time, and takes the listing at most once a second however often it is asked', async () => {
    const actors = 1_200;
    for (let i = 0; i < actors; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, k) => suite.client.send('inventory', `list-${i + k}`, 'Receive', { qty: 1 })));
    }
    const registry = suite.node!.registry;
    const list = registry.list.bind(registry);
    let listings = 0;
    registry.list = () => {
      listings += 1;
      return list();
    };

    const started = Date.now();
    const requests = 200;
    for (let i = 0; i < requests; i += 1) {
      const page = (await suite.client.nc.request(`${NODES_SUBJECT}.actors`, '', { timeout: 5_000 })).json<{ total: number; actors: unknown[]; next?: string }>();
      expect(page.total).toBe(actors);
      expect(page.actors.length).toBeLessThanOrEqual(500);
      expect(page.next).toEqual(expect.any(String));
    }
    const seconds = (Date.now() - started) / 1_000;
    expect(listings).toBeLessThanOrEqual(Math.ceil(seconds) + 1);

    // A client still gets every actor, page after page.
    const [node] = await suite.client.activeActors();
    expect(node!.actors).toHaveLength(actors);
    expect(new Set(node!.actors.map((a) => a.id)).size).toBe(actors);
  });
});

describe('cluster notices', () => {
  it('run the lease cycle at most a few times however many arrive', async () => {
    // Count the node's heartbeats (one per lease cycle) in the database itself.
    await suite.db.query(`
      CREATE TABLE test_heartbeats (n bigint NOT NULL DEFAULT 0);
      INSERT INTO test_heartbeats VALUES (0);
      CREATE FUNCTION test_count_heartbeat() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN UPDATE test_heartbeats SET n = n + 1; RETURN NEW; END $$;
      CREATE TRIGGER test_count_heartbeat AFTER UPDATE ON ppos_nodes FOR EACH ROW EXECUTE FUNCTION test_count_heartbeat();
    `);
    const beats = async (): Promise<number> => Number((await suite.db.query<{ n: string }>('SELECT n FROM test_heartbeats')).rows[0]!.n);
    const before = await beats();
    const started = Date.now();
    for (let burst = 0; burst < 10; burst += 1) {
      for (let i = 0; i < 500; i += 1) suite.client.nc.publish(CLUSTER_CHANGED_SUBJECT, `flood-${i}`);
      await suite.client.nc.flush();
      await sleep(100);
    }
    await sleep(500);
    const seconds = (Date.now() - started) / 1_000;
    // 5000 notices: one cycle per 200 ms at most, plus the regular renewals (every 2 s).
    expect(await beats() - before).toBeLessThanOrEqual(Math.ceil(seconds * 5) + Math.ceil(seconds / 2) + 2);
  });
});

describe('queries of actors that never existed', () => {
  it('are answered from the initial state without activating anything', async () => {
    const before = suite.node!.registry.size;
    const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => suite.client.send('inventory', `ghost-${i}`, 'Get', undefined)));
    for (const reply of replies) expect(reply).toEqual({ ok: true, duplicate: false, seq: 0, events: [], state: expect.objectContaining({ onHand: 0, reserved: 0 }) });
    const workorder = await suite.client.send('workorder', 'ghost-wo', 'Get', undefined);
    expect(workorder).toMatchObject({ ok: true, seq: 0, state: { status: 'none' } });
    expect(suite.node!.registry.size).toBe(before);

    // An actor with a journal is activated and answered from it, as before.
    await suite.client.send('inventory', 'real-1', 'Receive', { qty: 4 });
    expect(await suite.client.send('inventory', 'real-1', 'Get', undefined)).toMatchObject({ ok: true, seq: 1, state: { onHand: 4 } });
    // A bad query is still refused, before any journal read.
    expect(await suite.client.send('inventory', 'ghost-x', 'Get', { nonsense: 1 })).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
  });
});
