// The journal over one database against the same journal over two (issue 18): the 1000-actor
// workload at 64 and 256 outstanding against a node given one database and against one given
// two, alternately (one, two, one, two, ...) after an unmeasured round of each, each setup on
// databases of its own. Both databases live in this machine's one PostgreSQL server: the figure
// says what spreading costs where it cannot buy anything (the same cores), not what separate
// servers would give; the report adds a paper estimate for those from baseline B.
import { actorIds, measureMix, SUBJECT_PREFIX, type BenchContext } from './context.js';
import type { LoadResult } from './load.js';
import { createDatabase, startNode } from './services.js';
import { stock } from './throughput.js';

export interface DatabasesRow {
  readonly outstanding: number;
  readonly one: readonly LoadResult[];
  readonly two: readonly LoadResult[];
}

export interface DatabasesResult {
  readonly rows: readonly DatabasesRow[];
}

const ROUNDS = 2;

export async function databasesSection(ctx: BenchContext): Promise<DatabasesResult> {
  const actors = actorIds('SKU', ctx.settings.actors);
  // The journal alone: the followers have their own section (eventual).
  const args = ['--followers', 'none'];
  const setups: { name: 'one' | 'two'; url: string }[] = [
    { name: 'one', url: (await createDatabase(ctx.cleanup)).url },
    { name: 'two', url: [(await createDatabase(ctx.cleanup)).url, (await createDatabase(ctx.cleanup)).url].join(',') },
  ];
  for (const setup of setups) {
    const node = await startNode(ctx.cleanup, ctx.nats.url, setup.url, `bench-databases-${setup.name}-${ctx.runTag}`, args);
    try {
      ctx.progress(`databases: stocking ${actors.length} actors on ${setup.name}`);
      await stock(ctx, SUBJECT_PREFIX, `${ctx.runTag}-db-${setup.name}-stock`, actors);
    } finally {
      await node.stop();
    }
  }
  const rows: DatabasesRow[] = [];
  for (const outstanding of [64, 256]) {
    const measured = { one: [] as LoadResult[], two: [] as LoadResult[] };
    for (let round = -1; round < ROUNDS; round += 1) {
      for (const setup of setups) {
        const node = await startNode(ctx.cleanup, ctx.nats.url, setup.url, `bench-databases-${setup.name}-${ctx.runTag}`, args);
        try {
          ctx.progress(`databases: ${setup.name}, ${outstanding} outstanding (${round < 0 ? 'warm-up' : `round ${round + 1}`})`);
          await ctx.settle();
          const result = await measureMix(ctx, { actors, outstanding, tag: `${ctx.runTag}-db-${setup.name}-${outstanding}-${round}` }, node.node.pid, ctx.settings.clientsFor(Math.min(outstanding, 64)));
          if (round >= 0) measured[setup.name].push(result);
        } finally {
          await node.stop();
        }
      }
    }
    rows.push({ outstanding, ...measured });
  }
  return { rows };
}
