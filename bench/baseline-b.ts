// Baseline B, the ceiling: the rows ppos must make durable for each command (one event row
// in ppos_events and its dedupe record in ppos_dedupe, same columns, same indexes, same
// triggers) inserted straight into PostgreSQL in batches, with no runtime, no NATS, no
// state machine. One statement per batch (both inserts), a few batches in flight.
import type pg from 'pg';
import { Histogram } from './histogram.js';
import { cpuPercent, readCpu } from './proc.js';
import { postgresPidsOf } from './services.js';

const INSERT_BATCH = `
WITH e AS (
  INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, machine_version, epoch, recorded_at)
  SELECT 'inventory', a, s, t, d, m, 1, 0, now()
  FROM unnest($1::text[], $2::bigint[], $3::text[], $4::jsonb[], $5::text[]) AS u(a, s, t, d, m)
)
INSERT INTO ppos_dedupe (kind, actor_id, message_id, fingerprint, reply, seq, recorded_at)
SELECT 'inventory', a, m, f, r, s, now()
FROM unnest($1::text[], $5::text[], $6::text[], $7::json[], $2::bigint[]) AS u(a, m, f, r, s)`;

export interface BaselineBOptions {
  readonly actors: number;
  readonly batchSize: number;
  readonly connections: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly tag: string;
}

export interface BaselineBResult {
  readonly rowsPerSecond: number;
  /** Commit latency of one batch. */
  readonly p50: number;
  readonly p99: number;
  readonly benchCpu: number;
  readonly postgresCpu: number;
  readonly machineCpu: number;
  readonly batchSize: number;
  readonly connections: number;
}

export async function runBaselineB(pool: pg.Pool, options: BaselineBOptions): Promise<BaselineBResult> {
  const seqs = new Int32Array(options.actors);
  const actorIds = Array.from({ length: options.actors }, (_, i) => `${options.tag}-${String(i).padStart(4, '0')}`);
  const histogram = new Histogram();
  let rows = 0;
  let measuring = false;
  let stopping = false;
  let messageSeq = 0;

  const batch = (): unknown[] => {
    const a: string[] = [];
    const s: number[] = [];
    const t: string[] = [];
    const d: string[] = [];
    const m: string[] = [];
    const f: string[] = [];
    const r: string[] = [];
    for (let i = 0; i < options.batchSize; i += 1) {
      const actor = Math.floor(Math.random() * options.actors);
      const seq = (seqs[actor] = (seqs[actor] ?? 0) + 1);
      const reservationId = `${options.tag}-r-${actor}-${seq >> 1}`;
      const reserve = seq % 2 === 1;
      const event = reserve ? { reservationId, qty: 1 } : { reservationId };
      const type = reserve ? 'Reserved' : 'Released';
      a.push(actorIds[actor]!);
      s.push(seq);
      t.push(type);
      d.push(JSON.stringify(event));
      m.push(`${options.tag}-m-${(messageSeq += 1)}`);
      f.push('0123456789abcdef0123456789abcdef');
      r.push(JSON.stringify({ ok: true, seq, events: [{ type, ...event }] }));
    }
    return [a, s, t, d, m, f, r];
  };

  const loop = async (): Promise<void> => {
    const client = await pool.connect();
    try {
      while (!stopping) {
        const values = batch();
        const started = performance.now();
        await client.query({ name: 'bench_b_insert', text: INSERT_BATCH, values });
        if (measuring) {
          histogram.record(performance.now() - started);
          rows += options.batchSize;
        }
      }
    } finally {
      client.release();
    }
  };

  let startCpu = readCpu(process.pid);
  let endCpu = startCpu;
  let windowStart = 0;
  let windowEnd = 0;
  const warm = setTimeout(() => {
    measuring = true;
    startCpu = readCpu(process.pid);
    windowStart = performance.now();
  }, options.warmupMs);
  const end = setTimeout(() => {
    measuring = false;
    stopping = true;
    endCpu = readCpu(process.pid);
    windowEnd = performance.now();
  }, options.warmupMs + options.measureMs);
  await Promise.all(Array.from({ length: options.connections }, () => loop()));
  clearTimeout(warm);
  clearTimeout(end);
  const cpu = cpuPercent(startCpu, endCpu, await postgresPidsOf(pool));
  return {
    rowsPerSecond: rows / Math.max(1e-3, (windowEnd - windowStart) / 1000),
    p50: histogram.quantile(0.5),
    p99: histogram.quantile(0.99),
    benchCpu: cpu.server,
    postgresCpu: cpu.postgres,
    machineCpu: cpu.machine,
    batchSize: options.batchSize,
    connections: options.connections,
  };
}
