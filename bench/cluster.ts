// Throughput of 1, 2 and 3 `ppos start` nodes sharing one NATS and one PostgreSQL, on this
// one machine. Each cluster size gets a fresh database, so no run inherits another's leases,
// journal or warm actors; the load is the same 1000-actor Reserve/Release mix, sent to the
// queue group, so about (n-1)/n of the requests take the one forwarding hop to their owner.
import type pg from 'pg';
import { actorIds, measureMix, SUBJECT_PREFIX, type BenchContext } from './context.js';
import type { LoadResult } from './load.js';
import { createDatabase, startNode, type NodeHandle } from './services.js';
import { stock } from './throughput.js';

export interface ClusterRow {
  readonly nodes: number;
  readonly outstanding: number;
  readonly result: LoadResult;
}

/** Shards per cluster: the default, as a user would run it. */
const SHARDS = 256;

async function settledOwners(pool: pg.Pool, nodes: number): Promise<void> {
  const deadline = performance.now() + 60_000;
  let last = '';
  while (performance.now() < deadline) {
    const rows = (
      await pool.query<{ owner: string; n: string }>(
        'SELECT owner, count(*) AS n FROM ppos_shard_leases WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner',
      )
    ).rows;
    const held = rows.reduce((sum, r) => sum + Number(r.n), 0);
    last = rows.map((r) => `${r.owner}:${r.n}`).join(' ');
    if (rows.length === nodes && held === SHARDS) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${nodes} nodes did not settle their shards within 60 s (held: ${last})`);
}

export async function clusterSection(ctx: BenchContext): Promise<ClusterRow[]> {
  const rows: ClusterRow[] = [];
  const actors = actorIds('SKU', ctx.settings.actors);
  for (const count of [1, 2, 3]) {
    ctx.progress(`cluster: ${count} node(s), fresh database`);
    const db = await createDatabase(ctx.cleanup);
    const nodes: NodeHandle[] = [];
    try {
      for (let i = 0; i < count; i += 1) {
        nodes.push(await startNode(ctx.cleanup, ctx.nats.url, db.url, `bench-c${count}-${i}-${ctx.runTag}`, ['--shards', String(SHARDS)]));
      }
      await settledOwners(db.pool, count);
      await stock(ctx, SUBJECT_PREFIX, `${ctx.runTag}-c${count}-stock`, actors);
      for (const outstanding of [64, 256]) {
        ctx.progress(`cluster: ${count} node(s), ${ctx.settings.actors} actors, ${outstanding} outstanding`);
        await ctx.settle();
        // No one server process: the machine's CPU is the figure that matters here.
        const result = await measureMix(ctx, { actors, outstanding, tag: `${ctx.runTag}-c${count}-${outstanding}` }, undefined, ctx.settings.clientsFor(outstanding));
        rows.push({ nodes: count, outstanding, result });
      }
    } finally {
      for (const node of nodes.reverse()) await node.stop();
    }
  }
  return rows;
}
