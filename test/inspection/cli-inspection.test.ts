// `ppos inspect`, `get`, `history`, `state --at`, `diff` and `watch`, run as the built CLI
// against a real node, checked against the journal read with plain SQL and replayed from event 1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import { inventory } from '../../actors/inventory.js';
import { persistState } from '../../actors/state.js';
import { loadState } from '../../runtime/recovery.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { CliProcess, runCli, runCliJson, type CliTarget } from './cli.js';
import { journalRows, replayFirst, replayPrefixes } from './journal-replay.js';
import { waitUntil } from './wait.js';

const SNAPSHOT_EVERY = 50;
const DEEP = 'deep-1';

let db: TestDatabase;
let nats: PrivateNatsServer;
let node: RunningNode;
let client: PposClient;
let target: CliTarget;

async function send(kind: string, id: string, type: string, payload?: Record<string, unknown>): Promise<void> {
  const reply = await client.send(kind, id, type, payload);
  if (!reply.ok) throw new Error(`${type} on ${kind}/${id} refused: ${JSON.stringify(reply.error)}`);
}

/** 300 commands, each appending exactly one event: every inventory event type appears. */
async function seedDeepActor(): Promise<void> {
  let onHand = 0;
  for (let k = 0; k < 60; k += 1) {
    if (k % 7 === 6) await send('inventory', DEEP, 'Adjust', { onHand: onHand + 10 });
    else await send('inventory', DEEP, 'Receive', { qty: 10 });
    await send('inventory', DEEP, 'Reserve', { reservationId: `a-${k}`, qty: 4 });
    await send('inventory', DEEP, 'Reserve', { reservationId: `b-${k}`, qty: 3 });
    await send('inventory', DEEP, 'Release', { reservationId: `a-${k}` });
    await send('inventory', DEEP, 'Consume', { reservationId: `b-${k}` });
    onHand += 7;
  }
}

async function snapshotSeqs(kind: string, id: string): Promise<number[]> {
  const rows = await db.query<{ seq: number }>('SELECT seq FROM ppos_snapshots WHERE kind = $1 AND actor_id = $2 ORDER BY seq', [kind, id]);
  return rows.rows.map((r) => r.seq);
}

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  node = await startTestNode(nats.url, db.url, { snapshotEvery: SNAPSHOT_EVERY });
  client = await PposClient.connect(nats.url);
  target = { natsUrl: nats.url, databaseUrl: db.url };
  await seedDeepActor();
  // Snapshots are written after the commit that crosses the threshold; wait until all six are in.
  await waitUntil('six snapshots', () => snapshotSeqs('inventory', DEEP), (seqs) => seqs.join() === '50,100,150,200,250,300');
}, 120_000);

afterAll(async () => {
  await client?.close();
  await node?.stop();
  await nats?.stop();
  await db?.drop();
});

describe('ppos inspect and ppos get', () => {
  it('agree with each other and with a replay of the whole journal', async () => {
    const rows = await journalRows(db, 'inventory', DEEP);
    expect(rows).toHaveLength(300);
    const replayed = replayFirst('inventory', rows, rows.length);

    const inspected = await runCliJson(target, ['inspect', 'inventory', DEEP]);
    const got = await runCliJson<{ seq: number; state: Record<string, unknown> }>(target, ['get', 'inventory', DEEP]);

    expect(inspected).toMatchObject({
      node: node.nodeId,
      kind: 'inventory',
      id: DEEP,
      status: 'active',
      seq: 300,
      snapshotSeq: 300,
      mailboxDepth: 0,
      value: replayed.value,
      // Bounded: the scalars and the first page of open reservations.
      context: inventory.inspectContext!(replayed, {}),
    });
    expect(got.seq).toBe(rows.at(-1)!.seq);
    expect(inspected.state).toEqual(inventory.view(replayed));
    expect(got.state).toEqual(inventory.view(replayed, { type: 'Get', payload: {} }));
    expect(got.state).toMatchObject({ onHand: 420, reserved: 0, available: 420, openReservations: 0, reservations: [] });
  });

  it('prints a human table by default', async () => {
    const result = await runCli(target, ['inspect', 'inventory', DEEP]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^field\s+value/m);
    expect(result.stdout).toMatch(/^status\s+active$/m);
    expect(result.stdout).toMatch(/^seq\s+300$/m);
  });

  it('answers over NATS with the contract fields, reading a never-seen actor as not_found', async () => {
    const view = await client.inspect('inventory', DEEP);
    for (const field of ['node', 'kind', 'id', 'status', 'seq', 'snapshotSeq', 'mailboxDepth', 'value', 'context']) expect(view).toHaveProperty(field);
    expect(view.dedupe).toMatchObject({ remembered: expect.any(Number) });
    expect((view.dedupe as { recentMessageIds: string[] }).recentMessageIds.length).toBeGreaterThan(0);
    const nobody = await runCliJson(target, ['inspect', 'inventory', 'nobody-here']);
    expect(nobody).toMatchObject({ status: 'not_found', seq: 0, snapshotSeq: 0, mailboxDepth: 0 });
  });

  it('refuses a malformed address with BAD_REQUEST and a service error header', async () => {
    const msg = await client.nc.request('ppos.inspect.nokind.x', '', { timeout: 5_000 });
    expect(msg.json()).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    expect(msg.headers?.get('Nats-Service-Error-Code')).toBe('400');
  });
});

