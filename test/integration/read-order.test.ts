// The journal's read order (persistence/journal-feed.ts): positions are taken at insert while
// several commits are in flight, so a row with a smaller position can commit after one with a
// larger. Here two transactions commit out of order on purpose: a reader that follows
// positions alone passes the late row for good; the feed waits for it and never skips it.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEED_START, readCommitted, readOrderProblem } from '../../persistence/journal-feed.js';
import { migrate } from '../../persistence/migrations.js';
import { startTestNode } from '../helpers/node.js';
import { waitFor } from '../helpers/wait.js';
import { createTestDatabase, type TestDatabase } from '../helpers/services.js';

// The node refuses before it connects to NATS: no server is needed at this address.
const TEST_NATS_UNUSED = 'nats://127.0.0.1:1';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  await migrate(pool);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const insertEvent = (client: pg.PoolClient, actor: string, seq: number): Promise<pg.QueryResult> =>
  client.query(
    `INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, machine_version, recorded_at)
     VALUES ('inventory', $1, $2, 'Received', '{"qty":1}', $3, 2, now()) RETURNING position`,
    [actor, seq, `m-${actor}-${seq}`],
  );

describe('reading committed events in order', () => {
  it('never skips an event whose transaction commits after one with a later position', async () => {
    const early = await pool.connect();
    const late = await pool.connect();
    try {
      await early.query('BEGIN');
      await late.query('BEGIN');
      // `early` takes the smaller position, `late` the larger; `late` commits first.
      const earlyPosition = Number((await insertEvent(early, 'sku-early', 1)).rows[0].position);
      const latePosition = Number((await insertEvent(late, 'sku-late', 1)).rows[0].position);
      expect(earlyPosition).toBeLessThan(latePosition);
      await late.query('COMMIT');

      // By position, the committed row at latePosition is visible now; a reader that takes it
      // and moves its checkpoint there would never look at earlyPosition again.
      const byPosition = await pool.query('SELECT position FROM ppos_events WHERE position > 0 ORDER BY position');
      expect(byPosition.rows.map((r) => Number(r.position))).toEqual([latePosition]);

      // The feed reads nothing yet: `early` is still running, and anything at or after it may still appear.
      expect(await readCommitted(pool, FEED_START, 100)).toEqual([]);

      await early.query('COMMIT');
      // The horizon is the whole server's: another test file's transaction may hold it a moment.
      const read = await waitFor('both events below the horizon', async () => {
        const events = await readCommitted(pool, FEED_START, 100);
        return events.length >= 2 ? events : undefined;
      });
      expect(read.map((e) => e.id)).toEqual(['sku-early', 'sku-late']);
      // And a reader at the first one's place goes on to the second: nothing between them is lost.
      const rest = await readCommitted(pool, read[0]!, 100);
      expect(rest.map((e) => e.position)).toEqual([latePosition]);
    } finally {
      early.release();
      late.release();
    }
  });

  it('a long-running transaction holds the reader back, and releases it when it ends', async () => {
    const holder = await pool.connect();
    try {
      // Everything committed so far, once no other transaction on the server holds it back.
      const committed = Number((await pool.query('SELECT count(*) AS n FROM ppos_events')).rows[0].n);
      const before = await waitFor('the earlier events below the horizon', async () => {
        const events = await readCommitted(pool, FEED_START, 1_000);
        return events.length === committed ? events : undefined;
      });
      await holder.query('BEGIN');
      await insertEvent(holder, 'sku-slow', 1);
      const other = await pool.connect();
      try {
        await insertEvent(other, 'sku-fast', 1);
      } finally {
        other.release();
      }
      expect((await readCommitted(pool, FEED_START, 1_000)).length).toBe(before.length);
      await holder.query('ROLLBACK');
      // The horizon is the whole server's (pg_snapshot_xmin): a transaction of another test file
      // running at this moment can hold it a little longer, never for good.
      const after = await waitFor('the reader released', async () => {
        const read = await readCommitted(pool, FEED_START, 1_000);
        return read.length > before.length ? read : undefined;
      });
      expect(after.map((e) => e.id).slice(before.length)).toEqual(['sku-fast']);
    } finally {
      holder.release();
    }
  });
});

describe('the read order is numeric in the transaction id', () => {
  it('reads every event once, in order, across transaction ids of different lengths, in batches of any size', async () => {
    // Transaction ids long finished (far below any live one), set by hand so that their
    // decimal texts sort differently from their numbers: '1000' < '999' as text.
    const txs = ['9', '10', '99', '100', '999', '1000'];
    // On a young cluster, spend transaction ids until these are all in the past.
    while (Number((await pool.query('SELECT pg_current_xact_id()::text AS xid')).rows[0].xid) <= 1_001) continue;
    for (const [i, tx] of txs.entries()) {
      await pool.query(
        `INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, machine_version, recorded_at, tx)
         VALUES ('inventory', 'sku-digits', $1, 'Received', '{"qty":1}', $2, 2, now(), $3::xid8)`,
        [i + 1, `m-digits-${i + 1}`, tx],
      );
    }
    const expected = (await pool.query('SELECT position FROM ppos_events ORDER BY tx, position')).rows.map((r) => Number(r.position));
    for (const batch of [1, 2, 3, 1_000]) {
      const read: number[] = [];
      let after = FEED_START;
      for (;;) {
        const events = await readCommitted(pool, after, batch);
        if (events.length === 0) break;
        read.push(...events.map((e) => e.position));
        after = events[events.length - 1]!;
      }
      expect(read, `batches of ${batch}`).toEqual(expected);
    }
    const digits = await readCommitted(pool, FEED_START, 1_000);
    expect(digits.filter((e) => e.id === 'sku-digits').map((e) => e.tx)).toEqual(txs);
  });
});

describe('a journal restored onto a server whose transaction ids are behind it', () => {
  it('is found before a node starts, and the node refuses with the cure named', async () => {
    const restored = await createTestDatabase();
    const restoredPool = new pg.Pool({ connectionString: restored.url, max: 2 });
    try {
      await migrate(restoredPool);
      expect(await readOrderProblem(restoredPool)).toBeNull();
      // As pg_restore leaves it: rows written by transactions far ahead of this server's counter.
      const next = BigInt((await restoredPool.query<{ next: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS next')).rows[0]!.next);
      await restoredPool.query(
        `INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, machine_version, recorded_at, tx)
         VALUES ('inventory', 'restored', 1, 'Received', '{"qty":1}', 'm-restored', 2, now(), $1::xid8)`,
        [String(next + (1n << 32n))],
      );
      expect(await readOrderProblem(restoredPool)).toMatch(/restored onto another server.*pg_resetwal --epoch/);
      await expect(startTestNode(TEST_NATS_UNUSED, restored.url)).rejects.toThrow(/refusing to start: the journal holds events written by transaction \d+/);
      // Nothing was written by the refused node.
      expect((await restoredPool.query('SELECT count(*)::int AS n FROM ppos_dedupe')).rows[0].n).toBe(0);
    } finally {
      await restoredPool.end();
      await restored.drop();
    }
  });
});
