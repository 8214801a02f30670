// The eventual side over real PostgreSQL, NATS and JetStream (CONTRACT.md section 8): queries
// of the projections, read-your-writes with a command's commit token, STALE when the
// projection cannot catch up in time, the journal exported to JetStream once per message id
// even when the relay publishes a stretch again, and rebuild/verify naming the rows a hand
// edit changed.
import { describe, expect, it } from 'vitest';
import type { Reply } from '../../runtime/envelope.js';
import { runCli } from '../helpers/cli.js';
import { readJournalStream } from '../helpers/journal-stream.js';
import { useSuite } from '../helpers/suite.js';
import { waitFor } from '../helpers/wait.js';

const suite = useSuite();

type QueryReply =
  | { ok: true; rows: Record<string, unknown>[]; next?: string; lagMs: number }
  | { ok: false; error: { code: string; message: string; lagMs?: number } };

const query = async (projection: string, body: unknown, timeoutMs = 15_000): Promise<QueryReply> =>
  (await suite.client.request(`ppos.query.${projection}`, typeof body === 'string' ? body : JSON.stringify(body), timeoutMs)) as unknown as QueryReply;

const send = async (kind: string, id: string, type: string, payload?: Record<string, unknown>): Promise<Reply & { ok: true; token?: string }> => {
  const reply = await suite.client.sendWithRetry(kind, id, type, payload, { timeoutMs: 5_000 });
  expect(reply.ok, JSON.stringify(reply)).toBe(true);
  return reply as Reply & { ok: true; token?: string };
};

const cli = (...args: string[]) => runCli([...args, '--nats', suite.nats.url, '--db', suite.db.url]);

const projectionRow = async (name: string) =>
  (await suite.db.query<{ applied_events: string; rebuilding: boolean }>('SELECT applied_events, rebuilding FROM ppos_projections WHERE name = $1', [name])).rows[0];

