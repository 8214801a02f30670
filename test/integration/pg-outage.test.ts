// A PostgreSQL outage under a running node (issue 2: "a node that loses PostgreSQL answers
// UNAVAILABLE and recovers when it is back, without a restart"). The node reaches the
// database through a TCP proxy the test cuts and restores; the test itself reads the
// database directly, around the proxy.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NoAnswerError, PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import type { Reply } from '../../runtime/envelope.js';
import { blockAppend, releaseAllBlockers } from '../helpers/blocker.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

let db: TestDatabase;
let nats: PrivateNatsServer;
let proxy: TcpProxy;
let node: RunningNode;
let client: PposClient;

const send = (id: string, type: string, payload: Record<string, unknown> | undefined, messageId: string): Promise<Reply> =>
  client.send('inventory', id, type, payload, { messageId, timeoutMs: 15_000 });

const code = (reply: Reply): string | undefined => (reply.ok ? undefined : reply.error.code);

async function eventsFor(messageId: string): Promise<{ actor_id: string; seq: number; type: string }[]> {
  const rows = await db.query<{ actor_id: string; seq: number; type: string }>('SELECT actor_id, seq, type FROM ppos_events WHERE message_id = $1', [messageId]);
  return rows.rows;
}

async function dedupeFor(messageId: string): Promise<number> {
  return (await db.query('SELECT 1 FROM ppos_dedupe WHERE message_id = $1', [messageId])).rowCount ?? 0;
}

async function backendGone(pid: number): Promise<boolean> {
  return ((await db.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount ?? 0) === 0;
}

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  const target = new URL(db.url);
  proxy = await TcpProxy.start(target.hostname, Number(target.port || 5432));
  node = await startTestNode(nats.url, proxy.urlFor(db.url));
  client = await PposClient.connect(nats.url);
});

afterEach(async () => {
  proxy.restore();
  await releaseAllBlockers();
});

afterAll(async () => {
  proxy?.restore();
  await client?.close();
  await node?.stop();
  await proxy?.close();
  await nats?.stop();
  await db?.drop();
});

