// Durable timers: a hold (Reserve with holdMs) expires on time and frees its stock, exactly once,
// through a SIGKILL of its owner just before the deadline and through a takeover after it; a
// hold consumed or released first never expires. Over real NATS and PostgreSQL, with nodes as
// child processes (killed as a crash kills them).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import { PgJournal } from '../../persistence/pg-journal.js';
import { verifyJournals } from '../../runtime/verify.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { NodeProcess } from '../../src/spawn.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { sleep, waitFor } from '../helpers/wait.js';

let db: TestDatabase;
let nats: PrivateNatsServer;
let client: PposClient;
let node: NodeProcess | undefined;

async function launch(): Promise<NodeProcess> {
  const started = new NodeProcess({ nats: nats.url, databaseUrl: db.url, nodeId: 'timer-node', args: ['--followers', 'none'], env: { PPOS_TIMER_POLL_MS: '50' } });
  node = started;
  await started.ready;
  return started;
}

const send = (sku: string, type: string, payload: Record<string, unknown>) => client.sendWithRetry('inventory', sku, type, payload, { deadlineMs: 20_000 });
const expiries = async (sku: string): Promise<number> =>
  (await db.query("SELECT count(*)::int AS n FROM ppos_events WHERE kind = 'inventory' AND actor_id = $1 AND type = 'HoldExpired'", [sku])).rows[0].n as number;
const timerRows = async (sku: string): Promise<number> =>
  (await db.query("SELECT count(*)::int AS n FROM ppos_timers WHERE kind = 'inventory' AND actor_id = $1", [sku])).rows[0].n as number;
const available = async (sku: string): Promise<number> => {
  const reply = await send(sku, 'Get', {});
  if (!reply.ok) throw new Error(JSON.stringify(reply));
  return (reply.state as { available: number }).available;
};

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  await launch();
  client = await PposClient.connect(nats.url);
}, 60_000);

afterAll(async () => {
  await client?.close();
  await node?.crash();
  await nats?.stop();
  await db?.drop();
});

describe('a hold with a deadline', () => {
  it('expires on time, frees its stock, and is journaled once; inspection shows the timer until then', async () => {
    await send('sku-t1', 'Receive', { qty: 10 });
    const started = Date.now();
    const reserved = await send('sku-t1', 'Reserve', { reservationId: 'r-1', qty: 4, holdMs: 1_000 });
    expect(reserved).toMatchObject({ ok: true, events: [{ type: 'Reserved', expiresAt: expect.any(Number) }] });
    const inspection = await client.inspect('inventory', 'sku-t1');
    expect(inspection.timers).toMatchObject([{ key: 'r-1', command: { type: 'ExpireHold', payload: { reservationId: 'r-1' } } }]);
    expect(await available('sku-t1')).toBe(6);
    await waitFor('the hold to expire', async () => (await expiries('sku-t1')) === 1, 10_000);
    // Not early: the deadline counts from when the Reserve was received.
    const expiredAt = (await db.query("SELECT recorded_at FROM ppos_events WHERE actor_id = 'sku-t1' AND type = 'HoldExpired'")).rows[0].recorded_at as Date;
    expect(expiredAt.getTime()).toBeGreaterThanOrEqual(started + 1_000 - 50);
    expect(await available('sku-t1')).toBe(10);
    expect(await timerRows('sku-t1')).toBe(0);
    await sleep(500);
    expect(await expiries('sku-t1')).toBe(1);
    // The hold is gone: consuming it now is refused, nothing is taken.
    expect(await send('sku-t1', 'Consume', { reservationId: 'r-1' })).toMatchObject({ ok: false, error: { reason: 'UNKNOWN_RESERVATION' } });
  }, 30_000);

  it('consumed or released before its deadline, never expires', async () => {
    await send('sku-t2', 'Receive', { qty: 10 });
    await send('sku-t2', 'Reserve', { reservationId: 'r-c', qty: 2, holdMs: 600 });
    await send('sku-t2', 'Reserve', { reservationId: 'r-r', qty: 3, holdMs: 600 });
    expect(await timerRows('sku-t2')).toBe(2);
    await send('sku-t2', 'Consume', { reservationId: 'r-c' });
    await send('sku-t2', 'Release', { reservationId: 'r-r' });
    // Removed in the same commits as the Consumed and Released.
    expect(await timerRows('sku-t2')).toBe(0);
    await sleep(1_200);
    expect(await expiries('sku-t2')).toBe(0);
    expect(await send('sku-t2', 'Get', {})).toMatchObject({ ok: true, state: { onHand: 8, reserved: 0 } });
  }, 30_000);

  it('a SIGKILL of the owner just before the deadline still gives exactly one HoldExpired', async () => {
    await send('sku-t3', 'Receive', { qty: 5 });
    await send('sku-t3', 'Reserve', { reservationId: 'r-k', qty: 5, holdMs: 700 });
    await sleep(600);
    await node!.crash();
    await sleep(300); // due while nobody owns the shard
    await launch();
    await waitFor('the overdue hold to expire after the restart', async () => (await expiries('sku-t3')) === 1, 15_000);
    await sleep(500);
    expect(await expiries('sku-t3')).toBe(1);
    expect(await available('sku-t3')).toBe(5);
  }, 60_000);

  it('a takeover fires overdue timers once, and verify finds every timer where the holds say', async () => {
    await send('sku-t4', 'Receive', { qty: 9 });
    for (let i = 0; i < 3; i += 1) await send('sku-t4', 'Reserve', { reservationId: `r-o${i}`, qty: 1, holdMs: 500 });
    await send('sku-t4', 'Reserve', { reservationId: 'r-long', qty: 1, holdMs: 600_000 });
    await node!.stop(); // drained: the shards are free, nobody fires
    await sleep(900);
    expect(await expiries('sku-t4')).toBe(0);
    await launch();
    await waitFor('the overdue holds to expire on takeover', async () => (await expiries('sku-t4')) === 3, 15_000);
    await sleep(500);
    expect(await expiries('sku-t4')).toBe(3);
    expect(await timerRows('sku-t4')).toBe(1);
    const journal = new PgJournal({ connectionString: db.url, poolSize: 2 });
    try {
      const evidence = await verifyJournals({ journal, kinds: actorKinds });
      expect(evidence.checks).toContain('timers_match_holds');
      expect(evidence.reconciliation_failures).toEqual([]);
      // A timer that points at nothing is named.
      await db.query("INSERT INTO ppos_timers (kind, actor_id, key, shard, set_seq, due_at, command) VALUES ('inventory', 'sku-t4', 'r-ghost', 0, 1, now() + interval '1 hour', '{}')");
      const broken = await verifyJournals({ journal, kinds: actorKinds, actors: [{ kind: 'inventory', id: 'sku-t4' }] });
      expect(JSON.stringify(broken.reconciliation_failures)).toMatch(/timer r-ghost points at nothing/);
    } finally {
      await journal.close();
    }
  }, 60_000);
});
