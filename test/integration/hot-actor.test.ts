// A hot actor's commands that wait together are decided in order on the state the earlier ones
// produce and journaled in one commit: all or nothing, replies only after it lands.
import { describe, expect, it } from 'vitest';
import type { Reply } from '../../runtime/envelope.js';
import { useSuite } from '../helpers/suite.js';

const suite = useSuite();

const okSeq = (reply: Reply): number => {
  if (!reply.ok) throw new Error(JSON.stringify(reply));
  return reply.seq;
};

describe('a hot actor', () => {
  it('shares commits between concurrent commands, and each reply shows the state right after its own event', async () => {
    await suite.client.send('inventory', 'hot', 'Receive', { qty: 100 }, { messageId: 'stock' });
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => suite.client.send('inventory', 'hot', 'Reserve', { reservationId: `r${i}`, qty: 1 }, { messageId: `reserve-${i}` })),
    );
    // Exactly 100 units: 100 reservations held, 100 refused, nothing negative.
    const held = replies.filter((r) => r.ok);
    const refused = replies.filter((r) => !r.ok && r.error.reason === 'INSUFFICIENT_STOCK');
    expect({ held: held.length, refused: refused.length }).toEqual({ held: 100, refused: 100 });
    // Each successful reply is the state right after its own event: reserved = its seq - 1.
    for (const reply of held) {
      if (!reply.ok) continue;
      expect(reply.state.reserved).toBe(reply.seq - 1);
    }
    expect(new Set(held.map(okSeq)).size).toBe(100);
    // Several commands landed in one transaction (same xmin): commits were shared.
    const commits = await suite.db.query<{ n: number }>("SELECT count(*)::int AS n FROM ppos_events WHERE actor_id = 'hot' GROUP BY xmin::text ORDER BY n DESC LIMIT 1");
    expect(commits.rows[0]!.n).toBeGreaterThan(1);
    const seqs = await suite.db.query<{ seq: number }>("SELECT seq FROM ppos_events WHERE actor_id = 'hot' ORDER BY seq");
    expect(seqs.rows.map((r) => r.seq)).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
  });

  it('answers repeats the journal knew (after a restart) within a batch, applying nothing twice', async () => {
    await suite.client.send('inventory', 'hot2', 'Receive', { qty: 50 }, { messageId: 'h2-stock' });
    const first = await Promise.all(
      Array.from({ length: 20 }, (_, i) => suite.client.send('inventory', 'hot2', 'Reserve', { reservationId: `a${i}`, qty: 1 }, { messageId: `h2-${i}` })),
    );
    await suite.restartNode();
    // Old ids (known only to the journal now) interleaved with new ones, all at once.
    const mixed = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        i % 2 === 0
          ? suite.client.send('inventory', 'hot2', 'Reserve', { reservationId: `a${i / 2}`, qty: 1 }, { messageId: `h2-${i / 2}` })
          : suite.client.send('inventory', 'hot2', 'Reserve', { reservationId: `b${i}`, qty: 1 }, { messageId: `h2-new-${i}` }),
      ),
    );
    mixed.forEach((reply, i) => {
      if (i % 2 === 0) expect(reply).toEqual({ ...first[i / 2]!, duplicate: true });
      else expect(reply).toMatchObject({ ok: true, duplicate: false });
    });
    const count = await suite.db.query<{ n: number }>("SELECT count(*)::int AS n FROM ppos_events WHERE actor_id = 'hot2'");
    expect(count.rows[0]!.n).toBe(1 + 20 + 20);
  });

  it('answers a query in the middle of commands from committed state only', async () => {
    await suite.client.send('inventory', 'hot3', 'Receive', { qty: 10 }, { messageId: 'h3-stock' });
    const sends: Promise<Reply>[] = [];
    for (let i = 0; i < 30; i += 1) {
      sends.push(i % 10 === 5 ? suite.client.send('inventory', 'hot3', 'Get', undefined) : suite.client.send('inventory', 'hot3', 'Receive', { qty: 1 }, { messageId: `h3-${i}` }));
    }
    const replies = await Promise.all(sends);
    for (const reply of replies) {
      if (!reply.ok) throw new Error(JSON.stringify(reply));
      expect(reply.state.onHand).toBe(10 + reply.seq - 1);
    }
  });
});
