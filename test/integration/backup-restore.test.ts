// Backups (docs/backups.md): a `pg_dump -Fc` of a live journal, restored with `pg_restore` into a
// fresh database, serves a node as the original did. The journal, the dedupe records, the timers
// and the projections come back as they were at the backup; a repeat of a message id from before
// the backup is answered from its restored record; a command made after the backup is lost and
// the client's retry with the same id applies it again; `ppos verify` passes; new commands work.
// Against the real PostgreSQL (pg_dump and pg_restore from PATH, or PPOS_TEST_PG_BIN) and a
// private nats-server.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reply } from '../../runtime/envelope.js';
import { JOURNAL_STREAM } from '../../runtime/journal-export.js';
import type { EvidenceRecord } from '../../runtime/verify.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import { runCli } from '../helpers/cli.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const pgBin = (tool: string): string => (process.env.PPOS_TEST_PG_BIN ? path.join(process.env.PPOS_TEST_PG_BIN, tool) : tool);

let source: TestDatabase;
let restored: TestDatabase;
let nats: PrivateNatsServer;
let client: PposClient;
let node: RunningNode | undefined;
let dumpDir: string;

beforeAll(async () => {
  [source, restored, nats] = await Promise.all([createTestDatabase(), createTestDatabase(), startNats()]);
  client = await PposClient.connect(nats.url);
  dumpDir = await mkdtemp(path.join(os.tmpdir(), 'ppos-backup-'));
}, 60_000);

afterAll(async () => {
  await client?.close();
  await node?.stop();
  await nats?.stop();
  await source?.drop();
  await restored?.drop();
  if (dumpDir) await rm(dumpDir, { recursive: true, force: true });
});

/** What the backup must carry, row for row, as text: journal, dedupe records, timers, snapshots, projections. */
const JOURNAL_TABLES: Record<string, string> = {
  events: 'SELECT kind, actor_id, seq, type, data::text, message_id, correlation_id, causation_id, epoch, tx::text, position FROM ppos_events ORDER BY position',
  dedupe: 'SELECT kind, actor_id, message_id, fingerprint, reply::text, seq, duplicates FROM ppos_dedupe ORDER BY kind, actor_id, message_id',
  timers: 'SELECT kind, actor_id, key, shard, due_at, command::text FROM ppos_timers ORDER BY kind, actor_id, key',
  snapshots: 'SELECT kind, actor_id, seq, hash FROM ppos_snapshots ORDER BY kind, actor_id, seq',
  stock: 'SELECT id, on_hand, reserved, available, open_reservations FROM ppos_proj_stock ORDER BY id',
  workorders: 'SELECT id, status, stage, lines::text FROM ppos_proj_workorders ORDER BY id',
  checkpoints: "SELECT name, tx::text, position, applied_events FROM ppos_projections WHERE name <> 'export' ORDER BY name",
};

async function readTables(db: TestDatabase): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const [name, sql] of Object.entries(JOURNAL_TABLES)) out[name] = (await db.query(sql)).rows;
  return out;
}

const ok = (reply: Reply): Reply => {
  expect(reply, JSON.stringify(reply)).toMatchObject({ ok: true, duplicate: false });
  return reply;
};

/** The commands sent before the backup, by message id, with the replies they got. */
const before = new Map<string, { kind: string; id: string; type: string; payload: Record<string, unknown>; reply: Reply }>();
/** Each actor's answer to Get just before the backup. */
const statesAtBackup = new Map<string, Reply>();
let tablesAtBackup: Record<string, unknown[]>;
const ACTORS: [string, string][] = [['inventory', 'steel'], ['inventory', 'bolts'], ['workorder', 'WO-1'], ...Array.from({ length: 12 }, (_, i): [string, string] => ['inventory', `sku-${i}`])];

async function sendBefore(messageId: string, kind: string, id: string, type: string, payload: Record<string, unknown>): Promise<Reply> {
  const reply = await client.sendWithRetry(kind, id, type, payload, { messageId });
  before.set(messageId, { kind, id, type, payload, reply });
  return reply;
}

