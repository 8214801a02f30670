// The timer backlog a node reports on /metrics (ppos_timers_overdue): timers past their deadline
// on the shards asked about, counted per shard from the (shard, due_at) index and cut at a cap,
// so a scrape never counts a whole backlog. Against the real PostgreSQL journal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../persistence/migrations.js';
import { PgJournal } from '../../persistence/pg-journal.js';
import { createTestDatabase, type TestDatabase } from '../helpers/services.js';

let db: TestDatabase;
let journal: PgJournal;

beforeAll(async () => {
  db = await createTestDatabase();
  journal = new PgJournal({ connectionString: db.url, poolSize: 2 });
  await migrate(journal.pool);
});

afterAll(async () => {
  await journal?.close();
  await db?.drop();
});

const addTimer = (shard: number, key: string, dueInMs: number) =>
  db.query(
    `INSERT INTO ppos_timers (kind, actor_id, key, shard, set_seq, due_at, command)
     VALUES ('inventory', $1, $2, $3, 1, now() + make_interval(secs => $4::float8 / 1000), '{"type":"ExpireHold","payload":{}}')`,
    [`sku-${shard}`, key, shard, dueInMs],
  );

describe('the overdue timer count', () => {
  it('counts the timers past their deadline on the given shards only, up to the cap', async () => {
    for (let i = 0; i < 5; i += 1) await addTimer(3, `hold:a${i}`, -60_000 - i);
    for (let i = 0; i < 2; i += 1) await addTimer(7, `hold:b${i}`, -1_000);
    await addTimer(3, 'hold:later', 3_600_000);
    await addTimer(9, 'hold:elsewhere', -5_000);
    const now = Date.now();
    expect(await journal.overdueTimers([3], now, 100)).toBe(5);
    expect(await journal.overdueTimers([3, 7], now, 100)).toBe(7);
    expect(await journal.overdueTimers([3, 7, 9], now, 100)).toBe(8);
    expect(await journal.overdueTimers([3, 7], now, 4)).toBe(4);
    expect(await journal.overdueTimers([1, 2], now, 100)).toBe(0);
    expect(await journal.overdueTimers([], now, 100)).toBe(0);
    // An hour on, the later one is overdue too.
    expect(await journal.overdueTimers([3], now + 3_601_000, 100)).toBe(6);
  });
});
