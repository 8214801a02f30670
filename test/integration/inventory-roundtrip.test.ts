import { describe, expect, it } from 'vitest';
import { useSuite } from '../helpers/suite.js';

const suite = useSuite();

describe('inventory over NATS', () => {
  it('receives stock and answers with the journaled event, seq and state', async () => {
    const reply = await suite.client.send('inventory', 'sku-1', 'Receive', { qty: 10 }, { messageId: 'm-1' });
    expect(reply).toEqual({
      ok: true,
      duplicate: false,
      seq: 1,
      events: [{ type: 'Received', qty: 10 }],
      state: { onHand: 10, reserved: 0, available: 10, openReservations: 0 },
      // Where the event stands in the journal's read order (read-your-writes on a projection).
      token: expect.any(String),
    });
    const rows = await suite.db.query('SELECT seq, type, data, message_id FROM ppos_events WHERE actor_id = $1', ['sku-1']);
    expect(rows.rows).toEqual([{ seq: 1, type: 'Received', data: { qty: 10 }, message_id: 'm-1' }]);
  });

  it('returns the first reply with duplicate: true for a repeated message id, appending nothing', async () => {
    const first = await suite.client.send('inventory', 'sku-2', 'Receive', { qty: 5 }, { messageId: 'dup-1' });
    const again = await suite.client.send('inventory', 'sku-2', 'Receive', { qty: 5 }, { messageId: 'dup-1' });
    expect(again).toEqual({ ...first, duplicate: true });
    expect(first.ok && typeof first.token).toBe('string');
    const count = await suite.db.query('SELECT count(*)::int AS n FROM ppos_events WHERE actor_id = $1', ['sku-2']);
    expect(count.rows[0]).toEqual({ n: 1 });
  });

  it('answers ID_REUSED when a message id comes back with a different command', async () => {
    await suite.client.send('inventory', 'sku-3', 'Receive', { qty: 5 }, { messageId: 'reuse-1' });
    const reused = await suite.client.send('inventory', 'sku-3', 'Receive', { qty: 6 }, { messageId: 'reuse-1' });
    expect(reused.ok).toBe(false);
    expect(!reused.ok && reused.error.code).toBe('ID_REUSED');
  });
});