describe('queries with read-your-writes', () => {
  it("a query after a command's token sees that command's effect", async () => {
    const received = await send('inventory', 'q-bolt', 'Receive', { qty: 50 });
    expect(typeof received.token).toBe('string');
    const first = await query('stock', { where: { id: 'q-bolt' }, after: received.token });
    expect(first).toMatchObject({ ok: true, rows: [{ id: 'q-bolt', onHand: 50, reserved: 0, available: 50, openReservations: 0 }] });

    await send('inventory', 'q-nut', 'Receive', { qty: 500 });
    const reserved = await send('inventory', 'q-bolt', 'Reserve', { reservationId: 'r1', qty: 45 });
    const below = await query('stock', { where: { availableBelow: 10 }, after: reserved.token });
    expect(below.ok && below.rows.map((r) => r.id)).toEqual(['q-bolt']);
    expect(below.ok && below.rows[0]).toMatchObject({ onHand: 50, reserved: 45, available: 5, openReservations: 1 });

    const consumed = await send('inventory', 'q-bolt', 'Consume', { reservationId: 'r1' });
    const after = await query('stock', { where: { id: 'q-bolt' }, after: consumed.token });
    expect(after.ok && after.rows[0]).toMatchObject({ onHand: 5, reserved: 0, available: 5, openReservations: 0 });
  });

  it('a work order shows in the workorders projection in its status, stage and lines', async () => {
    await send('inventory', 'q-steel', 'Receive', { qty: 100 });
    await send('workorder', 'q-wo-1', 'Create', { bom: [{ sku: 'q-steel', qty: 30 }], stages: ['cut', 'weld', 'paint'] });
    await send('workorder', 'q-wo-1', 'Release', {});
    await send('workorder', 'q-wo-1', 'Start', {});
    const advanced = await send('workorder', 'q-wo-1', 'AdvanceStage', { to: 'weld' });
    const inWeld = await query('workorders', { where: { status: 'in_progress' }, after: advanced.token });
    expect(inWeld.ok && inWeld.rows).toEqual([
      expect.objectContaining({ id: 'q-wo-1', status: 'in_progress', stage: 'weld', lines: [expect.objectContaining({ sku: 'q-steel', qty: 30 })] }),
    ]);
  });

  it('pages with a cursor, in id order, without repeats', async () => {
    for (const n of [1, 2, 3, 4, 5]) await send('inventory', `page-${n}`, 'Receive', { qty: n });
    const last = await send('inventory', 'page-6', 'Receive', { qty: 6 });
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await query('stock', { where: {}, limit: 4, after: last.token, ...(cursor ? { cursor } : {}) });
      if (!page.ok) throw new Error(JSON.stringify(page));
      seen.push(...page.rows.map((r) => r.id as string));
      cursor = page.next;
    } while (cursor);
    expect(seen.filter((id) => id.startsWith('page-'))).toEqual(['page-1', 'page-2', 'page-3', 'page-4', 'page-5', 'page-6']);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('answers a malformed query BAD_REQUEST', async () => {
    for (const [projection, body] of [
      ['stock', { where: { availableBelow: 'ten' } }],
      ['stock', { where: { status: 'draft' } }],
      ['stock', { after: 'not-a-token' }],
      ['stock', { limit: 5_000 }],
      ['stock', '{"where":'],
      ['workorders', { where: { status: 'weld' } }],
      ['nothing', {}],
      ['__proto__', {}],
    ] as const) {
      const reply = await query(projection, body);
      expect(reply, `${projection} ${JSON.stringify(body)}`).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    }
  });

  it('answers STALE with the lag when the projection does not reach the token in time, and the write once it does', async () => {
    // Fence the runner out, as a rebuild does: nobody applies stock's events meanwhile.
    await suite.db.query("UPDATE ppos_projections SET rebuilding = true, epoch = epoch + 1, expires_at = now() + interval '1 minute' WHERE name = 'stock'");
    const received = await send('inventory', 'q-stale', 'Receive', { qty: 7 });
    const stale = await query('stock', { where: { id: 'q-stale' }, after: received.token, timeoutMs: 300 });
    expect(stale).toMatchObject({ ok: false, error: { code: 'STALE' } });
    expect(!stale.ok && stale.error.lagMs).toBeGreaterThan(0);
    // Without `after` the query answers at once, from what the projection holds, with its lag.
    const unfenced = await query('stock', { where: { id: 'q-stale' } });
    expect(unfenced).toMatchObject({ ok: true, rows: [] });
    expect(unfenced.ok && unfenced.lagMs).toBeGreaterThan(0);

    const listed = await cli('projections', '--json');
    expect(listed.code, listed.stderr).toBe(0);
    const reports = JSON.parse(listed.stdout) as { name: string; status: string; lagEvents: number; budgetMs: number }[];
    expect(reports.find((r) => r.name === 'stock')).toMatchObject({ status: 'rebuilding', budgetMs: 2_000 });
    expect(reports.find((r) => r.name === 'stock')!.lagEvents).toBeGreaterThan(0);
    expect(reports.map((r) => r.name).sort()).toEqual(['export', 'stock', 'workorders']);

    await suite.db.query("UPDATE ppos_projections SET rebuilding = false, expires_at = now() WHERE name = 'stock'");
    const fresh = await query('stock', { where: { id: 'q-stale' }, after: received.token, timeoutMs: 15_000 });
    expect(fresh).toMatchObject({ ok: true, rows: [{ id: 'q-stale', onHand: 7 }] });
  });
});

describe('the journal exported to JetStream', () => {
  const journalIds = async (): Promise<string[]> =>
    (await suite.db.query<{ id: string }>("SELECT kind || '/' || actor_id || '/' || seq AS id FROM ppos_events ORDER BY tx, position")).rows.map((r) => r.id);

  const exportCaughtUp = async (): Promise<void> => {
    const total = (await journalIds()).length;
    await waitFor('the export to catch up', async () => Number((await projectionRow('export'))?.applied_events) >= total);
  };

  it('holds every committed event once, in per-actor order, with its message id and body', async () => {
    await send('inventory', 'x-1', 'Receive', { qty: 3 });
    await send('inventory', 'x-1', 'Reserve', { reservationId: 'a', qty: 2 });
    await exportCaughtUp();
    const streamed = await readJournalStream(suite.nats.url);
    expect(streamed.map((m) => m.msgId)).toEqual(await journalIds());
    const x1 = streamed.filter((m) => m.body.kind === 'inventory' && m.body.id === 'x-1');
    expect(x1.map((m) => [m.subject, m.body.seq, m.body.event.type])).toEqual([
      ['ppos.journal.inventory.x-1', 1, 'Received'],
      ['ppos.journal.inventory.x-1', 2, 'Reserved'],
    ]);
    expect(typeof x1[0]!.body.messageId).toBe('string');
  });

  it('publishing everything again after a relay lost its checkpoint leaves each event in the stream once', async () => {
    await send('inventory', 'x-2', 'Receive', { qty: 1 });
    await exportCaughtUp();
    const before = (await readJournalStream(suite.nats.url)).length;
    // As if the relay had crashed after publishing, before its checkpoint moved: it starts over.
    await suite.db.query("UPDATE ppos_projections SET tx = '0', position = 0, applied_events = 0 WHERE name = 'export'");
    await send('inventory', 'x-2', 'Receive', { qty: 1 });
    await exportCaughtUp();
    const streamed = await readJournalStream(suite.nats.url);
    expect(streamed.length).toBe(before + 1);
    expect(new Set(streamed.map((m) => m.msgId)).size).toBe(streamed.length);
    expect(streamed.map((m) => m.msgId)).toEqual(await journalIds());
  });
});

describe('rebuild and verify', () => {
  it('report projections_changed 0 for an intact read model, and name the rows a hand edit changed', async () => {
    const last = await send('inventory', 'v-1', 'Receive', { qty: 10 });
    await query('stock', { where: {}, after: last.token });
    await query('workorders', { where: {}, after: last.token });

    const intact = await cli('verify', '--all', '--no-live');
    expect(intact.code, intact.stdout + intact.stderr).toBe(0);
    expect(JSON.parse(intact.stdout)).toMatchObject({ projections_changed: 0, confidence_status: 'trusted' });
    expect(JSON.parse(intact.stdout).checks).toContain('projections_match_journal');

    // Two hand edits: a wrong figure, and a row the journal never made.
    await suite.db.query("UPDATE ppos_proj_stock SET available = 9999 WHERE id = 'v-1'");
    await suite.db.query("INSERT INTO ppos_proj_workorders (id, status, stage, lines, state, updated_at) VALUES ('forged', 'completed', null, '[]', '{}', now())");
    const tampered = await cli('verify', '--all', '--no-live');
    expect(tampered.code).toBe(1);
    const record = JSON.parse(tampered.stdout);
    expect(record).toMatchObject({ projections_changed: 2, confidence_status: 'suspect' });
    expect(JSON.stringify(record.reconciliation_failures)).toContain('v-1');
    expect(JSON.stringify(record.reconciliation_failures)).toContain('forged');

    const rebuilt = await cli('projections', 'rebuild', 'stock');
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    expect(JSON.parse(rebuilt.stdout)).toMatchObject({ projection: 'stock', projections_changed: 1 });
    const rebuiltOrders = await cli('projections', 'rebuild', 'workorders');
    expect(JSON.parse(rebuiltOrders.stdout)).toMatchObject({ projection: 'workorders', projections_changed: 1 });

    const healed = await cli('verify', '--all', '--no-live');
    expect(JSON.parse(healed.stdout)).toMatchObject({ projections_changed: 0, confidence_status: 'trusted' });
    const v1 = await query('stock', { where: { id: 'v-1' } });
    expect(v1).toMatchObject({ ok: true, rows: [{ id: 'v-1', available: 10 }] });
    // The runners took the rebuilt projections back and go on.
    const next = await send('inventory', 'v-1', 'Receive', { qty: 1 });
    expect(await query('stock', { where: { id: 'v-1' }, after: next.token })).toMatchObject({ ok: true, rows: [{ onHand: 11 }] });
  });

  it('refuses to rebuild a projection that does not exist', async () => {
    const result = await cli('projections', 'rebuild', 'nothing');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('no projection');
  });
});
