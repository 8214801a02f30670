// Group commit shares one statement between actors, but every unit gets its own outcome: what
// goes wrong for one actor's commands (a repeat, a value the database refuses) never decides
// another actor's answer, and a unit that committed is never reported as not applied.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { z } from 'zod';
import type { ActorKind } from '../../actors/kind.js';
import { actorKinds } from '../../actors/index.js';
import { parseWith } from '../../actors/schema.js';
import { migrate } from '../../persistence/migrations.js';
import { JournalUnavailableError, type AppendUnit, type DedupeRecord } from '../../persistence/journal.js';
import { PgJournal } from '../../persistence/pg-journal.js';
import { PposClient } from '../../src/client.js';
import { resolveConfig } from '../../src/config.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { startNode, type RunningNode } from '../../src/node.js';
import { silentLogger } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';

/** A journal whose separate reads all fail, as when the database goes away right after a commit. */
class JournalWithFailingReads extends PgJournal {
  override async findDedupe(): Promise<DedupeRecord | null> {
    throw new JournalUnavailableError('journal unavailable: reads fail in this test', false);
  }
}

let db: TestDatabase;
let journal: JournalWithFailingReads;

const unit = (actor: string, messageId: string, expectedSeq: number, data: Record<string, unknown> = { qty: 1 }): AppendUnit => ({
  ref: { kind: 'inventory', id: actor },
  expectedSeq,
  machineVersion: 1,
  epoch: 0,
  shard: 0,
  entries: [
    {
      event: { type: 'Received', ...data },
      messageId,
      fingerprint: `print-${messageId}`,
      reply: { ok: true, seq: expectedSeq + 1, events: [{ type: 'Received', ...data }] },
      recordedAt: new Date(),
    },
  ],
});

const eventCount = async (messageId: string): Promise<number> =>
  (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM ppos_events WHERE message_id = $1', [messageId])).rows[0]!.n;

beforeAll(async () => {
  db = await createTestDatabase();
  journal = new JournalWithFailingReads({ connectionString: db.url, poolSize: 4 });
  await migrate(journal.pool);
});

afterAll(async () => {
  await journal?.close();
  await db?.drop();
});

describe('one group commit, several actors', () => {
  it('answers a repeat from the record the statement returns, and the others as committed, even when separate reads fail', async () => {
    const first = await journal.appendUnit(unit('rep-x', 'x1', 0));
    expect(first).toEqual({ status: 'committed', tokens: new Map([['x1', expect.any(String)]]) });
    const firstToken = (first as { tokens: Map<string, string> }).tokens.get('x1');
    // Submitted in one turn of the event loop: they share one statement.
    const [repeat, fresh, other] = await Promise.all([
      journal.appendUnit(unit('rep-x', 'x1', 1)),
      journal.appendUnit(unit('rep-y', 'y1', 0)),
      journal.appendUnit(unit('rep-z', 'z1', 0)),
    ]);
    expect(repeat).toEqual({
      status: 'duplicate',
      // The repeat's record carries the commit token the first reply carried.
      records: [{ messageId: 'x1', fingerprint: 'print-x1', seq: 1, reply: { ok: true, seq: 1, events: [{ type: 'Received', qty: 1 }] }, token: firstToken }],
    });
    expect(fresh).toEqual({ status: 'committed', tokens: new Map([['y1', expect.any(String)]]) });
    expect(other).toEqual({ status: 'committed', tokens: new Map([['z1', expect.any(String)]]) });
    expect([await eventCount('x1'), await eventCount('y1'), await eventCount('z1')]).toEqual([1, 1, 1]);
  });

  it("refuses a value the database cannot store for that unit alone, as invalid, and commits the others'", async () => {
    const [bad, good] = await Promise.all([
      journal.appendUnit(unit('data-x', 'dx1', 0, { qty: 1, note: 'cut\u0000' })),
      journal.appendUnit(unit('data-y', 'dy1', 0)),
    ]);
    expect(bad).toMatchObject({ status: 'invalid', message: expect.stringContaining('cannot store') });
    expect(good).toEqual({ status: 'committed', tokens: new Map([['dy1', expect.any(String)]]) });
    expect([await eventCount('dx1'), await eventCount('dy1')]).toEqual([0, 1]);
    const records = await db.query("SELECT 1 FROM ppos_dedupe WHERE message_id = 'dx1'");
    expect(records.rowCount).toBe(0);
  });
});

// A kind whose schema lets any text through, so the database itself must refuse it: the
// second line of defence behind the built-in kinds' own schemas.
const laxMachine = setup({ types: { context: {} as { notes: number }, events: {} as { type: 'Noted'; text: string } } }).createMachine({
  id: 'lax',
  context: { notes: 0 },
  on: { Noted: { actions: assign({ notes: ({ context }) => context.notes + 1 }) } },
});
const laxPayloads = { Note: z.object({ text: z.string() }).strict(), Get: z.object({}).strict() };
const lax: ActorKind = {
  kind: 'lax',
  machineVersion: 1,
  machine: laxMachine,
  queries: new Set(['Get']),
  commands: new Set(Object.keys(laxPayloads)),
  parseCommand: (type, payload) => parseWith('lax', laxPayloads, type, payload),
  decide: (_state, command) => ({ outcome: 'accept', event: { type: 'Noted', text: String(command.payload.text) } }),
  view: (state) => ({ notes: (state.context as { notes: number }).notes }),
  invariants: [],
  invariantFailures: () => [],
};

describe('a command carrying text the journal cannot store', () => {
  let nats: PrivateNatsServer;
  let node: RunningNode;
  let client: PposClient;

  beforeAll(async () => {
    nats = await startNats();
    const config = { ...resolveConfig({ nats: nats.url, db: db.url, node: 'lax-node' }, {}), shardCount: 256 };
    node = await startNode(config, silentLogger, { kinds: new Map([...actorKinds, ['lax', lax]]) });
    client = await PposClient.connect(nats.url);
  });

  afterAll(async () => {
    await client?.close();
    await node?.stop();
    await nats?.stop();
  });

  it('is answered BAD_REQUEST, never UNAVAILABLE, and fails no other command sharing its commit', async () => {
    const replies = await Promise.all([
      client.send('lax', 'l-1', 'Note', { text: 'cut\u0000' }, { messageId: 'lax-bad-nul' }),
      client.send('lax', 'l-2', 'Note', { text: 'x\ud800y' }, { messageId: 'lax-bad-surrogate' }),
      ...Array.from({ length: 8 }, (_, i) => client.send('lax', `l-ok-${i}`, 'Note', { text: `fine ${i}` }, { messageId: `lax-ok-${i}` })),
      client.send('lax', 'l-1', 'Note', { text: 'after the bad one' }, { messageId: 'lax-after' }),
    ]);
    const [nul, surrogate, ...rest] = replies;
    expect(nul).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    expect(surrogate).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    for (const reply of rest) expect(reply, JSON.stringify(reply)).toMatchObject({ ok: true, duplicate: false });
    // Not recorded for dedupe (contract section 3): fixed and sent again with the same id, it applies.
    expect(await client.send('lax', 'l-1', 'Note', { text: 'cut' }, { messageId: 'lax-bad-nul' })).toMatchObject({ ok: true, duplicate: false });
  });
});
