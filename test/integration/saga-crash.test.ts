// A node process is SIGKILLed at seeded random instants while many work orders release
// concurrently; after each kill it is restarted, clients retry with the same message ids, and
// open sagas resume on their own. Once everything settles the contract's cross-actor
// invariant must hold exactly and no reservation may exist twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { openJournal, type OpenedJournal } from '../../src/database.js';
import { Random } from '../../src/random.js';
import { NodeProcess } from '../../src/spawn.js';
import { crossActorChecks } from '../../runtime/cross-checks.js';
import type { Reply } from '../../runtime/envelope.js';
import { verifyJournals } from '../../runtime/verify.js';
import { silentLogger } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';

const SEED = Number(process.env.PPOS_TEST_SEED ?? 20261122);
/** A W3C traceparent whose trace id spells the work order's id. */
const traceOf = (workOrder: string): string => `00-${Buffer.from(workOrder).toString('hex').padEnd(32, '0').slice(0, 32)}-00f067aa0ba902b7-01`;
const KILLS = 20;

let db: TestDatabase;
let nats: PrivateNatsServer;
let client: PposClient;
let opened: OpenedJournal;
let node: NodeProcess;
let generation = 0;

function launch(): NodeProcess {
  generation += 1;
  return new NodeProcess({
    nats: nats.url,
    databaseUrl: db.url,
    nodeId: `saga-crash-node`, // the same id after each crash: its shard leases come straight back
    args: ['--snapshot-every', '7'],
    env: { PPOS_SAGA_RESUME_MS: '500' },
  });
}

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  node = launch();
  await node.ready;
  client = await PposClient.connect(nats.url);
  opened = await openJournal({ databaseUrl: db.url, dataDir: '.ppos' }, silentLogger, { poolSize: 2 });
});

afterAll(async () => {
  await client?.close();
  await node?.stop();
  await opened?.close();
  await nats?.stop();
  await db?.drop();
});

describe('crash in the middle of sagas', () => {
  it(`keeps the reservation invariant across ${KILLS} SIGKILLs during concurrent releases (seed ${SEED})`, async () => {
    const random = new Random(SEED);
    const skus = Array.from({ length: 6 }, (_, i) => `part-${i}`);
    const send = (kind: string, id: string, type: string, payload: Record<string, unknown> | undefined, messageId: string): Promise<Reply> =>
      client.sendWithRetry(kind, id, type, payload, {
        messageId,
        timeoutMs: 1_500,
        deadlineMs: 120_000,
        // Each order's commands in a trace and a correlation of its own: steps resumed after a
        // crash must still carry them (read back from the journal, not from lost memory).
        ...(kind === 'workorder' ? { correlationId: `corr-${id}`, traceparent: traceOf(id) } : {}),
      });
    for (const sku of skus) await send('inventory', sku, 'Receive', { qty: random.int(8, 20) }, `stock-${sku}`);

    let stop = false;
    let kills = 0;
    const killer = (async () => {
      while (!stop && kills < KILLS) {
        await new Promise((resolve) => setTimeout(resolve, random.int(150, 600)));
        await node.crash();
        kills += 1;
        node = launch();
        await node.ready;
      }
    })();

    const orders = Array.from({ length: 60 }, (_, i) => `wo-${i}`);
    const outcomes = new Map<string, Reply>();
    const drive = async (id: string): Promise<void> => {
      const bom = Array.from({ length: random.int(1, 3) }, () => ({ sku: random.pick(skus), qty: random.int(1, 4) }));
      const unique = [...new Map(bom.map((line) => [line.sku, line])).values()];
      await send('workorder', id, 'Create', { bom: unique, stages: ['a', 'b'] }, `${id}-create`);
      const released = await send('workorder', id, 'Release', {}, `${id}-release`);
      outcomes.set(id, released);
      if (released.ok && random.chance(0.3)) await send('workorder', id, 'Cancel', {}, `${id}-cancel`);
      else if (released.ok && random.chance(0.5)) {
        await send('workorder', id, 'Start', {}, `${id}-start`);
        await send('workorder', id, 'AdvanceStage', { to: 'b' }, `${id}-b`);
        await send('workorder', id, 'Complete', {}, `${id}-complete`);
      }
    };
    // Keep the orders flowing until every kill point has happened.
    let next = 0;
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        while (next < orders.length) {
          const id = orders[next++]!;
          await drive(id);
          if (next === orders.length && kills < KILLS) await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }),
    );
    await killer;
    stop = true;
    expect(kills).toBe(KILLS);

    // Let every saga settle: nothing pending in the journal.
    const deadline = Date.now() + 60_000;
    while ((await opened.journal.openSagas()).length > 0) {
      if (Date.now() > deadline) throw new Error(`sagas still open: ${JSON.stringify(await opened.journal.openSagas())}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    for (const [id, reply] of outcomes) {
      expect(reply.ok || (!reply.ok && reply.error.reason === 'SHORTAGE'), `${id}: ${JSON.stringify(reply)}`).toBe(true);
    }
    const evidence = await verifyJournals({ journal: opened.journal, kinds: actorKinds, crossChecks: crossActorChecks(actorKinds) });
    expect(evidence.reconciliation_failures).toEqual([]);
    expect(evidence.confidence_status).toBe('trusted');

    // Every event of an order, and of every step its sagas sent (resumed after a kill or not), in its trace and correlation.
    const traced = await db.query<{ kind: string; actor_id: string; message_id: string; correlation_id: string | null; traceparent: string | null }>(
      `SELECT kind, actor_id, message_id, correlation_id, traceparent FROM ppos_events WHERE kind = 'workorder' OR message_id LIKE 'ppos:wo:%'`,
    );
    expect(traced.rows.filter((r) => r.kind === 'inventory').length).toBeGreaterThan(0);
    for (const row of traced.rows) {
      const order = row.kind === 'workorder' ? row.actor_id : row.message_id.split(':')[2]!;
      expect({ correlation: row.correlation_id, trace: row.traceparent }, `${row.kind}/${row.actor_id} ${row.message_id}`).toEqual({ correlation: `corr-${order}`, trace: traceOf(order) });
    }

    // No reservation was ever opened twice without being closed in between.
    const rows = await db.query<{ actor_id: string; type: string; rid: string }>(
      `SELECT actor_id, type, data->>'reservationId' AS rid FROM ppos_events WHERE kind = 'inventory' AND type IN ('Reserved','Released','Consumed') ORDER BY actor_id, seq`,
    );
    const open = new Set<string>();
    for (const row of rows.rows) {
      const key = `${row.actor_id}/${row.rid}`;
      if (row.type === 'Reserved') {
        expect(open.has(key), `reservation ${key} opened twice`).toBe(false);
        open.add(key);
      } else open.delete(key);
    }
  }, 180000);
});
