// Recovery and memory: how long an actor with a long journal takes to come back (with and
// without snapshots), how soon a node with many actors answers again after SIGKILL, and
// how much memory a node holds for many active, then passivated, actors. Journals are
// written straight into the ppos tables with SQL (the shape migrations.ts defines), then
// read back by a real `ppos start` process.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { inventory } from '../actors/inventory.js';
import type { DomainEvent } from '../actors/kind.js';
import { initialState, replay } from '../actors/state.js';
import { snapshotOf } from '../runtime/recovery.js';
import { actorIds, SUBJECT_PREFIX, type BenchContext } from './context.js';
import type { LoadResult } from './load.js';
import { memoryMiB } from './proc.js';
import { startNode } from './services.js';

/** Event s of the synthetic history: stock first, then Reserve/Release pairs. */
function eventAt(s: number): DomainEvent {
  if (s === 1) return { type: 'Received', qty: 1_000_000 };
  if (s % 2 === 0) return { type: 'Reserved', reservationId: `r${s}`, qty: 1 };
  return { type: 'Released', reservationId: `r${s - 1}` };
}

// The same history as eventAt, for many actors at once, generated inside PostgreSQL.
const INSERT_HISTORIES = `
INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, machine_version, epoch, recorded_at)
SELECT 'inventory', a, s,
  CASE WHEN s = 1 THEN 'Received' WHEN s % 2 = 0 THEN 'Reserved' ELSE 'Released' END,
  CASE WHEN s = 1 THEN '{"qty": 1000000}'::jsonb
       WHEN s % 2 = 0 THEN jsonb_build_object('reservationId', 'r' || s, 'qty', 1)
       ELSE jsonb_build_object('reservationId', 'r' || (s - 1)) END,
  a || '-m-' || s, 1, 0, now()
FROM unnest($1::text[]) AS a, generate_series(1, $2::int) AS s`;

async function insertHistories(pool: pg.Pool, actors: readonly string[], events: number): Promise<void> {
  // In slices, so no single statement holds millions of rows in memory.
  const perStatement = Math.max(1, Math.floor(200_000 / events));
  for (let i = 0; i < actors.length; i += perStatement) {
    await pool.query(INSERT_HISTORIES, [actors.slice(i, i + perStatement), events]);
  }
}

/** The state right after event `seq` of that history: Reserve/Release pairs cancel out. */
function stateAfter(seq: number): ReturnType<typeof initialState> {
  const events = seq % 2 === 0 ? [eventAt(1), eventAt(seq)] : [eventAt(1)];
  return replay(inventory, initialState(inventory), events);
}

/** The snapshot ppos itself would have written after event `seq` (same state, same hash). */
async function insertSnapshot(pool: pg.Pool, actor: string, seq: number): Promise<void> {
  const snapshot = snapshotOf(inventory, stateAfter(seq), seq);
  await pool.query('INSERT INTO ppos_snapshots (kind, actor_id, seq, machine_version, state, hash) VALUES ($1, $2, $3, $4, $5, $6)', [
    'inventory',
    actor,
    seq,
    snapshot.machineVersion,
    JSON.stringify(snapshot.state),
    snapshot.hash,
  ]);
}

interface NodeStatsReply {
  activationMs: number;
  activations: number;
  eventsReplayed: number;
  activeActors: number;
}

async function nodeStats(nc: NatsConnection): Promise<NodeStatsReply> {
  const msg = await nc.request('ppos.nodes.stats', '', { timeout: 10_000 });
  return msg.json<NodeStatsReply>();
}

async function get(nc: NatsConnection, actor: string, timeoutMs = 120_000): Promise<{ ok: boolean; seq?: number }> {
  const msg = await nc.request(`${SUBJECT_PREFIX}.${actor}`, '{"id":"get","type":"Get"}', { timeout: timeoutMs });
  return msg.json<{ ok: boolean; seq?: number }>();
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
};

export interface ActivationRow {
  readonly events: number;
  readonly snapshot: boolean;
  /** Events replayed on top of the snapshot (or from event 1). */
  readonly replayed: number;
  /** The node's own activation time (load snapshot + read events + replay), median of the repeats. */
  readonly activationMs: number;
  /** Client-observed first Get (activation + NATS round trip), median. */
  readonly firstGetMs: number;
  /** Replaying the same events in-process with the same machine, no database: the XState share. */
  readonly pureReplayMs: number;
  readonly repeats: number;
}

