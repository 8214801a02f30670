// Bugs the chaos suite found, each pinned as a focused test (the seed that found it is named,
// and `npm run chaos -- --seed N` replays the run).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeSet } from '../../chaos/nodes.js';
import { Workload } from '../../chaos/workload.js';
import { PgJournal } from '../../persistence/pg-journal.js';
import { fingerprint } from '../../runtime/dedupe.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import type { Reply } from '../../runtime/envelope.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

let db: TestDatabase;
let nats: PrivateNatsServer;
let client: PposClient;
let node: RunningNode | undefined;
/** Child nodes a test started: killed in afterAll too, so a timed-out test never leaves one running. */
const children: NodeSet[] = [];

async function restartNode(): Promise<void> {
  await node?.stop();
  node = await startTestNode(nats.url, db.url);
}

const send = (kind: string, id: string, type: string, payload: Record<string, unknown>, messageId: string): Promise<Reply> =>
  client.sendWithRetry(kind, id, type, payload, { messageId, deadlineMs: 30_000 });

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  client = await PposClient.connect(nats.url);
  await restartNode();
});

afterAll(async () => {
  await Promise.all(children.map((set) => set.destroy().catch(() => undefined)));
  await client?.close();
  await node?.stop();
  await nats?.stop();
  await db?.drop();
});

describe('chaos seed 1: a late duplicate of a settled saga command', () => {
  it('answers the settled reply (its seq and the state right after it), not the state at the saga start, after a restart', async () => {
    await send('inventory', 'reg1-steel', 'Receive', { qty: 20 }, 'reg1-stock');
    await send('workorder', 'reg1-wo', 'Create', { bom: [{ sku: 'reg1-steel', qty: 3 }], stages: ['cut'] }, 'reg1-create');
    const first = await send('workorder', 'reg1-wo', 'Release', {}, 'reg1-release');
    expect(first).toMatchObject({ ok: true, duplicate: false, seq: 3, state: { status: 'released' } });
    await send('workorder', 'reg1-wo', 'Start', {}, 'reg1-start');
    const completed = await send('workorder', 'reg1-wo', 'Complete', {}, 'reg1-complete');
    expect(completed).toMatchObject({ ok: true, seq: 6, state: { status: 'completed' } });
    await send('workorder', 'reg1-wo', 'AdvanceStage', { to: 'cut' }, 'reg1-noop');

    // After a restart the repeat is answered from the dedupe record, not from memory.
    await restartNode();
    const late = await send('workorder', 'reg1-wo', 'Release', {}, 'reg1-release');
    expect(late).toEqual({ ...first, duplicate: true });
    const lateComplete = await send('workorder', 'reg1-wo', 'Complete', {}, 'reg1-complete');
    expect(lateComplete).toEqual({ ...completed, duplicate: true });
  });
});

describe('chaos seed 3: a commit the actor never saw land', () => {
  it('is caught up on before the next decision: a Release after the acknowledged Reserve frees it', async () => {
    // What an append whose connection broke mid-statement leaves behind when its statement
    // finishes later (the node saw UNAVAILABLE and reloaded first): a transaction holding this
    // message's dedupe record and event, committed only after the retry started waiting on it.
    await restartNode();
    expect(await send('inventory', 'reg3-sku', 'Receive', { qty: 10 }, 'reg3-stock')).toMatchObject({ ok: true, seq: 1 });
    const reserve = { reservationId: 'reg3-r', qty: 3 };
    const event = { type: 'Reserved', ...reserve };
    const zombie = new pg.Client({ connectionString: db.url });
    await zombie.connect();
    try {
      await zombie.query('BEGIN');
      await zombie.query(
        `INSERT INTO ppos_dedupe (kind, actor_id, message_id, fingerprint, reply, seq, recorded_at) VALUES ('inventory', 'reg3-sku', 'reg3-reserve', $1, $2, 2, now())`,
        [fingerprint('Reserve', reserve), JSON.stringify({ ok: true, seq: 2, events: [event] })],
      );
      await zombie.query(
        `INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, machine_version, epoch, recorded_at)
         VALUES ('inventory', 'reg3-sku', 2, 'Reserved', $1, 'reg3-reserve', 1, 0, now())`,
        [JSON.stringify(reserve)],
      );
      const retried = client.send('inventory', 'reg3-sku', 'Reserve', reserve, { messageId: 'reg3-reserve', timeoutMs: 20_000 });
      await waitFor('the retry waiting on the unfinished commit', async () => {
        const rows = await db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
        return (rows.rowCount ?? 0) > 0;
      });
      await zombie.query('COMMIT');
      expect(await retried).toMatchObject({ ok: true, duplicate: true, seq: 2, events: [event] });
    } finally {
      await zombie.end();
    }
    // Acknowledged after the Reserve: it must see it.
    const released = await send('inventory', 'reg3-sku', 'Release', { reservationId: 'reg3-r' }, 'reg3-release');
    expect(released).toMatchObject({ ok: true, seq: 3, events: [{ type: 'Released', reservationId: 'reg3-r' }], state: { reserved: 0 } });
    const journal = await db.query<{ type: string }>("SELECT type FROM ppos_events WHERE kind = 'inventory' AND actor_id = 'reg3-sku' ORDER BY seq");
    expect(journal.rows.map((r) => r.type)).toEqual(['Received', 'Reserved', 'Released']);
  });
});

describe('chaos seed 2: PostgreSQL terminating a connection just as the pool hands it over', () => {
  it('never leaves a pooled client without an error listener, so the error cannot crash the node', async () => {
    const journal = new PgJournal({ connectionString: db.url, poolSize: 1 });
    try {
      // What pg does when a FATAL arrives in the same read as the end of the connection's
      // startup: the client is handed over and the error emitted before the borrower listens.
      const client = await journal.pool.connect();
      const listeners = client.listenerCount('error');
      try {
        if (listeners > 0) client.emit('error', new Error('terminating connection due to administrator command'));
      } finally {
        client.release(true);
      }
      expect(listeners).toBeGreaterThan(0);
    } finally {
      await journal.close();
    }
  });

  it('keeps a node process alive through a storm of pg_terminate_backend under load', async () => {
    // The node under test is a child process, alone on this journal.
    await node?.stop();
    node = undefined;
    const exits: string[] = [];
    const nodes = new NodeSet({
      count: 1,
      natsUrl: nats.url,
      databaseUrls: [db.url],
      args: ['--snapshot-every', '5'],
      env: {},
      onLog: () => undefined,
      onUnexpectedExit: (nodeId, code) => exits.push(`${nodeId} exited with ${code}`),
    });
    children.push(nodes);
    const admin = new pg.Pool({ connectionString: db.url, max: 1 });
    admin.on('error', () => undefined);
    try {
      await nodes.start();
      const workload = new Workload({
        client,
        seed: 2,
        clients: 8,
        skus: 12,
        timeoutMs: [300, 2_000],
        commandDeadlineMs: 60_000,
        duplicateRate: 0,
        lateRate: 0,
        lateDelayMs: [0, 0],
      });
      await workload.seedStock();
      const running = workload.run();
      for (let round = 0; round < 120 && exits.length === 0; round += 1) {
        await new Promise((resolve) => setTimeout(resolve, 50 + (round % 7) * 40));
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [
          nodes.nodes[0]!.applicationName,
        ]);
      }
      workload.stop();
      await running;
      expect(exits).toEqual([]);
      expect(workload.stats.anomalies).toEqual([]);
    } finally {
      await nodes.destroy();
      await admin.end();
    }
  }, 180_000);
});
