// The cost of `--http` (Prometheus metrics on the hot path): the 1,000-actor workload against a
// node with the HTTP port and one without, alternately on one database (each first in every other round), the "on" node scraped
// every second as an impatient Prometheus would. The goal is ≤ 3 %.
import { actorIds, measureMix, SUBJECT_PREFIX, type BenchContext } from './context.js';
import { stock } from './throughput.js';
import type { LoadResult } from './load.js';
import { startNode } from './services.js';

export interface HttpCostResult {
  readonly outstanding: number;
  readonly off: readonly LoadResult[];
  readonly on: readonly LoadResult[];
  readonly scrapes: number;
}

const ROUNDS = 5;
const OUTSTANDING = 64;

export async function httpSection(ctx: BenchContext): Promise<HttpCostResult> {
  const actors = actorIds('HTTP', ctx.settings.actors);
  const port = 19_464;
  const setups = [
    { name: 'off' as const, args: ['--followers', 'none'] },
    { name: 'on' as const, args: ['--followers', 'none', '--http', `127.0.0.1:${port}`] },
  ];
  {
    const node = await startNode(ctx.cleanup, ctx.nats.url, ctx.db.url, `bench-http-stock-${ctx.runTag}`, ['--followers', 'none']);
    try {
      ctx.progress(`http: stocking ${actors.length} actors`);
      await stock(ctx, SUBJECT_PREFIX, `${ctx.runTag}-http-stock`, actors);
    } finally {
      await node.stop();
    }
  }
  const off: LoadResult[] = [];
  const on: LoadResult[] = [];
  let scrapes = 0;
  for (let round = -1; round < ROUNDS; round += 1) {
    // Each goes first in every other round: the later of two windows runs on a larger journal.
    for (const setup of round % 2 === 0 ? setups : [...setups].reverse()) {
      const node = await startNode(ctx.cleanup, ctx.nats.url, ctx.db.url, `bench-http-${setup.name}-${ctx.runTag}`, setup.args);
      try {
        ctx.progress(`http: metrics ${setup.name}, ${actors.length} actors, ${OUTSTANDING} outstanding (${round < 0 ? 'warm-up' : `round ${round + 1}`})`);
        await ctx.settle();
        let scraping = setup.name === 'on';
        const scraper = (async () => {
          while (scraping) {
            const page = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
            if (page.includes('ppos_commands_total')) scrapes += 1;
            await new Promise((resolve) => setTimeout(resolve, 1_000));
          }
        })();
        const result = await measureMix(ctx, { actors, outstanding: OUTSTANDING, tag: `${ctx.runTag}-http-${setup.name}-${round}` }, node.node.pid, ctx.settings.clientsFor(OUTSTANDING));
        scraping = false;
        await scraper;
        if (round >= 0) (setup.name === 'on' ? on : off).push(result);
      } finally {
        await node.stop();
      }
    }
  }
  return { outstanding: OUTSTANDING, off, on, scrapes };
}