describe('ppos state --at', () => {
  // The property, for every N: what `ppos state` computes (the nearest snapshot at or before N
  // plus replay) equals a replay of the first N events from event 1.
  it('loads, for every N of a 300-event actor with snapshots every 50, the replay of its first N events', async () => {
    const rows = await journalRows(db, 'inventory', DEEP);
    const expected = replayPrefixes('inventory', rows);
    const kind = actorKinds.get('inventory')!;
    for (let n = 0; n <= rows.length; n += 1) {
      const loaded = await loadState(node.journal, kind, { kind: 'inventory', id: DEEP }, n);
      expect({ n, seq: loaded.seq, fromSnapshot: loaded.snapshotSeq }).toEqual({ n, seq: n, fromSnapshot: Math.floor(n / SNAPSHOT_EVERY) * SNAPSHOT_EVERY });
      expect(persistState(kind, loaded.state)).toEqual(persistState(kind, expected[n]!));
    }
  });

  // The command itself, as a process, on every snapshot boundary and its neighbours plus every
  // tenth seq: a separate process per N costs most of a second of CPU, so not all 301.
  it('prints that state as JSON: on every snapshot boundary, either side of it, and every tenth seq', async () => {
    const rows = await journalRows(db, 'inventory', DEEP);
    const expected = replayPrefixes('inventory', rows);
    const ns = Array.from({ length: rows.length + 1 }, (_, n) => n).filter((n) => n % 10 === 0 || [1, SNAPSHOT_EVERY - 1].includes(n % SNAPSHOT_EVERY));
    const queue = [...ns];
    const seen: number[] = [];
    await Promise.all(
      Array.from({ length: 3 }, async () => {
        for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
          const view = await runCliJson<{ seq: number; fromSnapshotSeq: number; value: unknown; context: unknown; state: unknown }>(target, [
            'state',
            'inventory',
            DEEP,
            '--at',
            String(n),
          ]);
          const want = expected[n]!;
          expect({ n, seq: view.seq, fromSnapshotSeq: view.fromSnapshotSeq, value: view.value, context: view.context }).toEqual({
            n,
            seq: n,
            fromSnapshotSeq: Math.floor(n / SNAPSHOT_EVERY) * SNAPSHOT_EVERY,
            value: want.value,
            context: persistState(actorKinds.get('inventory')!, want).context,
          });
          expect(view.state).toEqual(actorKinds.get('inventory')!.view(want));
          seen.push(n);
        }
      }),
    );
    expect(seen.sort((a, b) => a - b)).toEqual(ns);
  }, 300_000);

  it('refuses a seq past the last event with exit 1', async () => {
    const result = await runCli(target, ['state', 'inventory', DEEP, '--at', '301']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('has 300 event(s)');
  });
});

describe('ppos history', () => {
  it('pages through the journal with --limit, each page saying where the next starts', async () => {
    const rows = await journalRows(db, 'inventory', DEEP);
    const seen: { seq: number; event: { type: string }; messageId: string }[] = [];
    let from: number | null = 1;
    const nexts: (number | null)[] = [];
    while (from !== null) {
      const page: { events: typeof seen; next: number | null } = await runCliJson(target, ['history', 'inventory', DEEP, '--from', String(from), '--limit', '120']);
      seen.push(...page.events);
      nexts.push(page.next);
      from = page.next;
    }
    expect(nexts).toEqual([121, 241, null]);
    expect(seen.map((e) => [e.seq, e.event.type, e.messageId])).toEqual(rows.map((r) => [r.seq, r.type, r.message_id]));
    const human = await runCli(target, ['history', 'inventory', DEEP, '--from', '298', '--limit', '2']);
    expect(human.stdout).toMatch(/^298\s+\w+/m);
    expect(human.stdout).toContain(`next page: ppos history inventory ${DEEP} --from 300 --limit 2`);
  });

  it('keeps its unpaged form: every event in the range, no next field', async () => {
    const page = await runCliJson<Record<string, unknown>>(target, ['history', 'inventory', DEEP, '--from', '10', '--to', '14']);
    expect((page.events as { seq: number }[]).map((e) => e.seq)).toEqual([10, 11, 12, 13, 14]);
    expect(page).not.toHaveProperty('next');
  });
});

