// A node in a child process is SIGKILLed at seeded random instants while clients drive
// inventory commands, retrying on timeout with the same message ids (CONTRACT.md 4.2-4.4).
// Afterwards the client's log of acknowledged replies is compared with the journal, message
// id by message id: every acknowledged effect is there exactly once, as it was acknowledged,
// and nothing the client did not send (or sent once) appears twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import { inventory } from '../../actors/inventory.js';
import type { DomainEvent } from '../../actors/kind.js';
import { initialState, replay } from '../../actors/state.js';
import { PgJournal } from '../../persistence/pg-journal.js';
import type { Reply } from '../../runtime/envelope.js';
import { verifyJournals } from '../../runtime/verify.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { Random } from '../../src/random.js';
import { NodeProcess } from '../../src/spawn.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { sleep } from '../helpers/wait.js';

const SEED = Number(process.env.PPOS_TEST_SEED ?? 7_340_021);
const KILLS = 4;
const LANES = 8;
const COMMANDS_PER_LANE = 40;
const SKUS = ['crash-a', 'crash-b', 'crash-c', 'crash-d'];

let db: TestDatabase;
let nats: PrivateNatsServer;
let client: PposClient;
let node: NodeProcess | undefined;

/** The node comes back under its own id, as a supervisor restarts a crashed process. */
async function launch(): Promise<NodeProcess> {
  const started = new NodeProcess({
    nats: nats.url,
    databaseUrl: db.url,
    nodeId: 'crash-node',
    args: ['--snapshot-every', '5'],
  });
  node = started;
  await started.ready;
  return started;
}

interface Sent {
  readonly actor: string;
  readonly type: string;
  readonly payload: Record<string, unknown>;
  /** The first definite reply the client got; undefined when it gave up. */
  reply?: Reply;
}

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  await launch();
  client = await PposClient.connect(nats.url);
});

afterAll(async () => {
  await client?.close();
  await node?.crash();
  await nats?.stop();
  await db?.drop();
});

