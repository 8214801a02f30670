// Durable timers, measured: a node's start-up time and memory with a million pending timers
// against none (side by side, alternately, each on its own database), and the rate timers fire
// (holds expiring, each a journaled HoldExpired) beside the rate of the commands that set them.
import { PposClient } from '../src/client.js';
import { actorIds, type BenchContext } from './context.js';
import { memoryMiB } from './proc.js';
import { createDatabase, startNode } from './services.js';

export interface TimersResult {
  readonly pending: number;
  /** Node start to ready, ms, each round. */
  readonly startMs: { readonly none: readonly number[]; readonly full: readonly number[] };
  readonly rssMiB: { readonly none: number; readonly full: number };
  /** Holds set (Reserve with holdMs) per second, by 64 concurrent clients. */
  readonly setPerSecond: number;
  readonly holds: number;
  /** Holds that all fell due at one moment, expired (journaled) per second after it. */
  readonly firedPerSecond: number;
  /** From the common deadline to the last expiry. */
  readonly drainMs: number;
}

const ACTORS = 1_000;
const CONCURRENCY = 64;

async function inParallel<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

export async function timersSection(ctx: BenchContext): Promise<TimersResult> {
  const pending = ctx.settings.name === 'quick' ? 100_000 : 1_000_000;
  const none = await createDatabase(ctx.cleanup);
  const full = await createDatabase(ctx.cleanup);
  // Migrated by a first start of each.
  for (const db of [none, full]) await (await startNode(ctx.cleanup, ctx.nats.url, db.url, `bench-timers-migrate-${ctx.runTag}`)).stop();
  ctx.progress(`timers: writing ${pending.toLocaleString('en-US')} pending timers (due in a day)`);
  await full.pool.query(
    `INSERT INTO ppos_timers (kind, actor_id, key, shard, set_seq, due_at, command)
     SELECT 'inventory', 'TIMER-' || (i % 10000), 'r-' || i, i % 256, i, now() + interval '1 day' + make_interval(secs => i % 3600), '{"type":"ExpireHold","payload":{}}'::jsonb
     FROM generate_series(1, $1::int) AS i`,
    [pending],
  );
  await full.pool.query('ANALYZE ppos_timers');

  const startMs = { none: [] as number[], full: [] as number[] };
  const rssMiB = { none: 0, full: 0 };
  for (let round = 0; round < 2; round += 1) {
    for (const [name, db] of [['none', none], ['full', full]] as const) {
      await ctx.settle();
      const began = performance.now();
      const node = await startNode(ctx.cleanup, ctx.nats.url, db.url, `bench-timers-${name}-${ctx.runTag}`);
      startMs[name].push(performance.now() - began);
      // A few timer polls later: what the node holds with them pending.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      rssMiB[name] = memoryMiB(node.node.pid).rss;
      await node.stop();
    }
  }

  // Firing: holds that all fall due at one moment, on the database with a million pending.
  const holds = ctx.settings.name === 'quick' ? 3_000 : 20_000;
  const node = await startNode(ctx.cleanup, ctx.nats.url, full.url, `bench-timers-fire-${ctx.runTag}`, ['--followers', 'none']);
  const client = await PposClient.connect(ctx.nats.url, 'ppos-bench-timers');
  try {
    const skus = actorIds('HOLD', ACTORS);
    await inParallel(skus, CONCURRENCY, async (sku) => void (await client.sendWithRetry('inventory', sku, 'Receive', { qty: 1_000_000 })));
    ctx.progress(`timers: setting ${holds.toLocaleString('en-US')} holds that fall due together`);
    // Far enough ahead for every hold to be set first (measured below).
    const deadline = Date.now() + 60_000;
    const setBegan = performance.now();
    const indexes = Array.from({ length: holds }, (_, i) => i);
    await inParallel(indexes, CONCURRENCY, async (i) => {
      const reply = await client.sendWithRetry('inventory', skus[i % ACTORS]!, 'Reserve', { reservationId: `h-${ctx.runTag}-${i}`, qty: 1, holdMs: deadline - Date.now() });
      if (!reply.ok) throw new Error(`timers: a Reserve failed: ${JSON.stringify(reply)}`);
    });
    const setPerSecond = holds / ((performance.now() - setBegan) / 1_000);
    ctx.progress(`timers: holds set at ${Math.round(setPerSecond)}/s; waiting for the deadline`);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())));
    const expired = async (): Promise<{ n: number; lastMs: number | null }> => {
      const row = (
        await full.pool.query("SELECT count(*)::int AS n, (extract(epoch FROM max(recorded_at)) * 1000)::float8 AS last_ms FROM ppos_events WHERE type = 'HoldExpired'")
      ).rows[0] as { n: number; last_ms: number | null };
      return { n: row.n, lastMs: row.last_ms };
    };
    let seen = await expired();
    const waitUntil = Date.now() + 300_000;
    while (seen.n < holds && Date.now() < waitUntil) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      seen = await expired();
    }
    if (seen.n < holds) throw new Error(`timers: only ${seen.n} of ${holds} holds expired within 5 minutes of their deadline`);
    const drainMs = Math.max(1, (seen.lastMs ?? deadline) - deadline);
    return { pending, startMs, rssMiB, setPerSecond, holds, firedPerSecond: holds / (drainMs / 1_000), drainMs };
  } finally {
    await client.close();
    await node.stop();
  }
}
