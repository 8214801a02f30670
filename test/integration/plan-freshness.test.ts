// The append statement runs on a generic plan, remade whenever a table it reads has doubled or
// halved in size (persistence/plan-freshness.ts); PostgreSQL itself remakes it when a table is
// analyzed, so autovacuum is off here, and the test sees what growth alone does. A connection's
// plan is read with EXPLAIN EXECUTE: it must be kept while sizes stay in their class (re-planning
// is what generic plans save), and be remade, as a fresh connection would make it, after growth.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../persistence/migrations.js';
import { PlanFreshness } from '../../persistence/plan-freshness.js';
import { createTestDatabase, type TestDatabase } from '../helpers/services.js';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 3, options: '-c plan_cache_mode=force_generic_plan' });
  await migrate(pool);
  await pool.query('ALTER TABLE ppos_dedupe SET (autovacuum_enabled = false)');
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

/**
 * A statement prepared by name on a connection (so its generic plan is cached there): the join
 * of a batch's rows with the dedupe table, as the append does it.
 */
const PROBE = `SELECT count(*) FROM json_to_recordset($1::json) AS i(k text, a text, m text)
  JOIN ppos_dedupe d ON d.kind = i.k AND d.actor_id = i.a AND d.message_id = i.m`;
const BATCH = JSON.stringify([{ k: 'inventory', a: 'sku-1', m: 'm-1' }]);

const run = (client: pg.PoolClient): Promise<pg.QueryResult> => client.query({ name: 'probe', text: PROBE, values: [BATCH] });

/** The plan the connection would run the statement with now (its cached one, if still valid). */
async function planOf(client: pg.PoolClient): Promise<string> {
  const result = await client.query(`EXPLAIN EXECUTE probe(${client.escapeLiteral(BATCH)})`);
  return result.rows.map((row) => row['QUERY PLAN'] as string).join('\n');
}

/** What a connection with nothing cached plans for the tables as they are. */
async function freshPlan(): Promise<string> {
  const client = await pool.connect();
  try {
    await client.query('DISCARD PLANS');
    await run(client);
    return await planOf(client);
  } finally {
    client.release();
  }
}

/** Far more than doubles the (empty) dedupe table. */
async function fillDedupe(rows: number): Promise<void> {
  await pool.query(
    `INSERT INTO ppos_dedupe (kind, actor_id, message_id, fingerprint, reply, seq, recorded_at)
     SELECT 'inventory', 'filler', 'm' || g, 'f', '{}', g, now() FROM generate_series(1, $1::int) AS g`,
    [rows],
  );
}

/**
 * An append's turn after the next look at the sizes (the look starts on one append and is seen by
 * the next): runs the statement and returns the plan the connection ran it with.
 */
async function planAfterNextLook(freshness: PlanFreshness, client: pg.PoolClient): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, 60)); // past the look interval (50 ms here)
  await freshness.prepare(client);
  await freshness.lastLook;
  await freshness.prepare(client);
  await run(client);
  return planOf(client);
}

describe('generic append plans, kept fresh', () => {
  it('keeps a connection\'s plan while the tables stay as they were, and plans again once one has doubled', async () => {
    const freshness = new PlanFreshness(pool, 50);
    const client = await pool.connect();
    try {
      await freshness.prepare(client); // new to it: nothing to drop; the first look at the sizes starts
      await freshness.lastLook;
      await freshness.prepare(client); // the first look's generation: the plan is made after it
      await run(client);
      const planned = await planOf(client);

      // A later look at unchanged tables keeps the plan (re-planning is what generic plans save).
      expect(await planAfterNextLook(freshness, client)).toBe(planned);

      // The dedupe table grows by far more than twice: a fresh connection now plans otherwise,
      // while this one still holds the plan made for an empty table...
      await fillDedupe(60_000);
      const now = await freshPlan();
      expect(now).not.toBe(planned);
      await run(client);
      expect(await planOf(client)).toBe(planned);
      // ...until its next append after a look at the sizes: then it plans as a fresh one does.
      expect(await planAfterNextLook(freshness, client)).toBe(now);
    } finally {
      client.release();
    }
  });
});
