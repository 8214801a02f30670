// Exactly-once effect over NATS and PostgreSQL (CONTRACT.md 3 and 4.3): a message id seen again
// by the same actor returns the first reply with duplicate: true and appends nothing, across
// restarts and passivation; the same id with another command is ID_REUSED.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PposClient } from '../../src/client.js';
import type { NodeConfig } from '../../src/config.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import type { Reply } from '../../runtime/envelope.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

let db: TestDatabase;
let nats: PrivateNatsServer;
let client: PposClient;
const nodes: RunningNode[] = [];

async function node(overrides: Partial<NodeConfig> = {}): Promise<RunningNode> {
  const started = await startTestNode(nats.url, db.url, overrides);
  nodes.push(started);
  return started;
}

async function stop(running: RunningNode): Promise<void> {
  await running.stop();
  nodes.splice(nodes.indexOf(running), 1);
}

const send = (id: string, type: string, payload: Record<string, unknown> | undefined, messageId: string): Promise<Reply> =>
  client.send('inventory', id, type, payload, { messageId });

async function eventsOf(actorId: string): Promise<{ seq: number; type: string; message_id: string }[]> {
  const result = await db.query<{ seq: number; type: string; message_id: string }>(
    "SELECT seq, type, message_id FROM ppos_events WHERE kind = 'inventory' AND actor_id = $1 ORDER BY seq",
    [actorId],
  );
  return result.rows;
}

const code = (reply: Reply): string | undefined => (reply.ok ? undefined : reply.error.code);

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  client = await PposClient.connect(nats.url);
});

afterEach(async () => {
  for (const running of [...nodes].reverse()) await stop(running);
});

afterAll(async () => {
  await client?.close();
  await nats?.stop();
  await db?.drop();
});