export async function activationSection(ctx: BenchContext): Promise<ActivationRow[]> {
  const { pool } = ctx.db;
  const snapshotGap = 50; // the latest snapshot is this many events behind the head
  const plan: { events: number; snapshot: boolean; actors: string[] }[] = [];
  for (const events of ctx.settings.recoverySizes) {
    for (const snapshot of [false, true]) {
      plan.push({ events, snapshot, actors: actorIds(`REC-${events}-${snapshot ? 'S' : 'N'}`, ctx.settings.recoveryRepeats) });
    }
  }
  ctx.progress('recovery: writing journals');
  // Warm-up actors, one with a snapshot, so the first measured activation does not pay for JIT.
  const warm = actorIds('REC-WARM', 3);
  await insertHistories(pool, warm, 1_000);
  await insertSnapshot(pool, warm[2]!, 1_000 - snapshotGap);
  for (const item of plan) {
    await insertHistories(pool, item.actors, item.events);
    if (item.snapshot) for (const actor of item.actors) await insertSnapshot(pool, actor, item.events - snapshotGap);
  }
  await pool.query('ANALYZE ppos_events');
  await pool.query('ANALYZE ppos_snapshots');
  await pool.query('CHECKPOINT').catch(() => undefined);

  const node = await startNode(ctx.cleanup, ctx.nats.url, ctx.db.url, `bench-recovery-${ctx.runTag}`);
  const nc = await connect({ servers: ctx.nats.url, name: 'ppos-bench-recovery' });
  const rows: ActivationRow[] = [];
  try {
    for (const actor of warm) await get(nc, actor);
    for (const item of plan) {
      ctx.progress(`recovery: activating ${item.events}-event actors ${item.snapshot ? 'with' : 'without'} snapshots`);
      const activation: number[] = [];
      const firstGet: number[] = [];
      let replayed = 0;
      for (const actor of item.actors) {
        await ctx.settle();
        const before = await nodeStats(nc);
        const started = performance.now();
        const reply = await get(nc, actor);
        firstGet.push(performance.now() - started);
        const after = await nodeStats(nc);
        if (!reply.ok || reply.seq !== item.events) throw new Error(`activation of ${actor} answered ${JSON.stringify(reply)}`);
        activation.push(after.activationMs - before.activationMs);
        replayed = after.eventsReplayed - before.eventsReplayed;
      }
      const events = Array.from({ length: replayed }, (_, i) => eventAt(item.events - replayed + i + 1));
      const from = replayed === item.events ? initialState(inventory) : stateAfter(item.events - replayed);
      replay(inventory, from, events.slice(0, 10_000)); // warm-up, then timed
      await ctx.settle();
      const pureStarted = performance.now();
      replay(inventory, from, events);
      const pureReplayMs = performance.now() - pureStarted;
      rows.push({
        events: item.events,
        snapshot: item.snapshot,
        replayed,
        activationMs: median(activation),
        firstGetMs: median(firstGet),
        pureReplayMs,
        repeats: item.actors.length,
      });
    }
  } finally {
    await nc.drain().catch(() => undefined);
    await node.stop();
  }
  return rows;
}

export interface CrashResult {
  readonly actors: number;
  readonly eventsPerActor: number;
  /** Activation sweep of the first node: one Get to every actor. */
  readonly activationPerSecond: number;
  /** From spawning the replacement process to its "node started" log line. */
  readonly readyMs: number;
  /** From spawning the replacement to the first ok reply to a Reserve on one of the actors. */
  readonly firstReplyMs: number;
  /** From spawning the replacement until every actor has answered again. */
  readonly allAnsweredMs: number;
}

/** One `Get` to each actor (which activates it and journals nothing), 256 at a time. */
function getEach(ctx: BenchContext, actors: readonly string[], tag: string): Promise<LoadResult> {
  return ctx.load.once({ subjectPrefix: SUBJECT_PREFIX, actors, command: 'Get', outstanding: 256, timeoutMs: 30_000, attempts: 5, tag: `${ctx.runTag}-${tag}` });
}

