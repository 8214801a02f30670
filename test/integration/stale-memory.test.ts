// An actor whose memory is behind its journal must not record even a command that appends
// nothing: the journal refuses the stale decision, the actor reloads and decides again.
import { describe, expect, it } from 'vitest';
import { useSuite } from '../helpers/suite.js';
import { shardOf } from '../../runtime/sharding.js';

const suite = useSuite();

describe('a decision on stale memory', () => {
  it('is refused by the journal even when it appends nothing; the actor reloads and decides on the journal', async () => {
    const { client, db } = suite;
    await client.send('inventory', 'stale-1', 'Receive', { qty: 10 }, { messageId: 'stale-stock' });
    // Another writer (a bug, or an ambiguous commit the actor never saw land) adds a reservation.
    const lease = await db.query<{ epoch: number }>('SELECT epoch FROM ppos_shard_leases WHERE shard = $1', [shardOf({ kind: 'inventory', id: 'stale-1' }, 256)]);
    await db.query(
      `INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, machine_version, epoch, recorded_at)
       VALUES ('inventory', 'stale-1', 2, 'Reserved', '{"reservationId": "r9", "qty": 4}', 'foreign-1', 1, $1, now())`,
      [lease.rows[0]!.epoch],
    );
    // On its old memory r9 is unknown, so Release would be a no-op that appends nothing.
    const released = await client.send('inventory', 'stale-1', 'Release', { reservationId: 'r9' }, { messageId: 'release-r9' });
    expect(released).toMatchObject({ ok: true, seq: 3, events: [{ type: 'Released', reservationId: 'r9' }], state: { onHand: 10, reserved: 0 } });
    const rows = await db.query<{ seq: number; type: string }>("SELECT seq, type FROM ppos_events WHERE actor_id = 'stale-1' ORDER BY seq");
    expect(rows.rows).toEqual([
      { seq: 1, type: 'Received' },
      { seq: 2, type: 'Reserved' },
      { seq: 3, type: 'Released' },
    ]);
  });
});