describe('duplicate deliveries', () => {
  it('returns the first reply with duplicate: true for a duplicate id after a node restart, appending nothing', async () => {
    const first = await node();
    const received = await send('restart-1', 'Receive', { qty: 10 }, 'rs-1');
    const reserved = await send('restart-1', 'Reserve', { reservationId: 'r1', qty: 4 }, 'rs-2');
    const consumed = await send('restart-1', 'Consume', { reservationId: 'r1' }, 'rs-3');
    expect(consumed).toMatchObject({ ok: true, seq: 3 });
    await stop(first);

    await node();
    // Each repeat answers exactly what its first delivery answered, state as it was then.
    expect(await send('restart-1', 'Receive', { qty: 10 }, 'rs-1')).toEqual({ ...received, duplicate: true });
    expect(await send('restart-1', 'Reserve', { reservationId: 'r1', qty: 4 }, 'rs-2')).toEqual({ ...reserved, duplicate: true });
    expect(await send('restart-1', 'Consume', { reservationId: 'r1' }, 'rs-3')).toEqual({ ...consumed, duplicate: true });
    expect(received).toMatchObject({ seq: 1, state: { onHand: 10, reserved: 0 } });
    expect(reserved).toMatchObject({ seq: 2, state: { onHand: 10, reserved: 4 } });
    expect((await eventsOf('restart-1')).map((e) => e.message_id)).toEqual(['rs-1', 'rs-2', 'rs-3']);

    const next = await send('restart-1', 'Receive', { qty: 1 }, 'rs-4');
    expect(next).toMatchObject({ ok: true, duplicate: false, seq: 4, state: { onHand: 7 } });
  });

  it('returns the first reply for a duplicate id after the actor was passivated for idleness', async () => {
    const running = await node({ passivateAfterMs: 1_000 });
    const first = await send('idle-1', 'Receive', { qty: 3 }, 'idle-m1');
    expect(first).toMatchObject({ ok: true, seq: 1 });
    expect(running.registry.list().map((a) => a.id)).toContain('idle-1');

    await waitFor('idle-1 to be passivated', () => !running.registry.list().some((a) => a.id === 'idle-1'));
    const listed = await client.gather('actors');
    expect(listed.flatMap((n) => (n.actors as { id: string }[]).map((a) => a.id))).not.toContain('idle-1');
    expect(running.registry.counters.passivations).toBeGreaterThanOrEqual(1);
    const activations = running.registry.counters.activations;

    expect(await send('idle-1', 'Receive', { qty: 3 }, 'idle-m1')).toEqual({ ...first, duplicate: true });
    expect(running.registry.counters.activations).toBe(activations + 1);
    expect(await eventsOf('idle-1')).toHaveLength(1);
  });

  it('returns the first reply for a duplicate id after the actor was passivated to stay under the active cap', async () => {
    const running = await node({ maxActiveActors: 2 });
    const first = await send('lru-a', 'Receive', { qty: 1 }, 'lru-m1');
    await send('lru-b', 'Receive', { qty: 1 }, 'lru-m2');
    await send('lru-c', 'Receive', { qty: 1 }, 'lru-m3');
    // lru-a was the least recently used when lru-c arrived.
    expect(running.registry.list().map((a) => a.id).sort()).toEqual(['lru-b', 'lru-c']);
    expect(await send('lru-a', 'Receive', { qty: 1 }, 'lru-m1')).toEqual({ ...first, duplicate: true });
    expect(await eventsOf('lru-a')).toHaveLength(1);
  });

  it('applies a message once when the same id arrives many times at once', async () => {
    await node();
    await send('burst-1', 'Receive', { qty: 100 }, 'burst-stock');
    const replies = await Promise.all(Array.from({ length: 20 }, () => send('burst-1', 'Reserve', { reservationId: 'r', qty: 10 }, 'burst-m')));
    expect(replies.filter((r) => !r.duplicate)).toHaveLength(1);
    const original = replies.find((r) => !r.duplicate)!;
    expect(original).toMatchObject({ ok: true, seq: 2, state: { reserved: 10 } });
    for (const reply of replies) expect(reply).toEqual({ ...original, duplicate: reply.duplicate });
    expect(await eventsOf('burst-1')).toHaveLength(2);
  });

  it('records a REJECTED answer: a retry with the same id gets the same rejection even after the state changed, also after a restart', async () => {
    const first = await node();
    const rejected = await send('rej-1', 'Reserve', { reservationId: 'r1', qty: 5 }, 'rej-m1');
    expect(rejected).toMatchObject({ ok: false, duplicate: false, error: { code: 'REJECTED', reason: 'INSUFFICIENT_STOCK' } });
    await send('rej-1', 'Receive', { qty: 50 }, 'rej-m2');
    expect(await send('rej-1', 'Reserve', { reservationId: 'r1', qty: 5 }, 'rej-m1')).toEqual({ ...rejected, duplicate: true });
    await stop(first);
    await node();
    expect(await send('rej-1', 'Reserve', { reservationId: 'r1', qty: 5 }, 'rej-m1')).toEqual({ ...rejected, duplicate: true });
    expect((await eventsOf('rej-1')).map((e) => e.message_id)).toEqual(['rej-m2']);
    const recorded = await db.query("SELECT seq, reply->'error'->>'reason' AS reason FROM ppos_dedupe WHERE actor_id = 'rej-1' AND message_id = 'rej-m1'");
    expect(recorded.rows).toEqual([{ seq: 0, reason: 'INSUFFICIENT_STOCK' }]);
  });

  it('records a no-op success: its repeat is a duplicate and no event is ever journaled for it', async () => {
    await node();
    const noop = await send('noop-1', 'Release', { reservationId: 'never' }, 'noop-m1');
    expect(noop).toMatchObject({ ok: true, duplicate: false, seq: 0, events: [] });
    expect(await send('noop-1', 'Release', { reservationId: 'never' }, 'noop-m1')).toEqual({ ...noop, duplicate: true });
    expect(await eventsOf('noop-1')).toEqual([]);
  });

  it('treats message ids per actor: the same id sent to another actor is a new message there', async () => {
    await node();
    const a = await send('scope-a', 'Receive', { qty: 2 }, 'scope-m');
    const b = await send('scope-b', 'Receive', { qty: 2 }, 'scope-m');
    expect(a).toMatchObject({ ok: true, duplicate: false, seq: 1 });
    expect(b).toMatchObject({ ok: true, duplicate: false, seq: 1 });
  });

  it('answers a query without recording its id', async () => {
    await node();
    await send('query-1', 'Receive', { qty: 4 }, 'query-stock');
    const got = await send('query-1', 'Get', undefined, 'query-m');
    expect(got).toMatchObject({ ok: true, duplicate: false, seq: 1, events: [], state: { onHand: 4 } });
    const dedupe = await db.query("SELECT 1 FROM ppos_dedupe WHERE actor_id = 'query-1' AND message_id = 'query-m'");
    expect(dedupe.rowCount).toBe(0);
  });
});

describe('ID_REUSED', () => {
  it('refuses a known id carrying a different command, live and after a restart, and applies nothing', async () => {
    const first = await node();
    await send('reuse-1', 'Receive', { qty: 5 }, 'reuse-m1');
    expect(code(await send('reuse-1', 'Receive', { qty: 6 }, 'reuse-m1'))).toBe('ID_REUSED');
    expect(code(await send('reuse-1', 'Adjust', { onHand: 5 }, 'reuse-m1'))).toBe('ID_REUSED');
    await stop(first);
    await node();
    expect(code(await send('reuse-1', 'Receive', { qty: 6 }, 'reuse-m1'))).toBe('ID_REUSED');
    expect(code(await send('reuse-1', 'Reserve', { reservationId: 'x', qty: 1 }, 'reuse-m1'))).toBe('ID_REUSED');
    expect(await eventsOf('reuse-1')).toHaveLength(1);
    const state = await send('reuse-1', 'Get', undefined, 'reuse-get');
    expect(state).toMatchObject({ ok: true, seq: 1, state: { onHand: 5 } });
  });

  it('recognises the same command whatever the key order of its payload', async () => {
    await node();
    const first = await send('order-1', 'Receive', { qty: 9 }, 'order-stock');
    expect(first.ok).toBe(true);
    const reserved = await send('order-1', 'Reserve', { reservationId: 'r1', qty: 2, workOrderId: 'wo-1' }, 'order-m');
    const reordered = await send('order-1', 'Reserve', { workOrderId: 'wo-1', qty: 2, reservationId: 'r1' }, 'order-m');
    expect(reordered).toEqual({ ...reserved, duplicate: true });
  });
});