describe('while PostgreSQL is unreachable', () => {
  it('answers UNAVAILABLE, applies nothing, and answers OK again once it is back, without a restart', async () => {
    expect(await send('out-1', 'Receive', { qty: 10 }, 'out-m1')).toMatchObject({ ok: true, seq: 1 });
    expect(proxy.connections).toBeGreaterThan(0);

    proxy.cut();
    // An active actor, a fresh actor (its activation needs the journal) and a rejection alike.
    const during = [
      await send('out-1', 'Receive', { qty: 5 }, 'out-m2'),
      await send('out-2', 'Receive', { qty: 5 }, 'out-m3'),
      await send('out-1', 'Reserve', { reservationId: 'too-much', qty: 500 }, 'out-m4'),
    ];
    for (const reply of during) expect(code(reply), JSON.stringify(reply)).toBe('UNAVAILABLE');
    for (const id of ['out-m2', 'out-m3', 'out-m4']) {
      expect(await eventsFor(id)).toEqual([]);
      expect(await dedupeFor(id)).toBe(0);
    }

    proxy.restore();
    // Safe to retry with the same ids: nothing of the failed attempts was kept.
    expect(await send('out-1', 'Receive', { qty: 5 }, 'out-m2')).toMatchObject({ ok: true, duplicate: false, seq: 2, state: { onHand: 15 } });
    expect(await send('out-2', 'Receive', { qty: 5 }, 'out-m3')).toMatchObject({ ok: true, duplicate: false, seq: 1 });
    expect(await send('out-1', 'Reserve', { reservationId: 'too-much', qty: 500 }, 'out-m4')).toMatchObject({
      ok: false,
      duplicate: false,
      error: { code: 'REJECTED', reason: 'INSUFFICIENT_STOCK' },
    });
  });

  it('a command whose commit landed as the connection broke is answered with its real outcome, looked up once the journal is back', async () => {
    expect(await send('land-1', 'Receive', { qty: 10 }, 'land-m1')).toMatchObject({ ok: true, seq: 1 });
    const blocker = await blockAppend(db, 'inventory', 'land-1', 'land-m2');
    const inFlight = send('land-1', 'Receive', { qty: 7 }, 'land-m2');
    const orphan = await blocker.waiting();

    proxy.cut();
    // The orphaned statement is still queued inside PostgreSQL; once the lock goes it commits,
    // and its backend exits when it next reads from the dead connection.
    await blocker.release();
    await waitFor('the orphaned backend to finish', () => backendGone(orphan));
    expect(await eventsFor('land-m2')).toEqual([{ actor_id: 'land-1', seq: 2, type: 'Received' }]);

    proxy.restore();
    // Never "nothing was applied" for a command that was: the node looked its commit up.
    // With the commit token its event got, looked up with the outcome.
    const landed = await inFlight;
    expect(landed).toEqual({ ok: true, duplicate: false, seq: 2, events: [{ type: 'Received', qty: 7 }], state: expect.objectContaining({ onHand: 17 }), token: expect.any(String) });
    expect(await send('land-1', 'Receive', { qty: 7 }, 'land-m2')).toMatchObject({ ok: true, duplicate: true, seq: 2, token: (landed as { token: string }).token });
    expect(await send('land-1', 'Receive', { qty: 1 }, 'land-m3')).toMatchObject({ ok: true, duplicate: false, seq: 3, state: { onHand: 18 } });
    expect(await eventsFor('land-m2')).toHaveLength(1);
  });

  it('says nothing about a commit it cannot look up, rather than "nothing was applied"; the retry learns the truth', async () => {
    expect(await send('mute-1', 'Receive', { qty: 10 }, 'mute-m1')).toMatchObject({ ok: true, seq: 1 });
    const blocker = await blockAppend(db, 'inventory', 'mute-1', 'mute-m2');
    const inFlight = client.send('inventory', 'mute-1', 'Receive', { qty: 7 }, { messageId: 'mute-m2', timeoutMs: 2_500 });
    const orphan = await blocker.waiting();

    proxy.cut();
    await blocker.release();
    await waitFor('the orphaned backend to finish', () => backendGone(orphan));
    // The journal stays unreachable for longer than the client waits: no answer at all.
    await expect(inFlight).rejects.toBeInstanceOf(NoAnswerError);

    proxy.restore();
    expect(await send('mute-1', 'Receive', { qty: 7 }, 'mute-m2')).toMatchObject({ ok: true, duplicate: true, seq: 2, state: { onHand: 17 } });
    expect(await eventsFor('mute-m2')).toHaveLength(1);
  });

  it('a command whose statement died with the connection is answered UNAVAILABLE once that is known, and its retry applies it once', async () => {
    expect(await send('lost-1', 'Receive', { qty: 10 }, 'lost-m1')).toMatchObject({ ok: true, seq: 1 });
    const blocker = await blockAppend(db, 'inventory', 'lost-1', 'lost-m2');
    const inFlight = send('lost-1', 'Receive', { qty: 7 }, 'lost-m2');
    const orphan = await blocker.waiting();

    proxy.cut();
    // The server side of the broken connection is ended too: its statement never commits.
    await db.query('SELECT pg_terminate_backend($1)', [orphan]);
    await waitFor('the terminated backend to go', () => backendGone(orphan));
    await blocker.release();
    expect(await eventsFor('lost-m2')).toEqual([]);

    proxy.restore();
    expect(code(await inFlight)).toBe('UNAVAILABLE');
    expect(await send('lost-1', 'Receive', { qty: 7 }, 'lost-m2')).toMatchObject({ ok: true, duplicate: false, seq: 2, state: { onHand: 17 } });
    expect(await send('lost-1', 'Receive', { qty: 7 }, 'lost-m2')).toMatchObject({ ok: true, duplicate: true, seq: 2 });
    expect(await eventsFor('lost-m2')).toHaveLength(1);
  });

  it('survives repeated outages under concurrent load: every OK is journaled once, nothing failed is', async () => {
    const actors = ['load-1', 'load-2', 'load-3'];
    for (const id of actors) expect((await send(id, 'Receive', { qty: 1_000 }, `${id}-stock`)).ok).toBe(true);
    const replies = new Map<string, Reply | 'no answer'>();
    let n = 0;
    // The lanes keep sending until every outage has happened: a fixed number of commands
    // could all be answered before the last cut (it did, once the journal got faster), and
    // that outage would then have nothing to refuse.
    let outagesDone = false;
    const lane = async (actor: string): Promise<void> => {
      for (let i = 0; i < 40 || !outagesDone; i += 1) {
        const messageId = `${actor}-r${(n += 1)}`;
        // An outcome the node could not look up is not answered at all (and never "not applied").
        const reply = await send(actor, 'Reserve', { reservationId: messageId, qty: 1 }, messageId).catch((error: unknown) => {
          if (error instanceof NoAnswerError) return 'no answer' as const;
          throw error;
        });
        replies.set(messageId, reply);
      }
    };
    const load = Promise.all(actors.map(lane));
    for (let outage = 0; outage < 3; outage += 1) {
      await waitFor('some progress', () => replies.size >= (outage + 1) * 25);
      const unavailable = (): number => [...replies.values()].filter((r) => r !== 'no answer' && code(r) === 'UNAVAILABLE').length;
      const before = unavailable();
      proxy.cut();
      await waitFor('an UNAVAILABLE during this outage', () => unavailable() > before);
      proxy.restore();
    }
    outagesDone = true;
    await load;

    const answered = [...replies].filter((entry): entry is [string, Reply] => entry[1] !== 'no answer');
    const ok = answered.filter(([, r]) => r.ok).map(([id]) => id);
    const failed = answered.filter(([, r]) => !r.ok);
    const unanswered = [...replies].filter(([, r]) => r === 'no answer').map(([id]) => id);
    expect(failed.every(([, r]) => code(r) === 'UNAVAILABLE')).toBe(true);
    expect(failed.length).toBeGreaterThan(0);
    const rows = await db.query<{ message_id: string; n: number }>(
      "SELECT message_id, count(*)::int AS n FROM ppos_events WHERE actor_id = ANY($1) AND message_id LIKE '%-r%' GROUP BY message_id",
      [actors],
    );
    const journaled = new Map(rows.rows.map((r) => [r.message_id, r.n]));
    for (const id of ok) expect(journaled.get(id), id).toBe(1);
    // UNAVAILABLE is a promise: nothing was applied (contract section 3), and the retry applies it.
    for (const [id] of failed) {
      expect(journaled.has(id), `${id} was answered UNAVAILABLE but is in the journal`).toBe(false);
      const actor = id.slice(0, id.indexOf('-r'));
      const retry = await client.sendWithRetry('inventory', actor, 'Reserve', { reservationId: id, qty: 1 }, { messageId: id });
      expect(retry, JSON.stringify(retry)).toMatchObject({ ok: true, duplicate: false });
    }
    // An unanswered one may or may not have landed: its retry says which.
    for (const id of unanswered) {
      const actor = id.slice(0, id.indexOf('-r'));
      expect(await client.sendWithRetry('inventory', actor, 'Reserve', { reservationId: id, qty: 1 }, { messageId: id })).toMatchObject({ ok: true, duplicate: journaled.has(id) });
    }
    for (const actor of actors) {
      const state = await send(actor, 'Get', undefined, `${actor}-get`);
      const count = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM ppos_events WHERE actor_id = $1 AND type = 'Reserved'", [actor]);
      expect(state).toMatchObject({ ok: true, state: { reserved: count.rows[0]!.n, onHand: 1_000 } });
    }
  });
});
