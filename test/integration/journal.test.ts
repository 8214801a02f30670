// The journal in PostgreSQL (CONTRACT.md 4.1, 4.4 and 7): append-only by the database's own
// rules, a second writer cannot fork an actor's history, and activation from the latest
// trustworthy snapshot plus the tail equals a full replay, skipping snapshots that do not check out.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import { inventory } from '../../actors/inventory.js';
import type { DomainEvent } from '../../actors/kind.js';
import { initialState, persistState, replay } from '../../actors/state.js';
import { snapshotOf, stateHash } from '../../runtime/recovery.js';
import { verifyJournals } from '../../runtime/verify.js';
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
let node: RunningNode | undefined;

async function restartNode(overrides: Partial<NodeConfig> = {}): Promise<RunningNode> {
  const stoppedAt = (await db.query<{ now: Date }>('SELECT now() AS now')).rows[0]!.now;
  await node?.stop();
  // A draining node snapshots what it hands over; these tests are about the periodic
  // snapshots, so they forget the handover ones (handover snapshots are tested in cluster tests).
  await db.query('DELETE FROM ppos_snapshots WHERE created_at >= $1', [stoppedAt]);
  node = await startTestNode(nats.url, db.url, overrides);
  return node;
}

const send = (id: string, type: string, payload: Record<string, unknown> | undefined, messageId?: string): Promise<Reply> =>
  client.send('inventory', id, type, payload, messageId === undefined ? {} : { messageId });

/** The state a replay of the actor's whole journal from event 1 gives. */
/** The sha256 of the state a full replay of the actor's journal gives (what an inspection's stateHash must be). */
async function fullReplay(actorId: string): Promise<string> {
  const rows = await db.query<{ type: string; data: Record<string, unknown> }>(
    "SELECT type, data FROM ppos_events WHERE kind = 'inventory' AND actor_id = $1 ORDER BY seq",
    [actorId],
  );
  const events: DomainEvent[] = rows.rows.map((r) => ({ ...r.data, type: r.type }));
  return stateHash(persistState(inventory, replay(inventory, initialState(inventory), events)));
}

/** The live view, with the hash of the whole state (the context itself is a bounded page of it). */
async function inspect(actorId: string): Promise<{ status: string; seq: number; snapshotSeq: number; stateHash: string }> {
  return (await client.inspect('inventory', actorId, 5_000, { hash: true })) as never;
}

async function snapshotSeqs(actorId: string): Promise<number[]> {
  const rows = await db.query<{ seq: number }>("SELECT seq FROM ppos_snapshots WHERE kind = 'inventory' AND actor_id = $1 ORDER BY seq", [actorId]);
  return rows.rows.map((r) => r.seq);
}

/** Sends a fixed mix of commands: receipts, reservations, releases and consumptions. */
async function drive(actorId: string, commands: number): Promise<void> {
  await send(actorId, 'Receive', { qty: 1_000 });
  for (let i = 1; i < commands; i += 1) {
    const reply =
      i % 3 === 1
        ? await send(actorId, 'Reserve', { reservationId: `r${i}`, qty: i })
        : i % 3 === 2
          ? await send(actorId, i % 2 === 0 ? 'Consume' : 'Release', { reservationId: `r${i - 1}` })
          : await send(actorId, 'Receive', { qty: i });
    expect(reply.ok, JSON.stringify(reply)).toBe(true);
  }
}

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  client = await PposClient.connect(nats.url);
  node = await startTestNode(nats.url, db.url);
});

afterEach(async () => {
  // Tests that tamper with snapshots leave the node on their own settings: start afresh.
  await restartNode();
});

afterAll(async () => {
  await client?.close();
  await node?.stop();
  await nats?.stop();
  await db?.drop();
});

