// Actors whose cost must not grow with their history (CONTRACT.md 4.8), measured from outside:
// one hot SKU whose open reservations pile up (Reserve only, new ids), throughput and reply
// size in the same window size at 0, 20k and 100k open; then the same actor's journal grown to
// 1M events with Reserve/Consume pairs (mostly consumed reservations), and what that costs:
// snapshot bytes against journal bytes, activation after a SIGKILL, and the node's memory.
// In a database of its own, so table sizes are this actor's alone.
import { connect } from '@nats-io/transport-node';
import type { BenchContext } from './context.js';
import { SUBJECT_PREFIX } from './context.js';
import { Histogram } from './histogram.js';
import type { GrowJob, JobResult } from './load.js';
import { memoryMiB } from './proc.js';
import { createDatabase, startNode } from './services.js';

const ACTOR = 'HOT-GROW';
const WARMUP = 'HOT-WARMUP';

export interface GrowthWindow {
  /** Open reservations when the window began. */
  readonly openAtStart: number;
  readonly commands: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly maxReplyBytes: number;
  readonly meanReplyBytes: number;
}

export interface HistoryResult {
  readonly windows: GrowthWindow[];
  /** Largest reply of the whole growing run, the fillers between windows included. */
  readonly maxReplyBytes: number;
  readonly events: number;
  readonly openAtEnd: number;
  readonly journalBytes: number;
  readonly snapshotBytes: number;
  readonly snapshots: number;
  /** SIGKILL, restart with the same node id, then the first Get: activation from the last snapshot plus its tail. */
  readonly activation: { readonly firstGetMs: number; readonly activationMs: number; readonly eventsReplayed: number; readonly snapshotSeq: number };
  readonly rss: { readonly idleMiB: number; readonly activeMiB: number };
  readonly fillRate: number;
}

interface Sizes {
  readonly windowCommands: number;
  readonly measureAt: readonly number[];
  readonly events: number;
}

// 15,000 commands (about 4 s) per window: with 5,000 (about 1.5 s) one stall of the shared
// machine (a checkpoint, an autovacuum after the filler's inserts) moved a row by up to 25 %.
const FULL_SIZES: Sizes = { windowCommands: 15_000, measureAt: [0, 20_000, 100_000], events: 1_000_000 };
const QUICK_SIZES: Sizes = { windowCommands: 3_000, measureAt: [0, 20_000], events: 150_000 };

function percentile(result: JobResult, q: number): number {
  const histogram = new Histogram();
  histogram.merge(result.histogram);
  return histogram.quantile(q);
}

