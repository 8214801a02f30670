// The stock projection's batch fold against a plain model of an inventory: random valid event
// histories for a few SKUs (receipts, reservations opened and closed, ids reused, cycle counts)
// applied in random batch splits must give exactly the model's rows, whatever the split.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FedEvent } from '../../persistence/journal-feed.js';
import { migrate } from '../../persistence/migrations.js';
import { stockProjection } from '../../persistence/projections/stock.js';
import { Random } from '../../src/random.js';
import { createTestDatabase, type TestDatabase } from '../helpers/services.js';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
  await migrate(pool);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

interface Model {
  onHand: number;
  open: Map<string, number>;
}

/** A valid history: every event is one the inventory actor could journal in that state. */
function history(random: Random, skus: readonly string[], length: number): { events: FedEvent[]; models: Map<string, Model> } {
  const models = new Map(skus.map((sku) => [sku, { onHand: 0, open: new Map<string, number>() } as Model]));
  const seqs = new Map(skus.map((sku) => [sku, 0]));
  const events: FedEvent[] = [];
  for (let i = 0; i < length; i += 1) {
    const sku = random.pick(skus);
    const m = models.get(sku)!;
    const reserved = [...m.open.values()].reduce((a, b) => a + b, 0);
    const roll = random.next();
    let event: Record<string, unknown> & { type: string };
    if (roll < 0.2) {
      const qty = random.int(1, 20);
      m.onHand += qty;
      event = { type: 'Received', qty };
    } else if (roll < 0.5 && m.onHand - reserved > 0) {
      // Few distinct ids, so ids are reused after they close.
      const id = `r${random.int(0, 6)}`;
      if (m.open.has(id)) continue;
      const qty = random.int(1, m.onHand - reserved);
      m.open.set(id, qty);
      event = { type: 'Reserved', reservationId: id, qty };
    } else if (roll < 0.85 && m.open.size > 0) {
      const id = random.pick([...m.open.keys()]);
      const qty = m.open.get(id)!;
      m.open.delete(id);
      // Closed by a consume, a release, or its hold expiring (which frees it as a release does).
      const closing = random.pick(['Consumed', 'Released', 'HoldExpired'] as const);
      if (closing === 'Consumed') m.onHand -= qty;
      event = { type: closing, reservationId: id };
    } else if (roll >= 0.85) {
      const onHand = reserved + random.int(0, 30);
      m.onHand = onHand;
      event = { type: 'Adjusted', onHand };
    } else continue;
    const seq = seqs.get(sku)! + 1;
    seqs.set(sku, seq);
    events.push({
      tx: '1',
      position: events.length + 1,
      kind: 'inventory',
      id: sku,
      seq,
      event,
      messageId: `m${events.length}`,
      correlationId: null,
      causationId: null,
      traceparent: null,
      recordedAt: new Date(),
    });
  }
  return { events, models };
}

describe('the stock projection', () => {
  it('equals the model for random histories in random batch splits', async () => {
    for (let round = 0; round < 150; round += 1) {
      const random = new Random(9_000 + round);
      const skus = ['a', 'b', 'c'].map((s) => `${s}${round}`);
      const { events, models } = history(random, skus, random.int(5, 120));
      let at = 0;
      while (at < events.length) {
        const size = random.int(1, 25);
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          await stockProjection.apply(events.slice(at, at + size), client, stockProjection.tables);
          await client.query('COMMIT');
        } finally {
          client.release();
        }
        at += size;
      }
      for (const sku of skus) {
        const m = models.get(sku)!;
        const touched = events.some((e) => e.id === sku);
        const rows = (await pool.query('SELECT on_hand, reserved, available, open_reservations FROM ppos_proj_stock WHERE id = $1', [sku])).rows;
        if (!touched) {
          expect(rows).toEqual([]);
          continue;
        }
        const reserved = [...m.open.values()].reduce((a, b) => a + b, 0);
        expect(
          rows.map((r) => [Number(r.on_hand), Number(r.reserved), Number(r.available), r.open_reservations]),
          `round ${round} ${sku}: ${JSON.stringify(events.filter((e) => e.id === sku).map((e) => e.event))}`,
        ).toEqual([[m.onHand, reserved, m.onHand - reserved, m.open.size]]);
        const side = (await pool.query('SELECT reservation_id, qty FROM ppos_proj_stock_reservations WHERE id = $1 ORDER BY reservation_id', [sku])).rows;
        expect(side.map((r) => [r.reservation_id, Number(r.qty)])).toEqual([...m.open].sort(([x], [y]) => x.localeCompare(y)));
      }
    }
  });
});