describe('the events table is append-only, enforced by the database', () => {
  beforeAll(async () => {
    await send('ao-1', 'Receive', { qty: 5 }, 'ao-m1');
    await send('ao-1', 'Receive', { qty: 6 }, 'ao-m2');
  });

  it.each([
    ['UPDATE', "UPDATE ppos_events SET data = '{\"qty\": 500}' WHERE actor_id = 'ao-1'"],
    ['UPDATE of a single column of one row', "UPDATE ppos_events SET recorded_at = now() WHERE actor_id = 'ao-1' AND seq = 1"],
    ['DELETE', "DELETE FROM ppos_events WHERE actor_id = 'ao-1'"],
    ['DELETE of every row', 'DELETE FROM ppos_events'],
    ['TRUNCATE', 'TRUNCATE ppos_events'],
    ['TRUNCATE ... CASCADE', 'TRUNCATE ppos_events CASCADE'],
  ])('refuses %s', async (_what, sql) => {
    await expect(db.query(sql)).rejects.toThrow(/append-only/);
    const rows = await db.query("SELECT seq, data FROM ppos_events WHERE actor_id = 'ao-1' ORDER BY seq");
    expect(rows.rows).toEqual([
      { seq: 1, data: { qty: 5 } },
      { seq: 2, data: { qty: 6 } },
    ]);
  });

  it('refuses an event at a seq that is taken, and a message id that already has an event', async () => {
    const insert = (seq: number, messageId: string): Promise<unknown> =>
      db.query(
        `INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, machine_version, recorded_at)
         VALUES ('inventory', 'ao-1', $1, 'Received', '{"qty": 1}', $2, 1, now())`,
        [seq, messageId],
      );
    await expect(insert(2, 'ao-other')).rejects.toThrow(/duplicate key/);
    await expect(insert(3, 'ao-m1')).rejects.toThrow(/duplicate key/);
  });
});

describe('a second writer', () => {
  it('cannot fork an actor\'s history: the owner that finds the journal moved on reloads and decides on it', async () => {
    await send('fence-1', 'Receive', { qty: 5 }, 'fence-m1');
    const foreign = (seq: number, messageId: string): Promise<unknown> =>
      db.query(
        `INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, machine_version, recorded_at)
         VALUES ('inventory', 'fence-1', $1, 'Received', '{"qty": 100}', $2, 1, now())`,
        [seq, messageId],
      );
    // A writer that believes the actor is still empty is refused by the journal itself.
    await expect(foreign(1, 'fence-stale')).rejects.toThrow(/duplicate key/);

    // One that appends at the right seq behind the owner's back lands; the owner's next
    // command then conflicts, reloads and decides on the journal's state rather than forking it.
    await foreign(2, 'fence-foreign');
    const reply = await send('fence-1', 'Receive', { qty: 1 }, 'fence-m2');
    expect(reply).toMatchObject({ ok: true, seq: 3, state: { onHand: 106 } });
    const journal = await db.query("SELECT seq, message_id FROM ppos_events WHERE actor_id = 'fence-1' ORDER BY seq");
    expect(journal.rows).toEqual([
      { seq: 1, message_id: 'fence-m1' },
      { seq: 2, message_id: 'fence-foreign' },
      { seq: 3, message_id: 'fence-m2' },
    ]);
  });
});

