// Durable commands per second and latency, ppos and baseline A over the same NATS path with
// the same load generator and the same workloads, plus bare NATS and baseline B.
import { actorIds, measureMix, SUBJECT_PREFIX, type BenchContext } from './context.js';
import type { LoadResult, MixJob } from './load.js';
import { runBaselineB, type BaselineBResult } from './baseline-b.js';
import { startNode, startResponder, type ResponderCounters } from './services.js';

/** Baseline A answers here, so it can run next to the ppos node (same server, same client, other subjects). */
const BASELINE_A_PREFIX = 'bench-a.cmd';

export interface Workload {
  readonly name: string;
  readonly actors: number;
  readonly outstanding: number;
}

export interface ThroughputRow {
  readonly workload: Workload;
  readonly result: LoadResult;
  /** Baseline A only: what its transactions went through. */
  readonly counters?: ResponderCounters;
}

export function workloads(ctx: BenchContext): Workload[] {
  return [
    ...ctx.settings.levels.map((outstanding) => ({ name: `${ctx.settings.actors} actors`, actors: ctx.settings.actors, outstanding })),
    { name: 'hot SKU', actors: 1, outstanding: ctx.settings.hotOutstanding },
  ];
}

const actorsOf = (workload: Workload): string[] => (workload.actors === 1 ? ['HOT-SKU'] : actorIds('SKU', workload.actors));

/** Receives a billion units on every actor, so no Reserve of the bench runs short. */
export async function stock(ctx: BenchContext, subjectPrefix: string, tag: string, actors: readonly string[]): Promise<void> {
  const result = await ctx.load.once({
    subjectPrefix,
    actors,
    command: 'Receive',
    payload: { qty: 1_000_000_000 },
    outstanding: 64,
    timeoutMs: 10_000,
    attempts: 10,
    tag,
  });
  if (result.ok !== actors.length) throw new Error(`pre-stocking: ${result.ok} of ${actors.length} ok: ${JSON.stringify(result.errors)}`);
}

interface System {
  readonly name: string;
  readonly subjectPrefix: string;
  readonly pid: number | undefined;
  readonly counters?: () => Promise<ResponderCounters>;
}

async function measure(ctx: BenchContext, system: System, workload: Workload, extra: Partial<MixJob> = {}): Promise<ThroughputRow> {
  ctx.progress(`${system.name}: ${workload.name}, ${extra.ratePerSecond ? `open loop at ${extra.ratePerSecond}/s` : `${workload.outstanding} outstanding`}`);
  await ctx.settle();
  await system.counters?.();
  const result = await measureMix(
    ctx,
    {
      subjectPrefix: system.subjectPrefix,
      actors: actorsOf(workload),
      outstanding: workload.outstanding,
      tag: `${ctx.runTag}-${system.name.replace(/\W/g, '')}-${workload.actors}-${workload.outstanding}${extra.ratePerSecond ? '-open' : ''}`,
      ...extra,
    },
    system.pid,
    ctx.settings.clientsFor(Math.min(workload.outstanding, 64)),
  );
  return { workload, result, ...(system.counters ? { counters: await system.counters() } : {}) };
}

export interface ComparisonResults {
  readonly ppos: ThroughputRow[];
  readonly baselineA: ThroughputRow[];
  /** Open loop at half the best closed-loop rate over many actors: the latency goal's setting. */
  readonly halfPeak: { readonly rate: number; readonly result: LoadResult } | undefined;
}

/**
 * ppos (a `ppos start` process, default settings) and baseline A (SERIALIZABLE transactions
 * on the stock row) both running, each on its own subjects, and measured alternately,
 * workload by workload: other load on the machine then hits both alike.
 */
export async function comparisonSection(ctx: BenchContext, which: { ppos: boolean; baselineA: boolean }): Promise<ComparisonResults> {
  const systems: System[] = [];
  const stops: (() => Promise<void>)[] = [];
  try {
    if (which.ppos) {
      const node = await startNode(ctx.cleanup, ctx.nats.url, ctx.db.url, `bench-ppos-${ctx.runTag}`);
      stops.push(() => node.stop());
      systems.push({ name: 'ppos', subjectPrefix: SUBJECT_PREFIX, pid: node.node.pid });
    }
    if (which.baselineA) {
      const responder = await startResponder(ctx.cleanup, 'serializable', ctx.nats.url, ctx.db.url, ctx.settings.baselineAPool, BASELINE_A_PREFIX);
      stops.push(() => responder.stop());
      systems.push({ name: 'baseline A', subjectPrefix: `${BASELINE_A_PREFIX}.inventory`, pid: responder.pid, counters: () => responder.stats() });
    }
    const actors = [...actorIds('SKU', ctx.settings.actors), 'HOT-SKU'];
    for (const system of systems) {
      ctx.progress(`${system.name}: receiving stock`);
      await stock(ctx, system.subjectPrefix, `${ctx.runTag}-${system.name.replace(/\W/g, '')}-stock`, actors);
    }
    const rows = new Map<string, ThroughputRow[]>(systems.map((system) => [system.name, []]));
    for (const workload of workloads(ctx)) {
      for (const system of systems) rows.get(system.name)!.push(await measure(ctx, system, workload));
    }
    let halfPeak: ComparisonResults['halfPeak'];
    const ppos = systems.find((system) => system.name === 'ppos');
    if (ppos) {
      const peak = Math.max(...rows.get('ppos')!.filter((r) => r.workload.actors > 1).map((r) => r.result.perSecond));
      const rate = Math.max(1, Math.round(peak / 2));
      const workload = { name: `${ctx.settings.actors} actors`, actors: ctx.settings.actors, outstanding: 1024 };
      halfPeak = { rate, result: (await measure(ctx, ppos, workload, { ratePerSecond: rate })).result };
    }
    return { ppos: rows.get('ppos') ?? [], baselineA: rows.get('baseline A') ?? [], halfPeak };
  } finally {
    for (const stop of stops) await stop();
  }
}

/** Bare NATS request/reply: what the transport and this load generator can do at all. */
export async function echoSection(ctx: BenchContext): Promise<ThroughputRow[]> {
  const responder = await startResponder(ctx.cleanup, 'echo', ctx.nats.url, ctx.db.url, 1, 'ppos.cmd');
  try {
    const rows: ThroughputRow[] = [];
    for (const outstanding of [64, 256]) {
      const workload = { name: 'NATS echo', actors: ctx.settings.actors, outstanding };
      ctx.progress(`NATS echo: ${outstanding} outstanding`);
      await ctx.settle();
      const result = await measureMix(ctx, { actors: actorsOf(workload), outstanding, tag: `${ctx.runTag}-echo-${outstanding}` }, responder.pid, ctx.settings.clientsFor(outstanding));
      rows.push({ workload, result });
    }
    return rows;
  } finally {
    await responder.stop();
  }
}

export async function baselineBSection(ctx: BenchContext): Promise<BaselineBResult> {
  ctx.progress('baseline B: batched inserts of event + dedupe rows');
  await ctx.settle();
  return runBaselineB(ctx.db.pool, {
    actors: ctx.settings.actors,
    batchSize: 256,
    connections: 4,
    warmupMs: ctx.settings.warmupMs,
    measureMs: ctx.settings.measureMs,
    tag: `B${ctx.runTag}`,
  });
}