describe('SIGKILL while clients drive commands', () => {
  it(`every acknowledged command's effect is in the journal exactly once after ${KILLS} kills (seed ${SEED})`, async () => {
    const random = new Random(SEED);
    const log = new Map<string, Sent>();
    const repeats: { messageId: string; first: Reply; again: Reply }[] = [];
    let retries = 0;

    const send = async (messageId: string, actor: string, type: string, payload: Record<string, unknown>): Promise<Reply | undefined> => {
      const sent: Sent = { actor, type, payload };
      log.set(messageId, sent);
      try {
        sent.reply = await client.sendWithRetry('inventory', actor, type, payload, {
          messageId,
          timeoutMs: 1_000,
          deadlineMs: 45_000,
          onRetry: () => {
            retries += 1;
          },
        });
      } catch {
        // Unacknowledged: it may or may not have been applied, but never twice (checked below).
      }
      return sent.reply;
    };

    for (const sku of SKUS) {
      const stocked = await send(`stock-${sku}`, sku, 'Receive', { qty: 200 });
      expect(stocked?.ok, JSON.stringify(stocked)).toBe(true);
    }

    let running = true;
    let kills = 0;
    const killer = (async () => {
      while (running && kills < KILLS) {
        await sleep(random.int(150, 700));
        if (!running) break;
        await node!.crash();
        kills += 1;
        await launch();
      }
    })();

    const lane = async (laneNo: number): Promise<void> => {
      const own = new Random(SEED + laneNo);
      const open: { sku: string; reservationId: string }[] = [];
      // At least COMMANDS_PER_LANE, and on until every kill has happened (a fast machine can
      // finish the minimum before the first kill); bounded either way.
      for (let i = 0; i < COMMANDS_PER_LANE || (kills < KILLS && i < COMMANDS_PER_LANE * 50); i += 1) {
        const messageId = `l${laneNo}-c${i}`;
        const sku = own.pick(SKUS);
        const roll = own.next();
        let reply: Reply | undefined;
        if (roll < 0.15) {
          reply = await send(messageId, sku, 'Receive', { qty: own.int(1, 20) });
        } else if (roll < 0.55 || open.length === 0) {
          const reservationId = `l${laneNo}-r${i}`;
          reply = await send(messageId, sku, 'Reserve', { reservationId, qty: own.int(1, 15) });
          if (reply?.ok) open.push({ sku, reservationId });
        } else if (roll < 0.9) {
          const [held] = open.splice(own.int(0, open.length - 1), 1);
          reply = await send(messageId, held!.sku, own.chance(0.5) ? 'Consume' : 'Release', { reservationId: held!.reservationId });
        } else {
          // Often BELOW_RESERVED: a REJECTED answer is recorded and must come back the same.
          reply = await send(messageId, sku, 'Adjust', { onHand: own.int(0, 60) });
        }
        // A deliberate duplicate delivery of what was just acknowledged.
        if (reply && own.chance(0.15)) {
          const sent = log.get(messageId)!;
          const again = await client.sendWithRetry('inventory', sent.actor, sent.type, sent.payload, { messageId, timeoutMs: 1_000, deadlineMs: 45_000 });
          repeats.push({ messageId, first: reply, again });
        }
      }
    };
    await Promise.all(Array.from({ length: LANES }, (_, i) => lane(i)));
    running = false;
    await killer;
    expect(kills).toBe(KILLS);
    expect(retries, 'the kills should have interrupted some requests').toBeGreaterThan(0);

    // One more kill with nothing in flight, so the final state is rebuilt from the journal.
    await node!.crash();
    await launch();

    // Every command got a definite answer: OK or a recorded REJECTED, never a retryable one.
    const unanswered = [...log].filter(([, s]) => s.reply === undefined).map(([id]) => id);
    expect(unanswered).toEqual([]);
    for (const [id, sent] of log) {
      if (!sent.reply!.ok) expect(sent.reply!.error.code, `${id}: ${JSON.stringify(sent.reply)}`).toBe('REJECTED');
    }

    // Deliberate duplicates: the first reply again, with duplicate: true.
    expect(repeats.length).toBeGreaterThan(0);
    for (const { messageId, first, again } of repeats) {
      expect(again, messageId).toEqual({ ...first, duplicate: true });
    }

    const rows = await db.query<{ actor_id: string; seq: number; type: string; data: Record<string, unknown>; message_id: string }>(
      "SELECT actor_id, seq, type, data, message_id FROM ppos_events WHERE kind = 'inventory' ORDER BY actor_id, seq",
    );
    const byMessage = new Map<string, typeof rows.rows>();
    for (const row of rows.rows) byMessage.set(row.message_id, [...(byMessage.get(row.message_id) ?? []), row]);

    // Nothing appears that the client did not send, and nothing appears twice.
    for (const [messageId, journaled] of byMessage) {
      expect(log.has(messageId), `journal holds unknown message ${messageId}`).toBe(true);
      expect(journaled, `${messageId} journaled more than once`).toHaveLength(1);
    }

    // Every acknowledged command: its event, exactly once, where and as it was acknowledged.
    const dedupe = await db.query<{ actor_id: string; message_id: string }>("SELECT actor_id, message_id FROM ppos_dedupe WHERE kind = 'inventory'");
    const recorded = new Set(dedupe.rows.map((r) => `${r.actor_id}/${r.message_id}`));
    let effects = 0;
    for (const [messageId, sent] of log) {
      const reply = sent.reply!;
      const journaled = byMessage.get(messageId) ?? [];
      expect(recorded.has(`${sent.actor}/${messageId}`), `${messageId} has no dedupe record`).toBe(true);
      if (reply.ok && reply.events.length === 1) {
        effects += 1;
        const { type, ...data } = reply.events[0]!;
        expect(journaled.map((r) => ({ actor: r.actor_id, seq: r.seq, type: r.type, data: r.data })), messageId).toEqual([
          { actor: sent.actor, seq: reply.seq, type, data },
        ]);
      } else {
        expect(journaled, `${messageId} changed nothing when acknowledged but is journaled`).toEqual([]);
      }
    }
    expect(effects).toBe(rows.rows.length);

    // Each actor's journal is gapless, replays within its invariants, and is what the
    // restarted node holds.
    for (const sku of SKUS) {
      const own = rows.rows.filter((r) => r.actor_id === sku);
      expect(own.map((r) => r.seq)).toEqual(own.map((_, i) => i + 1));
      const replayed = replay(
        inventory,
        initialState(inventory),
        own.map((r): DomainEvent => ({ ...r.data, type: r.type })),
      );
      const live = await client.sendWithRetry('inventory', sku, 'Get', undefined, { timeoutMs: 2_000 });
      expect(live).toMatchObject({ ok: true, seq: own.length, state: inventory.view(replayed, { type: 'Get', payload: {} }) });
    }
    const journal = new PgJournal({ connectionString: db.url, poolSize: 1 });
    try {
      const record = await verifyJournals({ journal, kinds: actorKinds });
      expect(record.reconciliation_failures).toEqual([]);
      expect(record.confidence_status).toBe('trusted');
    } finally {
      await journal.close();
    }
  });
});