describe('snapshots', () => {
  it('are written every --snapshot-every events and match the replay at their seq', async () => {
    await restartNode({ snapshotEvery: 3 });
    await drive('snap-1', 10);
    await waitFor('three snapshots', async () => (await snapshotSeqs('snap-1')).length === 3);
    expect(await snapshotSeqs('snap-1')).toEqual([3, 6, 9]);
    const record = await verifyJournals({ journal: node!.journal, kinds: actorKinds, actors: [{ kind: 'inventory', id: 'snap-1' }] });
    expect(record).toMatchObject({ snapshots_checked: 3, snapshot_mismatches: 0, confidence_status: 'trusted' });
  });

  it('a restarted node activates from the latest snapshot plus the tail, and that equals a full replay', async () => {
    await restartNode({ snapshotEvery: 3 });
    await drive('snap-2', 11);
    await waitFor('snapshot 9', async () => (await snapshotSeqs('snap-2')).includes(9));
    const live = await inspect('snap-2');
    expect(live).toMatchObject({ status: 'active', seq: 11 });

    const restarted = await restartNode({ snapshotEvery: 3 });
    const got = await send('snap-2', 'Get', undefined);
    expect(got).toMatchObject({ ok: true, seq: 11 });
    expect(restarted.registry.counters).toMatchObject({ activations: 1, snapshotHits: 1, snapshotsRejected: 0, eventsReplayed: 2 });
    const view = await inspect('snap-2');
    expect(view).toMatchObject({ status: 'active', seq: 11, snapshotSeq: 9 });
    expect(view.stateHash).toEqual(await fullReplay('snap-2'));
    expect(view.stateHash).toEqual(live.stateHash);
  });

  it('a tampered snapshot row is skipped in favour of an older one or a full replay', async () => {
    await restartNode({ snapshotEvery: 3 });
    await drive('snap-3', 10);
    await waitFor('snapshot 9', async () => (await snapshotSeqs('snap-3')).includes(9));
    const expected = await fullReplay('snap-3');

    await db.query(
      "UPDATE ppos_snapshots SET state = jsonb_set(state, '{context,onHand}', '987654') WHERE kind = 'inventory' AND actor_id = 'snap-3' AND seq = 9",
    );
    let restarted = await restartNode({ snapshotEvery: 100 });
    await send('snap-3', 'Get', undefined);
    expect(restarted.registry.counters).toMatchObject({ snapshotHits: 1, snapshotsRejected: 1 });
    let view = await inspect('snap-3');
    expect(view.snapshotSeq).toBe(6);
    expect(view.stateHash).toEqual(expected);

    // Every snapshot tampered: a full replay from event 1.
    await db.query(
      "UPDATE ppos_snapshots SET state = jsonb_set(state, '{context,onHand}', '424242') WHERE kind = 'inventory' AND actor_id = 'snap-3' AND seq IN (3, 6)",
    );
    restarted = await restartNode({ snapshotEvery: 100 });
    const got = await send('snap-3', 'Get', undefined);
    expect(got).toMatchObject({ ok: true, seq: 10 });
    expect(restarted.registry.counters).toMatchObject({ snapshotHits: 0, snapshotsRejected: 3, eventsReplayed: 10 });
    view = await inspect('snap-3');
    expect(view.snapshotSeq).toBe(0);
    expect(view.stateHash).toEqual(expected);

    // And the actor goes on from the right state.
    const onHand = (got.ok && (got.state.onHand as number)) || 0;
    const next = await send('snap-3', 'Receive', { qty: 1 });
    expect(next).toMatchObject({ ok: true, seq: 11, state: { onHand: onHand + 1 } });

    const record = await verifyJournals({ journal: restarted.journal, kinds: actorKinds, actors: [{ kind: 'inventory', id: 'snap-3' }] });
    expect(record.confidence_status).toBe('suspect');
    expect(record.snapshot_mismatches).toBe(3);
  });

  it('a snapshot of another machine version is never used', async () => {
    await restartNode({ snapshotEvery: 100 });
    await drive('snap-4', 5);
    const expected = await fullReplay('snap-4');
    // A well-formed snapshot (its hash checks out) that claims a wildly different state.
    const foreign = snapshotOf(inventory, initialState(inventory), 5);
    await db.query(
      "INSERT INTO ppos_snapshots (kind, actor_id, seq, machine_version, state, hash) VALUES ('inventory', 'snap-4', 5, $1, $2, $3)",
      [inventory.machineVersion + 1, JSON.stringify(foreign.state), foreign.hash],
    );
    const restarted = await restartNode({ snapshotEvery: 100 });
    await send('snap-4', 'Get', undefined);
    expect(restarted.registry.counters).toMatchObject({ snapshotHits: 0, eventsReplayed: 5 });
    const view = await inspect('snap-4');
    expect(view.stateHash).toEqual(expected);
  });

  it('a snapshot claiming a seq beyond the journal is skipped, not trusted and not fatal', async () => {
    await restartNode({ snapshotEvery: 100 });
    await drive('snap-5', 4);
    const expected = await fullReplay('snap-5');
    const ahead = snapshotOf(inventory, initialState(inventory), 40);
    await db.query(
      "INSERT INTO ppos_snapshots (kind, actor_id, seq, machine_version, state, hash) VALUES ('inventory', 'snap-5', 40, $1, $2, $3)",
      [inventory.machineVersion, JSON.stringify(ahead.state), ahead.hash],
    );
    await restartNode({ snapshotEvery: 100 });
    const got = await send('snap-5', 'Get', undefined);
    expect(got).toMatchObject({ ok: true, seq: 4 });
    const view = await inspect('snap-5');
    expect(view.stateHash).toEqual(expected);
  });

  it('a snapshot whose hash checks out but whose state the tail does not replay onto is skipped', async () => {
    await restartNode({ snapshotEvery: 100 });
    await drive('snap-6', 6);
    const expected = await fullReplay('snap-6');
    // Written by a buggy writer: the right hash for the wrong (empty) state at seq 2.
    const wrong = snapshotOf(inventory, initialState(inventory), 2);
    await db.query(
      "INSERT INTO ppos_snapshots (kind, actor_id, seq, machine_version, state, hash) VALUES ('inventory', 'snap-6', 2, $1, $2, $3)",
      [inventory.machineVersion, JSON.stringify(wrong.state), wrong.hash],
    );
    await restartNode({ snapshotEvery: 100 });
    const got = await send('snap-6', 'Get', undefined);
    expect(got).toMatchObject({ ok: true, seq: 6 });
    const view = await inspect('snap-6');
    expect(view.stateHash).toEqual(expected);
  });
});
