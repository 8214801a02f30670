// The eventual side's cost and freshness (CONTRACT.md section 8): the 1000-actor workload at 64
// and 256 outstanding, once against a node running the projections and the export (the
// default) and once against one started with --followers none, alternately, each on a
// database of its own (so neither inherits the other's backlog). While the node with followers
// runs, each follower's lag is sampled every 100 ms straight from PostgreSQL.
import { DEFAULT_LAG_BUDGETS } from '../persistence/projections/index.js';
import { FEED_START, lagBehind } from '../persistence/journal-feed.js';
import { ProjectionStore } from '../persistence/projection-store.js';
import { projectionReports } from '../runtime/projection-status.js';
import { actorIds, measureMix, SUBJECT_PREFIX, type BenchContext } from './context.js';
import type { LoadResult } from './load.js';
import { createDatabase, startNode, type BenchDatabase } from './services.js';
import { stock } from './throughput.js';

export interface LagFigures {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly samples: number;
}

export interface EventualRow {
  readonly outstanding: number;
  /** The same workload, alternately: off, on, off, on, ... (after a warm-up round of each). */
  readonly off: readonly LoadResult[];
  readonly on: readonly LoadResult[];
  /** By follower name, over the measurement windows of `on`. */
  readonly lag: Readonly<Record<string, LagFigures>>;
}

export interface EventualResult {
  readonly rows: readonly EventualRow[];
  readonly budgets: Readonly<Record<string, number>>;
}

/** Measured rounds per setup and level, after one unmeasured round (a fresh database's first minutes run slower). */
const ROUNDS = 3;
const SAMPLE_EVERY_MS = 100;

function figures(values: number[]): LagFigures {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0, samples: sorted.length };
}

export async function eventualSection(ctx: BenchContext): Promise<EventualResult> {
  const actors = actorIds('SKU', ctx.settings.actors);
  const setups: { name: 'on' | 'off'; db: BenchDatabase; args: string[] }[] = [
    { name: 'off', db: await createDatabase(ctx.cleanup), args: ['--followers', 'none'] },
    { name: 'on', db: await createDatabase(ctx.cleanup), args: [] },
  ];
  // Stocked once per database, each by its own node.
  for (const setup of setups) {
    const node = await startNode(ctx.cleanup, ctx.nats.url, setup.db.url, `bench-eventual-${setup.name}-${ctx.runTag}`, setup.args);
    try {
      ctx.progress(`eventual: stocking ${actors.length} actors with followers ${setup.name}`);
      await stock(ctx, SUBJECT_PREFIX, `${ctx.runTag}-ev-${setup.name}-stock`, actors);
    } finally {
      await node.stop();
    }
  }
  const rows: EventualRow[] = [];
  for (const outstanding of [64, 256]) {
    const off: LoadResult[] = [];
    const on: LoadResult[] = [];
    const lagValues = new Map<string, number[]>();
    for (let round = -1; round < ROUNDS; round += 1) {
      for (const setup of setups) {
        const node = await startNode(ctx.cleanup, ctx.nats.url, setup.db.url, `bench-eventual-${setup.name}-${ctx.runTag}`, setup.args);
        try {
          ctx.progress(`eventual: followers ${setup.name}, ${ctx.settings.actors} actors, ${outstanding} outstanding (${round < 0 ? 'warm-up' : `round ${round + 1}`})`);
          await ctx.settle();
          const windowStart = performance.now() + ctx.settings.warmupMs;
          let sampling = true;
          const sampler = (async () => {
            while (sampling) {
              const at = performance.now();
              if (setup.name === 'on' && round >= 0 && at >= windowStart) {
                // Only the age is reported: counting the events waiting would load PostgreSQL
                // ten times a second in the "on" windows alone, and tilt the comparison.
                for (const report of await projectionReports(setup.db.pool, 1)) {
                  const values = lagValues.get(report.name) ?? [];
                  values.push(report.lagMs);
                  lagValues.set(report.name, values);
                }
              } else if (setup.name === 'off' && at >= windowStart) {
                // The same queries against the database without followers, so that measuring
                // the lag loads PostgreSQL alike in both setups (the answers are not used).
                await new ProjectionStore(setup.db.pool).rows();
                for (let follower = 0; follower < DEFAULT_LAG_BUDGETS.size; follower += 1) await lagBehind(setup.db.pool, FEED_START, 1);
              }
              await new Promise((resolve) => setTimeout(resolve, Math.max(0, SAMPLE_EVERY_MS - (performance.now() - at))));
            }
          })();
          const result = await measureMix(ctx, { actors, outstanding, tag: `${ctx.runTag}-ev-${setup.name}-${outstanding}-${round}` }, node.node.pid, ctx.settings.clientsFor(Math.min(outstanding, 64)));
          sampling = false;
          await sampler;
          if (round >= 0) (setup.name === 'on' ? on : off).push(result);
        } finally {
          await node.stop();
        }
      }
    }
    rows.push({ outstanding, off, on, lag: Object.fromEntries([...lagValues].map(([name, values]) => [name, figures(values)])) });
  }
  return { rows, budgets: Object.fromEntries(DEFAULT_LAG_BUDGETS) };
}