export async function historySection(ctx: BenchContext): Promise<HistoryResult> {
  const sizes = ctx.settings.name === 'quick' ? QUICK_SIZES : FULL_SIZES;
  const db = await createDatabase(ctx.cleanup);
  const nodeId = `bench-history-${ctx.runTag}`;
  let node = await startNode(ctx.cleanup, ctx.nats.url, db.url, nodeId);
  const grow = (job: Omit<GrowJob, 'subjectPrefix' | 'actor' | 'timeoutMs'>): Promise<JobResult> =>
    ctx.load.grow({ subjectPrefix: SUBJECT_PREFIX, actor: ACTOR, timeoutMs: 30_000, ...job });
  const notEmpty = (result: JobResult, what: string): void => {
    if (Object.keys(result.errors).length > 0) throw new Error(`${what}: ${JSON.stringify(result.errors)}`);
  };
  try {
    await ctx.load.once({ subjectPrefix: SUBJECT_PREFIX, actors: [ACTOR, WARMUP], command: 'Receive', payload: { qty: 1_000_000_000 }, outstanding: 2, timeoutMs: 10_000, attempts: 10, tag: `${ctx.runTag}-grow-stock` });
    // The same workload on another actor first, so the first window does not pay for a cold node.
    await ctx.load.grow({ subjectPrefix: SUBJECT_PREFIX, actor: WARMUP, timeoutMs: 30_000, commands: sizes.windowCommands, outstanding: 64, pattern: 'reserve', tag: `${ctx.runTag}-warm` });
    const windows: GrowthWindow[] = [];
    let open = 0;
    let maxReplyBytes = 0;
    for (const [index, target] of sizes.measureAt.entries()) {
      if (target > open) {
        ctx.progress(`history: filling to ${target.toLocaleString('en-US')} open reservations`);
        const filler = await grow({ commands: target - open, outstanding: 64, pattern: 'reserve', tag: `${ctx.runTag}-fill${index}` });
        notEmpty(filler, 'filling');
        maxReplyBytes = Math.max(maxReplyBytes, filler.replyBytes?.max ?? 0);
        open = target;
      }
      ctx.progress(`history: Reserve only at ${open.toLocaleString('en-US')} open`);
      // The database is minutes old and grew by thousands of rows a second: autovacuum (one
      // look a minute) may not have analyzed it yet, and on statistics that still say "empty"
      // the planner reads the dedupe and event tables whole. A journal in service has them.
      await db.pool.query('ANALYZE');
      await ctx.settle();
      const window = await grow({ commands: sizes.windowCommands, outstanding: 64, pattern: 'reserve', tag: `${ctx.runTag}-w${index}` });
      notEmpty(window, 'measuring');
      maxReplyBytes = Math.max(maxReplyBytes, window.replyBytes?.max ?? 0);
      windows.push({
        openAtStart: open,
        commands: window.ok,
        perSecond: window.ok / window.seconds,
        p50: percentile(window, 0.5),
        p99: percentile(window, 0.99),
        maxReplyBytes: window.replyBytes?.max ?? 0,
        meanReplyBytes: (window.replyBytes?.total ?? 0) / Math.max(1, window.replyBytes?.count ?? 1),
      });
      open += sizes.windowCommands;
    }

    // The long history: Reserve/Consume pairs on new ids up to the event count.
    const eventsSoFar = 1 + open;
    const pairs = Math.max(0, sizes.events - eventsSoFar);
    ctx.progress(`history: ${pairs.toLocaleString('en-US')} Reserve/Consume events (a long history of consumed reservations)`);
    const fill = await grow({ commands: pairs, outstanding: 256, pattern: 'reserve-consume', tag: `${ctx.runTag}-long` });
    notEmpty(fill, 'the long history');
    const head = Number((await db.pool.query(`SELECT max(seq) AS n FROM ppos_events WHERE actor_id = '${ACTOR}'`)).rows[0].n);
    const sizeOf = async (table: string): Promise<number> => Number((await db.pool.query(`SELECT pg_total_relation_size($1) AS n`, [table])).rows[0].n);
    const journalBytes = (await sizeOf('ppos_events')) + (await sizeOf('ppos_dedupe')) + (await sizeOf('ppos_event_facts'));
    const snapshots = await db.pool.query<{ n: string; bytes: string }>(`SELECT count(*) AS n, coalesce(sum(pg_column_size(state)), 0) AS bytes FROM ppos_snapshots WHERE actor_id = '${ACTOR}'`);

    ctx.progress('history: SIGKILL, restart with the same node id, activate the actor');
    await node.crash();
    node = await startNode(ctx.cleanup, ctx.nats.url, db.url, nodeId);
    await ctx.settle();
    const idle = memoryMiB(node.node.pid);
    const nc = await connect({ servers: ctx.nats.url, name: 'ppos-bench-history' });
    let activation: HistoryResult['activation'];
    try {
      const sent = performance.now();
      const got = (await nc.request(`${SUBJECT_PREFIX}.${ACTOR}`, '{"id":"history-get","type":"Get"}', { timeout: 120_000 })).json<{ ok: boolean; seq: number }>();
      const firstGetMs = performance.now() - sent;
      if (!got.ok || got.seq !== head) throw new Error(`the reactivated actor is at seq ${got.seq}, its journal at ${head}`);
      const stats = (await nc.request('ppos.nodes.stats', '', { timeout: 10_000 })).json<{ activationMs: number; eventsReplayed: number }>();
      const inspected = (await nc.request(`ppos.inspect.inventory.${ACTOR}`, '', { timeout: 10_000 })).json<{ snapshotSeq: number }>();
      activation = { firstGetMs, activationMs: stats.activationMs, eventsReplayed: stats.eventsReplayed, snapshotSeq: inspected.snapshotSeq };
    } finally {
      await nc.close();
    }
    const active = memoryMiB(node.node.pid);
    return {
      windows,
      maxReplyBytes,
      events: head,
      openAtEnd: open,
      journalBytes,
      snapshotBytes: Number(snapshots.rows[0]!.bytes),
      snapshots: Number(snapshots.rows[0]!.n),
      activation,
      rss: { idleMiB: idle.rss, activeMiB: active.rss },
      fillRate: fill.ok / fill.seconds,
    };
  } finally {
    await node.stop();
  }
}