export async function crashSection(ctx: BenchContext): Promise<CrashResult> {
  const actors = actorIds('CRASH', ctx.settings.crashActors);
  const eventsPerActor = 10;
  ctx.progress(`crash: writing ${actors.length} journals of ${eventsPerActor} events`);
  await insertHistories(ctx.db.pool, actors, eventsPerActor);
  await ctx.db.pool.query('ANALYZE ppos_events');

  const first = await startNode(ctx.cleanup, ctx.nats.url, ctx.db.url, `bench-crash-a-${ctx.runTag}`);
  ctx.progress(`crash: activating ${actors.length} actors, then SIGKILL`);
  const sweep = await getEach(ctx, actors, 'crash-get');
  if (sweep.ok !== actors.length) throw new Error(`crash: only ${sweep.ok} of ${actors.length} actors answered: ${JSON.stringify(sweep.errors)}`);
  await ctx.settle();
  await first.crash();

  const nc = await connect({ servers: ctx.nats.url, name: 'ppos-bench-crash' });
  try {
    const spawned = performance.now();
    let readyMs = 0;
    // A restart: the same node id, as a supervisor restarting `ppos start --node <id>` would
    // run it, so the node takes its own shard leases back at once. A node with another id
    // would first wait for those leases to expire (--lease-ms, 6 s by default).
    const replacement = startNode(ctx.cleanup, ctx.nats.url, ctx.db.url, `bench-crash-a-${ctx.runTag}`).then((handle) => {
      readyMs = performance.now() - spawned;
      return handle;
    });
    // Ask from the moment the process is spawned, as a client retrying would.
    const target = actors[Math.floor(actors.length / 2)]!;
    const body = JSON.stringify({ id: `${ctx.runTag}-after-crash`, type: 'Reserve', payload: { reservationId: `${ctx.runTag}-after-crash`, qty: 1 } });
    let firstReplyMs = 0;
    for (;;) {
      try {
        const msg = await nc.request(`${SUBJECT_PREFIX}.${target}`, body, { timeout: 1_000 });
        if (msg.json<{ ok: boolean }>().ok) {
          firstReplyMs = performance.now() - spawned;
          break;
        }
      } catch {
        // no responders yet: the node is still starting
      }
      if (performance.now() - spawned > 60_000) throw new Error('crash: the replacement node did not answer within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const second = await replacement;
    const again = await getEach(ctx, actors, 'crash-get2');
    const allAnsweredMs = performance.now() - spawned;
    if (again.ok !== actors.length) throw new Error(`crash: after restart only ${again.ok} of ${actors.length} answered`);
    await second.stop();
    return { actors: actors.length, eventsPerActor, activationPerSecond: sweep.perSecond, readyMs, firstReplyMs, allAnsweredMs };
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

export interface MemoryResult {
  readonly actors: number;
  readonly command: string;
  readonly idleRssMiB: number;
  readonly activeRssMiB: number;
  readonly activeActors: number;
  readonly activationPerSecond: number;
  readonly passivatedRssMiB: number;
  readonly passivatedPeakMiB: number;
  readonly passivatedActiveActors: number;
  readonly passivateAfterMs: number;
}

export async function memorySection(ctx: BenchContext): Promise<MemoryResult> {
  const actors = actorIds('MEM', ctx.settings.memoryActors);
  ctx.progress(`memory: writing ${actors.length} journals`);
  await insertHistories(ctx.db.pool, actors, 1);
  await ctx.db.pool.query('ANALYZE ppos_events');
  // A Get loads the actor (snapshot + events + replay) without journaling anything.
  const command = 'Get';
  const sweep = (tag: string) => getEach(ctx, actors, tag);
  const nc = await connect({ servers: ctx.nats.url, name: 'ppos-bench-memory' });
  try {
    // Node 1: passivation far away, so every actor is still in memory after the sweep.
    const active = await startNode(ctx.cleanup, ctx.nats.url, ctx.db.url, `bench-mem-a-${ctx.runTag}`, ['--passivate-after-ms', '86400000']);
    const idleRssMiB = memoryMiB(active.node.pid).rss;
    ctx.progress(`memory: one ${command} to each of ${actors.length} actors`);
    await ctx.settle();
    const activated = await sweep('mem-a');
    if (activated.ok !== actors.length) throw new Error(`memory: only ${activated.ok} of ${actors.length} answered: ${JSON.stringify(activated.errors)}`);
    const activeActors = (await nodeStats(nc)).activeActors;
    const activeRssMiB = memoryMiB(active.node.pid).rss;
    await active.stop();

    // Node 2: passivates after 1 s idle; the same sweep, then wait until nothing is active.
    const passivateAfterMs = 1_000;
    const passive = await startNode(ctx.cleanup, ctx.nats.url, ctx.db.url, `bench-mem-b-${ctx.runTag}`, ['--passivate-after-ms', String(passivateAfterMs)]);
    ctx.progress(`memory: the same sweep on a node passivating after ${passivateAfterMs} ms idle`);
    await sweep('mem-b');
    let remaining = (await nodeStats(nc)).activeActors;
    const deadline = performance.now() + 60_000;
    while (remaining > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      remaining = (await nodeStats(nc)).activeActors;
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const memory = memoryMiB(passive.node.pid);
    await passive.stop();
    return {
      actors: actors.length,
      command,
      idleRssMiB,
      activeRssMiB,
      activeActors,
      activationPerSecond: activated.perSecond,
      passivatedRssMiB: memory.rss,
      passivatedPeakMiB: memory.peak,
      passivatedActiveActors: remaining,
      passivateAfterMs,
    };
  } finally {
    await nc.drain().catch(() => undefined);
  }
}
