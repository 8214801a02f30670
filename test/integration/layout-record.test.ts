// The layout of a journal over several databases, as recorded in them (persistence/
// database-layout.ts), against real databases: what is refused, what a start that stopped half
// way leaves and how the next one finishes it, and two first starts at once with different lists.
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { checkLayout, recordLayout } from '../../persistence/database-layout.js';
import { migrate } from '../../persistence/migrations.js';
import { createTestDatabase, type TestDatabase } from '../helpers/services.js';

const SHARDS = 16;
const databases: TestDatabase[] = [];
const pools: pg.Pool[] = [];

/** `n` fresh, migrated databases: their pools. */
async function fresh(n: number): Promise<pg.Pool[]> {
  const made: pg.Pool[] = [];
  for (let i = 0; i < n; i += 1) {
    const db = await createTestDatabase();
    databases.push(db);
    const pool = new pg.Pool({ connectionString: db.url, max: 3 });
    pool.on('error', () => undefined);
    await migrate(pool);
    pools.push(pool);
    made.push(pool);
  }
  return made;
}

const layoutOf = async (pool: pg.Pool): Promise<string | undefined> =>
  (await pool.query<{ value: string }>("SELECT value FROM ppos_cluster WHERE key = 'layout'")).rows[0]?.value;


afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
  await Promise.all(databases.map((db) => db.drop()));
});

describe('the recorded layout', () => {
  it('is finished by the next start when a start stopped between its writes', async () => {
    const [a, b] = await fresh(2);
    await recordLayout([a!, b!], SHARDS);
    // As if the start had died after writing the first database's layout and before the second's
    // (a database's layout and shard count are written in one statement).
    await b!.query("DELETE FROM ppos_cluster WHERE key IN ('layout', 'shards')");
    expect(await checkLayout([a!, b!])).toBe(SHARDS);
    await recordLayout([a!, b!], SHARDS);
    expect(JSON.parse((await layoutOf(b!))!)).toMatchObject({ index: 1, databases: 2, shards: SHARDS });
  });

  it('refuses a fresh database in the first place, and a list in another order', async () => {
    const [a, b, f] = await fresh(3);
    await recordLayout([a!, b!], SHARDS);
    await expect(recordLayout([f!, b!], SHARDS)).rejects.toThrow(/database \d given/);
    await expect(checkLayout([f!, b!])).rejects.toThrow(/database \d given/);
    await expect(recordLayout([b!, a!], SHARDS)).rejects.toThrow(/database 1 given is database 2 of 2/);
    expect(await layoutOf(f!)).toBeUndefined();
  });

  it('lets one of two first starts with different lists record its list, and refuses the other', async () => {
    const [c, d] = await fresh(2);
    const outcomes = await Promise.allSettled([recordLayout([c!, d!], SHARDS), recordLayout([d!, c!], SHARDS)]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const won = outcomes[0]!.status === 'fulfilled' ? [c!, d!] : [d!, c!];
    expect(await checkLayout(won)).toBe(SHARDS);
    await expect(checkLayout([won[1]!, won[0]!])).rejects.toThrow(/database/);
  });

  it('takes a journal from before layouts as one database, and refuses it as the first of two', async () => {
    const [legacy, other] = await fresh(2);
    await legacy!.query("INSERT INTO ppos_cluster (key, value) VALUES ('shards', $1)", [String(SHARDS)]);
    await expect(recordLayout([legacy!, other!], SHARDS)).rejects.toThrow(/a journal of one database/);
    await recordLayout([legacy!], SHARDS);
    expect(await checkLayout([legacy!])).toBe(SHARDS);
    await expect(recordLayout([legacy!], 32)).rejects.toThrow(/--shards 16/);
  });
});
