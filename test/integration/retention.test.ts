// Dedupe retention (opt-in): settled records older than the window are pruned; a message id
// whose event is still in the journal can then never be applied again (ID_REUSED).
import { describe, expect, it } from 'vitest';
import { useSuite } from '../helpers/suite.js';

const suite = useSuite();
const restartNode = (overrides = {}) => suite.restartNode(overrides);
const client = () => suite.client;

describe('dedupe retention', () => {
  it('keeps every record by default, and with a window prunes old settled ones but never re-applies their events', async () => {
    await client().send('inventory', 'ret-1', 'Receive', { qty: 3 }, { messageId: 'old-receive' });
    await client().send('inventory', 'ret-1', 'Receive', { qty: 4 }, { messageId: 'recent-receive' });
    await suite.db.query("UPDATE ppos_dedupe SET recorded_at = now() - interval '3 hours' WHERE message_id = 'old-receive'");

    await restartNode();
    const kept = await suite.db.query<{ n: number }>('SELECT count(*)::int AS n FROM ppos_dedupe');
    expect(kept.rows[0]!.n).toBe(2); // no window configured: nothing pruned

    await restartNode({ dedupeRetentionHours: 1 });
    const deadline = Date.now() + 10_000;
    while ((await suite.db.query("SELECT 1 FROM ppos_dedupe WHERE message_id = 'old-receive'")).rowCount !== 0) {
      if (Date.now() > deadline) throw new Error('old record not pruned');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const retried = await client().send('inventory', 'ret-1', 'Receive', { qty: 3 }, { messageId: 'old-receive' });
    expect(retried.ok).toBe(false);
    expect(!retried.ok && retried.error.code).toBe('ID_REUSED');
    const recent = await client().send('inventory', 'ret-1', 'Receive', { qty: 4 }, { messageId: 'recent-receive' });
    expect(recent).toMatchObject({ ok: true, duplicate: true, seq: 2 });
    const events = await suite.db.query<{ n: number }>("SELECT count(*)::int AS n FROM ppos_events WHERE actor_id = 'ret-1'");
    expect(events.rows[0]!.n).toBe(2);
  });
});