async function getStates(): Promise<Map<string, Reply>> {
  const states = new Map<string, Reply>();
  for (const [kind, id] of ACTORS) states.set(`${kind}/${id}`, await client.sendWithRetry(kind, id, 'Get', {}));
  return states;
}

/** The Get reply minus what names the moment rather than the state (the read-your-writes token). */
const stateOf = (reply: Reply): unknown => (reply.ok ? { seq: reply.seq, state: reply.state } : reply);

describe('a journal backed up with pg_dump and restored with pg_restore', () => {
  let dumpFile: string;
  let afterBackup: Reply;

  it('is dumped while a node runs on it', async () => {
    node = await startTestNode(nats.url, source.url, { nodeId: 'before-backup' });
    ok(await sendBefore('b-steel', 'inventory', 'steel', 'Receive', { qty: 50 }));
    ok(await sendBefore('b-bolts', 'inventory', 'bolts', 'Receive', { qty: 500 }));
    ok(await sendBefore('b-reserve', 'inventory', 'steel', 'Reserve', { reservationId: 'r1', qty: 5 }));
    expect(await sendBefore('b-rejected', 'inventory', 'bolts', 'Reserve', { reservationId: 'r-big', qty: 1_000_000 })).toMatchObject({
      ok: false,
      error: { code: 'REJECTED' },
    });
    // A hold that comes due after the backup (on an actor of its own: its state changes by itself),
    // and one far in the future: both timers are in the dump.
    ok(await sendBefore('b-held', 'inventory', 'held', 'Receive', { qty: 10 }));
    ok(await sendBefore('b-hold-soon', 'inventory', 'held', 'Reserve', { reservationId: 'hold-soon', qty: 10, holdMs: 8_000 }));
    ok(await sendBefore('b-hold-later', 'inventory', 'bolts', 'Reserve', { reservationId: 'hold-later', qty: 20, holdMs: 3_600_000 }));
    ok(await sendBefore('b-wo-create', 'workorder', 'WO-1', 'Create', { bom: [{ sku: 'steel', qty: 4 }, { sku: 'bolts', qty: 24 }], stages: ['cut', 'weld'] }));
    ok(await sendBefore('b-wo-release', 'workorder', 'WO-1', 'Release', {}));
    for (let i = 0; i < 12; i += 1) ok(await sendBefore(`b-sku-${i}`, 'inventory', `sku-${i}`, 'Receive', { qty: i + 1 }));
    // The projections caught up, so the dump holds them level with the journal.
    await waitFor('the projections to catch up', async () => {
      const { rows } = await source.query<{ behind: string }>(
        `SELECT count(*) AS behind FROM ppos_projections p JOIN ppos_events e ON (e.tx, e.position) > (p.tx, p.position) WHERE p.name IN ('stock', 'workorders')`,
      );
      return Number(rows[0]!.behind) === 0;
    });
    for (const [key, reply] of await getStates()) statesAtBackup.set(key, reply);
    tablesAtBackup = await readTables(source);
    expect(tablesAtBackup.timers!.length).toBe(2);

    dumpFile = path.join(dumpDir, 'journal.dump');
    await run(pgBin('pg_dump'), ['--format=custom', `--file=${dumpFile}`, `--dbname=${source.url}`]);

    // After the backup point: this command is in the old database only.
    afterBackup = ok(await client.sendWithRetry('inventory', 'steel', 'Receive', { qty: 7 }, { messageId: 'after-backup' }));
    // The old node is gone (the disaster the backup is for); nothing may run on the old journal
    // and the restored one at once on the same NATS.
    await node.stop();
    node = undefined;
  }, 60_000);

  it('restores into a fresh database table for table as it was at the backup', async () => {
    await run(pgBin('pg_restore'), ['--exit-on-error', '--no-owner', `--dbname=${restored.url}`, dumpFile]);
    expect(await readTables(restored)).toEqual(tablesAtBackup);
    // The JetStream stream holds the old journal's events after the backup point too: refill it
    // from the restored journal (docs/backups.md).
    const jsm = await jetstreamManager(client.nc);
    await jsm.streams.delete(JOURNAL_STREAM);
    await restored.query(`UPDATE ppos_projections SET tx = '0', position = 0, applied_events = 0 WHERE name = 'export'`);
  }, 60_000);

  it('serves the restored state from a node on the restored database', async () => {
    // A new node id: the leases in the dump name the old node, and expire by themselves.
    node = await startTestNode(nats.url, restored.url, { nodeId: 'after-restore' });
    const states = await getStates();
    for (const [key, reply] of statesAtBackup) expect(stateOf(states.get(key)!), key).toEqual(stateOf(reply));
  }, 60_000);

  it('answers a repeat of a message id from before the backup with duplicate: true and the original reply', async () => {
    for (const messageId of ['b-steel', 'b-reserve', 'b-rejected', 'b-wo-release', 'b-sku-3']) {
      const { kind, id, type, payload, reply } = before.get(messageId)!;
      expect(await client.sendWithRetry(kind, id, type, payload, { messageId }), messageId).toEqual({ ...reply, duplicate: true });
    }
    const { rows } = await restored.query<{ n: string }>("SELECT count(*) AS n FROM ppos_events WHERE message_id LIKE 'b-%'");
    expect(Number(rows[0]!.n)).toBe((tablesAtBackup.events as { message_id: string }[]).filter((e) => e.message_id.startsWith('b-')).length);
  });

  it('has lost the command made after the backup, and applies the client retry with the same id again', async () => {
    const retried = ok(await client.sendWithRetry('inventory', 'steel', 'Receive', { qty: 7 }, { messageId: 'after-backup' }));
    expect(retried).toMatchObject({ seq: (afterBackup as { seq: number }).seq, events: [{ type: 'Received', qty: 7 }] });
    expect(await client.sendWithRetry('inventory', 'steel', 'Receive', { qty: 7 }, { messageId: 'after-backup' })).toEqual({ ...retried, duplicate: true });
  });

  it('fires the timer that came due after the backup, once', async () => {
    await waitFor(
      'the restored hold to expire',
      async () => {
        const { rows } = await restored.query("SELECT 1 FROM ppos_events WHERE kind = 'inventory' AND actor_id = 'held' AND type = 'HoldExpired'");
        return rows.length === 1;
      },
      30_000,
    );
    expect(await client.sendWithRetry('inventory', 'held', 'Get', {})).toMatchObject({ ok: true, state: { available: 10, openReservations: 0 } });
    const { rows } = await restored.query<{ actor_id: string }>('SELECT actor_id FROM ppos_timers');
    expect(rows).toEqual([{ actor_id: 'bolts' }]); // hold-later stays pending
  }, 40_000);

  it('takes new commands, a saga included, and refills the JetStream export from the restored journal', async () => {
    ok(await client.sendWithRetry('inventory', 'new-sku', 'Receive', { qty: 3 }));
    ok(await client.sendWithRetry('workorder', 'WO-2', 'Create', { bom: [{ sku: 'steel', qty: 1 }], stages: ['cut'] }));
    ok(await client.sendWithRetry('workorder', 'WO-2', 'Release', {}));
    const { rows } = await restored.query<{ n: string }>('SELECT count(*) AS n FROM ppos_events');
    const jsm = await jetstreamManager(client.nc);
    await waitFor('the export to publish the whole restored journal', async () => {
      const info = await jsm.streams.info(JOURNAL_STREAM).catch(() => null);
      return info !== null && info.state.messages >= Number(rows[0]!.n);
    });
  }, 60_000);

  it('passes ppos verify', async () => {
    const result = await runCli(['verify', '--all'], { PPOS_DATABASE_URL: restored.url, PPOS_NATS_URL: nats.url });
    const record = JSON.parse(result.stdout) as EvidenceRecord;
    expect(record.reconciliation_failures).toEqual([]);
    expect(record.confidence_status).toBe('trusted');
    expect(result.code, result.stderr).toBe(0);
  }, 60_000);
});
