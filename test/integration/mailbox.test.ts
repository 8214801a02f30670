// Mailboxes (CONTRACT.md 4.6): one message at a time per actor in arrival order, actors
// independent of each other, and a full mailbox answers OVERLOADED at once, applying nothing.
// An actor is held mid-append by a PostgreSQL row lock (test/helpers/blocker.ts), so what
// queues behind it is decided by the test, not by timing.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PposClient } from '../../src/client.js';
import type { NodeConfig } from '../../src/config.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import type { Reply } from '../../runtime/envelope.js';
import { blockAppend, releaseAllBlockers, type AppendBlocker } from '../helpers/blocker.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

let db: TestDatabase;
let nats: PrivateNatsServer;
let client: PposClient;
let node: RunningNode | undefined;
let blocker: AppendBlocker | undefined;

async function startNode(overrides: Partial<NodeConfig> = {}): Promise<RunningNode> {
  node = await startTestNode(nats.url, db.url, overrides);
  return node;
}

const send = (id: string, type: string, payload: Record<string, unknown>, messageId: string): Promise<Reply> =>
  client.send('inventory', id, type, payload, { messageId, timeoutMs: 20_000 });

const depthOf = (running: RunningNode, actorId: string): number => running.registry.list().find((a) => a.id === actorId)?.mailboxDepth ?? 0;

async function recorded(messageIds: readonly string[]): Promise<{ events: number; dedupe: number }> {
  const events = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM ppos_events WHERE message_id = ANY($1)', [messageIds]);
  const dedupe = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM ppos_dedupe WHERE message_id = ANY($1)', [messageIds]);
  return { events: events.rows[0]!.n, dedupe: dedupe.rows[0]!.n };
}

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  client = await PposClient.connect(nats.url);
});

afterEach(async () => {
  await releaseAllBlockers();
  blocker = undefined;
  await node?.stop();
  node = undefined;
});

afterAll(async () => {
  await client?.close();
  await nats?.stop();
  await db?.drop();
});

describe('a full mailbox', () => {
  it('answers OVERLOADED at once to every message beyond its capacity, and applies none of them', async () => {
    const running = await startNode({ mailboxCapacity: 1 });
    await send('full-1', 'Receive', { qty: 100 }, 'full-stock');

    blocker = await blockAppend(db, 'inventory', 'full-1', 'full-held');
    const held = send('full-1', 'Reserve', { reservationId: 'held', qty: 1 }, 'full-held');
    await blocker.waiting();
    const queued = send('full-1', 'Reserve', { reservationId: 'queued', qty: 1 }, 'full-queued');
    await waitFor('the second message to queue', () => depthOf(running, 'full-1') === 2);

    // One in hand, one queued (capacity 1): every further message is refused.
    const burstIds = Array.from({ length: 25 }, (_, i) => `full-burst-${i}`);
    const burst = await Promise.all(burstIds.map((id, i) => send('full-1', 'Reserve', { reservationId: `b${i}`, qty: 1 }, id)));
    for (const reply of burst) {
      expect(reply).toMatchObject({ ok: false, duplicate: false, error: { code: 'OVERLOADED' } });
    }
    expect(depthOf(running, 'full-1')).toBe(2);

    await blocker.release();
    expect(await held).toMatchObject({ ok: true, seq: 2 });
    expect(await queued).toMatchObject({ ok: true, seq: 3, state: { reserved: 2 } });
    expect(await recorded(burstIds)).toEqual({ events: 0, dedupe: 0 });

    // Safe to retry with the same id: nothing of the refused attempt was kept.
    const retried = await send('full-1', 'Reserve', { reservationId: 'b0', qty: 1 }, 'full-burst-0');
    expect(retried).toMatchObject({ ok: true, duplicate: false, seq: 4, state: { reserved: 3 } });
  });

  it('under a burst of concurrent requests to one actor, refuses some and applies each accepted one exactly once', async () => {
    await startNode({ mailboxCapacity: 1 });
    await send('burst-1', 'Receive', { qty: 1_000 }, 'burst-stock');
    const ids = Array.from({ length: 100 }, (_, i) => `burst-m${i}`);
    const replies = await Promise.all(ids.map((id, i) => send('burst-1', 'Reserve', { reservationId: `r${i}`, qty: 1 }, id)));

    const overloaded = ids.filter((_, i) => !replies[i]!.ok && (replies[i] as { error: { code: string } }).error.code === 'OVERLOADED');
    const applied = ids.filter((_, i) => replies[i]!.ok);
    expect(overloaded.length).toBeGreaterThan(0);
    expect(applied.length + overloaded.length).toBe(ids.length);
    expect(await recorded(overloaded)).toEqual({ events: 0, dedupe: 0 });
    expect(await recorded(applied)).toEqual({ events: applied.length, dedupe: applied.length });
    const seqs = replies.filter((r) => r.ok).map((r) => (r as { seq: number }).seq);
    expect(new Set(seqs).size).toBe(applied.length);

    const state = await client.send('inventory', 'burst-1', 'Get', undefined);
    expect(state).toMatchObject({ ok: true, seq: 1 + applied.length, state: { reserved: applied.length } });
  });
});

describe('message order and independence', () => {
  it('handles one actor’s messages one at a time, in arrival order', async () => {
    const running = await startNode();
    await send('fifo-1', 'Receive', { qty: 1 }, 'fifo-0');
    blocker = await blockAppend(db, 'inventory', 'fifo-1', 'fifo-1');
    const pending: Promise<Reply>[] = [];
    pending.push(send('fifo-1', 'Receive', { qty: 1 }, 'fifo-1'));
    await blocker.waiting();
    for (let i = 2; i <= 12; i += 1) pending.push(send('fifo-1', 'Receive', { qty: i }, `fifo-${i}`));
    await waitFor('eleven messages queued behind the held one', () => depthOf(running, 'fifo-1') === 12);
    expect(await recorded(['fifo-2', 'fifo-12'])).toEqual({ events: 0, dedupe: 0 });

    await blocker.release();
    const replies = await Promise.all(pending);
    expect(replies.map((r) => (r.ok ? r.seq : -1))).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    const journal = await db.query<{ message_id: string }>("SELECT message_id FROM ppos_events WHERE actor_id = 'fifo-1' ORDER BY seq");
    expect(journal.rows.map((r) => r.message_id)).toEqual(Array.from({ length: 13 }, (_, i) => `fifo-${i}`));
  });

  it('lets other actors go on while one actor waits on its journal', async () => {
    await startNode();
    await send('slow-1', 'Receive', { qty: 5 }, 'slow-0');
    blocker = await blockAppend(db, 'inventory', 'slow-1', 'slow-held');
    let heldSettled = false;
    const held = send('slow-1', 'Receive', { qty: 5 }, 'slow-held').finally(() => {
      heldSettled = true;
    });
    await blocker.waiting();

    for (let i = 0; i < 5; i += 1) {
      expect(await send(`fast-${i}`, 'Receive', { qty: 1 }, `fast-m${i}`)).toMatchObject({ ok: true, seq: 1 });
    }
    expect(heldSettled).toBe(false);

    await blocker.release();
    expect(await held).toMatchObject({ ok: true, seq: 2, state: { onHand: 10 } });
  });
});
