// Appends lock their shards' lease rows FOR SHARE (the fence) while the owner renews those
// leases with an UPDATE. Both must lock the rows in the same (shard) order: locked in whatever
// order a scan met them, an append and a renewal now and then waited for each other, and every
// commit stalled for PostgreSQL's deadlock timeout (1 s) before one was cancelled (seen in the
// bench's open-loop p99 and in the chaos suite's database log). This drives both at once, on
// many shards, and counts the deadlocks PostgreSQL itself detected in this database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgJournal } from '../../persistence/pg-journal.js';
import { LeaseStore, type GrantedLease } from '../../persistence/leases.js';
import { migrate } from '../../persistence/migrations.js';
import { shardOf } from '../../runtime/sharding.js';
import { createTestDatabase, type TestDatabase } from '../helpers/services.js';

const SHARDS = 64;
const NODE = 'lock-order-node';

let db: TestDatabase;
let journal: PgJournal;

beforeAll(async () => {
  db = await createTestDatabase();
  journal = new PgJournal({ connectionString: db.url, poolSize: 12, groupCommit: { maxInFlight: 8, maxBatch: 64, lingerMs: 0 } });
  await migrate(journal.pool);
});

afterAll(async () => {
  await journal?.close();
  await db?.drop();
});

describe('lease row locks', () => {
  it('appends on many shards and lease renewals running together never deadlock', async () => {
    const leases = new LeaseStore(journal.pool);
    await leases.ensureShards(SHARDS);
    const all = Array.from({ length: SHARDS }, (_, shard) => shard);
    await leases.register(NODE, 'lock-incarnation', 60_000);
    let held: GrantedLease[] = await leases.acquire(NODE, 'lock-incarnation', all, 60_000);
    expect(held).toHaveLength(SHARDS);
    const epochOf = new Map(held.map((l) => [l.shard, l.epoch]));

    const deadlocks = async (): Promise<number> =>
      Number((await journal.pool.query<{ n: string }>('SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()')).rows[0]!.n);
    const before = await deadlocks();

    let running = true;
    // Renewals in a tight loop, each over every shard, in a shuffled order.
    const renewer = (async () => {
      let renewals = 0;
      while (running) {
        const order = [...held].sort(() => Math.random() - 0.5);
        held = (await leases.renew(NODE, 'lock-incarnation', order, 60_000)).renewed;
        renewals += 1;
      }
      return renewals;
    })();
    // 200 actors, each appending one event after the other; their appends share commits.
    const actors = Array.from({ length: 200 }, (_, i) => ({ kind: 'inventory', id: `lock-${i}` }));
    let appended = 0;
    const started = Date.now();
    await Promise.all(
      actors.map(async (ref) => {
        const shard = shardOf(ref, SHARDS);
        for (let seq = 0; Date.now() - started < 3_000; seq += 1) {
          const result = await journal.append({
            ref,
            expectedSeq: seq,
            event: { type: 'Received', qty: 1 },
            messageId: `${ref.id}-${seq}`,
            fingerprint: 'f',
            reply: { ok: true, seq: seq + 1, events: [] },
            machineVersion: 1,
            recordedAt: new Date(),
            epoch: epochOf.get(shard)!,
            shard,
          });
          expect(result.status).toBe('committed');
          appended += 1;
        }
      }),
    );
    running = false;
    const renewals = await renewer;

    expect(renewals).toBeGreaterThan(20);
    expect(appended).toBeGreaterThan(1_000);
    expect(held).toHaveLength(SHARDS);
    expect((await deadlocks()) - before).toBe(0);
  }, 30_000);
});