describe('ppos diff', () => {
  const ID = 'diff-1';

  beforeAll(async () => {
    await send('inventory', ID, 'Receive', { qty: 100 }); // 1
    await send('inventory', ID, 'Reserve', { reservationId: 'r1', qty: 30 }); // 2
    await send('inventory', ID, 'Reserve', { reservationId: 'r2', qty: 20 }); // 3
    await send('inventory', ID, 'Release', { reservationId: 'r1' }); // 4
    await send('inventory', ID, 'Consume', { reservationId: 'r2' }); // 5
    await send('inventory', ID, 'Adjust', { onHand: 90 }); // 6
  });

  it('names each changed path with the events that changed it', async () => {
    const diff = await runCliJson<{ from: number; to: number; changes: unknown[]; events: { seq: number; event: { type: string } }[] }>(target, [
      'diff',
      'inventory',
      ID,
      '1',
      '3',
    ]);
    expect(diff.from).toBe(1);
    expect(diff.to).toBe(3);
    expect(diff.changes).toEqual([
      { path: 'reserved', change: 'changed', before: 0, after: 50, bySeqs: [2, 3] },
      { path: 'reservations.r1', change: 'added', after: { qty: 30 }, bySeqs: [2] },
      { path: 'reservations.r2', change: 'added', after: { qty: 20 }, bySeqs: [3] },
    ]);
    const rows = await journalRows(db, 'inventory', ID);
    expect(diff.events.map((e) => [e.seq, e.event.type])).toEqual(rows.slice(1, 3).map((r) => [r.seq, r.type]));
  });

  it('leaves out what changed and changed back', async () => {
    const diff = await runCliJson<{ changes: unknown[] }>(target, ['diff', 'inventory', ID, '1', '5']);
    expect(diff.changes).toEqual([
      // Consumed reservations are no longer state: a fact the journal indexes (and the reservation opened and closed).
      { path: 'onHand', change: 'changed', before: 100, after: 80, bySeqs: [5] },
    ]);
  });

  it('prints a table of changes and the events between', async () => {
    const result = await runCli(target, ['diff', 'inventory', ID, '0', '6']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`inventory/${ID}: seq 0 -> 6 (6 event(s))`);
    expect(result.stdout).toMatch(/^onHand\s+changed\s+0\s+90\s+#1 Received, #5 Consumed, #6 Adjusted$/m);
    expect(result.stdout).toMatch(/^6\s+Adjusted\s+\{"onHand":90\}/m);
  });

  it('exits 1 past the last event and 2 when A is after B', async () => {
    expect((await runCli(target, ['diff', 'inventory', ID, '1', '7'])).code).toBe(1);
    expect((await runCli(target, ['diff', 'inventory', ID, '5', '2'])).code).toBe(2);
  });
});

describe('ppos watch', () => {
  it('prints each event as it is journaled, one JSON line each, and stops on SIGINT with exit 0', async () => {
    const ID = 'watch-1';
    const watch = new CliProcess(target, ['watch', 'inventory', ID, '--json']);
    try {
      await watch.waitFor('the watch to subscribe', () => watch.stderrLines.some((l) => l.startsWith('watching ppos.events.inventory.watch-1')));
      await send('inventory', ID, 'Receive', { qty: 5 });
      await send('inventory', ID, 'Reserve', { reservationId: 'w', qty: 2 });
      await send('inventory', 'someone-else', 'Receive', { qty: 1 });
      await send('inventory', ID, 'Release', { reservationId: 'w' });
      await watch.waitFor('three events', () => watch.stdoutLines.length >= 3);
      expect(await watch.stop('SIGINT')).toBe(0);
    } finally {
      await watch.stop('SIGKILL');
    }
    const rows = await journalRows(db, 'inventory', ID);
    const lines = watch.stdoutLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.kind, l.id, l.seq, l.event, l.messageId, l.node])).toEqual(
      rows.map((r) => ['inventory', ID, r.seq, { type: r.type, ...r.data }, r.message_id, node.nodeId]),
    );
  });

  it('with --from, first prints the journaled past, then follows live without a gap, and --count ends it', async () => {
    const ID = 'watch-2';
    await send('inventory', ID, 'Receive', { qty: 9 });
    await send('inventory', ID, 'Receive', { qty: 8 });
    await send('inventory', ID, 'Receive', { qty: 7 });
    const watch = new CliProcess(target, ['watch', 'inventory', ID, '--from', '2', '--count', '4']);
    try {
      await watch.waitFor('the journaled past', () => watch.stdoutLines.length >= 2 && watch.stderrLines.some((l) => l.startsWith('watching')));
      await send('inventory', ID, 'Adjust', { onHand: 50 });
      await send('inventory', ID, 'Receive', { qty: 1 });
      expect(await watch.exited).toBe(0);
    } finally {
      await watch.stop('SIGKILL');
    }
    expect(watch.stdoutLines.map((l) => /#(\d+)\s+(\w+)/.exec(l)?.slice(1))).toEqual([
      ['2', 'Received'],
      ['3', 'Received'],
      ['4', 'Adjusted'],
      ['5', 'Received'],
    ]);
  });

  it('refuses an unknown kind with exit 2', async () => {
    expect((await runCli(target, ['watch', 'nokind', 'x'])).code).toBe(2);
  });
});
