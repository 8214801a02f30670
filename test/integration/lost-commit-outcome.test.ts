// A commit whose connection is lost (pg_terminate_backend, a reset) has its outcome looked up
// in the dedupe records. A repeat of an applied command, decided anew on a reloaded actor,
// finds the ORIGINAL command's record there: it must be answered from that record, not taken
// for its own commit and answered with its new decision (a Create repeated would be answered
// ALREADY_EXISTS although it is the command that created the work order; a chaos run found it).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import type { AppendUnit } from '../../persistence/journal.js';
import { migrate } from '../../persistence/migrations.js';
import { PgJournal } from '../../persistence/pg-journal.js';
import { ActorHost } from '../../runtime/actor-host.js';
import { silentLogger } from '../helpers/node.js';
import { createTestDatabase, type TestDatabase } from '../helpers/services.js';

let db: TestDatabase;
let journal: PgJournal;
let admin: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  journal = new PgJournal({ connectionString: db.url, poolSize: 4, onPoolError: () => undefined });
  await migrate(journal.pool);
  admin = new pg.Pool({ connectionString: db.url, max: 3 });
  admin.on('error', () => undefined);
  await admin.query('INSERT INTO ppos_shard_leases (shard, owner, epoch) VALUES (0, NULL, 0) ON CONFLICT DO NOTHING');
});

afterAll(async () => {
  await journal?.close().catch(() => undefined);
  await admin?.end().catch(() => undefined);
  await db?.drop();
});

/**
 * Runs `append` while the shard's lease row is locked (the append's fence waits on it), then
 * terminates the append's backend mid-statement: its outcome is unknown to the journal.
 */
async function withLostConnection<T>(append: () => Promise<T>): Promise<T> {
  const blocker = await admin.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('SELECT * FROM ppos_shard_leases WHERE shard = 0 FOR UPDATE');
    const pending = append();
    let pid: number | undefined;
    for (let i = 0; i < 250 && pid === undefined; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const waiting = await admin.query(
        // The journal's own connections (application_name 'ppos'); the test's pools have none.
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'ppos' AND state = 'active' AND wait_event_type = 'Lock'",
        [db.name],
      );
      pid = waiting.rows[0]?.pid as number | undefined;
    }
    expect(pid, 'the append waits on the lease row').toBeDefined();
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await blocker.query('ROLLBACK');
    return await pending;
  } finally {
    blocker.release();
  }
}

const hostOptions = () => ({ journal, logger: silentLogger, snapshotEvery: 100, recentReplies: 100, fence: () => ({ shard: 0, epoch: 0 }) });

describe('a lost connection while a repeat commits', () => {
  it('answers a repeated Create from its record, not with ALREADY_EXISTS', async () => {
    const ref = { kind: 'workorder', id: 'wo-lost-1' };
    const kind = actorKinds.get('workorder')!;
    const envelope = { id: 'create-lost-1', type: 'Create', payload: { bom: [{ sku: 'sku-lost-1', qty: 2 }], stages: ['cut'] } };
    const { host: first } = await ActorHost.activate(ref, kind, hostOptions());
    const applied = await first.handle({ envelope, receivedAt: new Date() });
    expect(applied).toMatchObject({ ok: true, seq: 1 });

    // A new host (restart, eviction, passivation) knows the work order but not the reply.
    const { host: reloaded } = await ActorHost.activate(ref, kind, hostOptions());
    const repeat = await withLostConnection(() => reloaded.handle({ envelope, receivedAt: new Date() }));
    expect(repeat).toMatchObject({ ok: true, duplicate: true, seq: 1, events: [{ type: 'Created' }] });
    const events = await db.query('SELECT count(*)::int AS n FROM ppos_events WHERE message_id = $1', [envelope.id]);
    expect(events.rows[0].n).toBe(1);
  });

  it('reports a unit that wrote nothing as a duplicate, not as committed, when only its repeat was recorded', async () => {
    const ref = { kind: 'inventory', id: 'sku-lost-2' };
    const entry = (messageId: string, event: { type: string; qty: number } | null, seq: number) => ({
      event,
      messageId,
      fingerprint: `print-${messageId}`,
      reply: { ok: true as const, seq, events: event ? [event] : [] },
      recordedAt: new Date(),
    });
    const unit = (expectedSeq: number, entries: ReturnType<typeof entry>[]): AppendUnit => ({ ref, expectedSeq, machineVersion: 1, epoch: 0, shard: 0, entries });
    expect(await journal.appendUnit(unit(0, [entry('x1', { type: 'Received', qty: 5 }, 1)]))).toMatchObject({ status: 'committed' });
    // x1 again (decided as a no-op on state at seq 1), then a new y1: the statement would
    // answer `seen` for x1 and write nothing; its connection is lost before it says so.
    const result = await withLostConnection(() => journal.appendUnit(unit(1, [entry('x1', null, 1), entry('y1', { type: 'Received', qty: 7 }, 2)])));
    expect(result).toMatchObject({ status: 'duplicate', records: [{ messageId: 'x1', seq: 1 }] });
    const y1 = await db.query("SELECT count(*)::int AS n FROM ppos_events WHERE message_id = 'y1'");
    expect(y1.rows[0].n).toBe(0);
  });

  it('reports a unit whose statement died before committing as not committed, and its retry commits', async () => {
    const ref = { kind: 'inventory', id: 'sku-lost-3' };
    const appendUnit: AppendUnit = {
      ref,
      expectedSeq: 0,
      machineVersion: 1,
      epoch: 0,
      shard: 0,
      entries: [{ event: { type: 'Received', qty: 3 }, messageId: 'z1', fingerprint: 'print-z1', reply: { ok: true, seq: 1, events: [{ type: 'Received', qty: 3 }] }, recordedAt: new Date() }],
    };
    // Terminated while it waits, so it never commits: the lookup says so, and nothing is written.
    const lost = await withLostConnection(() => journal.appendUnit(appendUnit).catch((error: unknown) => error));
    expect(lost).toBeInstanceOf(Error);
    expect((lost as Error).message).toMatch(/did not commit/);
    // (A statement that committed as its connection broke: pg-outage.test.ts.)
    expect(await journal.appendUnit(appendUnit)).toMatchObject({ status: 'committed' });
  });
});
