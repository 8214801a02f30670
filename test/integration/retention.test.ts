// Dedupe retention (opt-in): records are aged by the time their message id carries (a ULID's),
// pruned by the database's clock, and a repeat from before what was pruned is refused, never
// decided again: not a rejection that could now succeed, not a no-op that could now act.
// Ids without a time (anything but a ULID) are remembered for ever.
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { useSuite } from '../helpers/suite.js';

const suite = useSuite();
const client = () => suite.client;
const HOUR = 3_600_000;

/** A message id that says it was made `hoursAgo` hours ago, as a client with that clock would. */
const idFrom = (hoursAgo: number): string => ulid(Date.now() - hoursAgo * HOUR);

const records = async (messageId: string): Promise<number> =>
  (await suite.db.query('SELECT 1 FROM ppos_dedupe WHERE message_id = $1', [messageId])).rowCount ?? 0;

describe('dedupe retention', () => {
  it('keeps every record by default', async () => {
    const old = idFrom(30);
    expect(await client().send('inventory', 'ret-keep', 'Receive', { qty: 3 }, { messageId: old })).toMatchObject({ ok: true });
    await suite.restartNode();
    expect(await records(old)).toBe(1);
    expect(await client().send('inventory', 'ret-keep', 'Receive', { qty: 3 }, { messageId: old })).toMatchObject({ ok: true, duplicate: true });
  });

  it('prunes on its own when the node is started with a window, never a record still waiting for its saga', async () => {
    const old = idFrom(5);
    expect(await client().send('inventory', 'ret-auto', 'Receive', { qty: 1 }, { messageId: old })).toMatchObject({ ok: true });
    await suite.db.query(
      `INSERT INTO ppos_dedupe (kind, actor_id, message_id, fingerprint, reply, seq, recorded_at, id_time)
       VALUES ('workorder', 'ret-wo', $1, 'f', '{"ok": true, "seq": 1, "pending": true}', 1, now(), now() - interval '5 hours')`,
      [idFrom(5)],
    );
    await suite.restartNode({ dedupeRetentionHours: 1 });
    const deadline = Date.now() + 10_000;
    while ((await records(old)) !== 0) {
      if (Date.now() > deadline) throw new Error('old record not pruned');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const pending = await suite.db.query("SELECT 1 FROM ppos_dedupe WHERE actor_id = 'ret-wo'");
    expect(pending.rowCount).toBe(1);
    // From now on an id from before the horizon is refused even if never seen: it might be a repeat.
    expect(await client().send('inventory', 'ret-auto', 'Receive', { qty: 1 }, { messageId: idFrom(2) })).toMatchObject({
      ok: false,
      error: { code: 'ID_REUSED', reason: 'ID_EXPIRED' },
    });
    await suite.restartNode();
  });

  it('refuses a pruned REJECTED command rather than deciding it again, though it would now succeed', async () => {
    const rejectedId = idFrom(0.5);
    const rejected = await client().send('inventory', 'ret-rej', 'Reserve', { reservationId: 'r1', qty: 5 }, { messageId: rejectedId });
    expect(rejected).toMatchObject({ ok: false, error: { code: 'REJECTED', reason: 'INSUFFICIENT_STOCK' } });
    expect(await client().send('inventory', 'ret-rej', 'Receive', { qty: 10 }, { messageId: idFrom(0) })).toMatchObject({ ok: true });

    expect(await suite.node!.journal.pruneDedupe(0.25)).toBeGreaterThan(0);
    expect(await records(rejectedId)).toBe(0);
    await suite.restartNode(); // the actor's memory of recent replies goes too: only the journal can answer

    const retried = await client().send('inventory', 'ret-rej', 'Reserve', { reservationId: 'r1', qty: 5 }, { messageId: rejectedId });
    expect(retried).toMatchObject({ ok: false, error: { code: 'ID_REUSED', reason: 'ID_EXPIRED' } });
    const state = await client().send('inventory', 'ret-rej', 'Get', undefined);
    expect(state).toMatchObject({ ok: true, state: { reserved: 0, onHand: 10 } });
  });

  it('refuses a pruned no-op Release rather than letting it release a reservation another message made since', async () => {
    const noopId = idFrom(0.2);
    expect(await client().send('inventory', 'ret-noop', 'Receive', { qty: 10 }, { messageId: idFrom(0) })).toMatchObject({ ok: true });
    // Released before it was reserved: the contract's no-op success, recorded with no event.
    expect(await client().send('inventory', 'ret-noop', 'Release', { reservationId: 'late' }, { messageId: noopId })).toMatchObject({ ok: true, events: [] });
    expect(await client().send('inventory', 'ret-noop', 'Reserve', { reservationId: 'late', qty: 4 }, { messageId: idFrom(0) })).toMatchObject({ ok: true });

    await suite.node!.journal.pruneDedupe(0.1);
    expect(await records(noopId)).toBe(0);
    await suite.restartNode();

    const redelivered = await client().send('inventory', 'ret-noop', 'Release', { reservationId: 'late' }, { messageId: noopId });
    expect(redelivered).toMatchObject({ ok: false, error: { code: 'ID_REUSED', reason: 'ID_EXPIRED' } });
    const state = await client().send('inventory', 'ret-noop', 'Get', undefined);
    expect(state).toMatchObject({ ok: true, state: { reserved: 4 } });
  });

  it('keeps records younger than the window, and every record of an id without a time, and answers them as repeats', async () => {
    const recent = idFrom(0);
    expect(await client().send('inventory', 'ret-young', 'Receive', { qty: 2 }, { messageId: recent })).toMatchObject({ ok: true });
    expect(await client().send('inventory', 'ret-young', 'Receive', { qty: 2 }, { messageId: 'order-7-receive' })).toMatchObject({ ok: true });
    await suite.db.query("UPDATE ppos_dedupe SET recorded_at = now() - interval '30 days' WHERE message_id = 'order-7-receive'");
    await suite.node!.journal.pruneDedupe(0.05);
    expect(await records(recent)).toBe(1);
    expect(await records('order-7-receive')).toBe(1);
    expect(await client().send('inventory', 'ret-young', 'Receive', { qty: 2 }, { messageId: recent })).toMatchObject({ ok: true, duplicate: true });
    expect(await client().send('inventory', 'ret-young', 'Receive', { qty: 2 }, { messageId: 'order-7-receive' })).toMatchObject({ ok: true, duplicate: true });
  });

});
