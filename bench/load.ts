// The load generator, parent side: forks load-worker processes (so the client can use more
// than one core's event loop when it has to), splits the outstanding requests between them,
// and merges what they measured. CPU of the server under test is read at the edges of the
// measurement window, which the first worker announces.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Histogram, type HistogramData } from './histogram.js';
import { cpuPercent, readCpu, type CpuReading } from './proc.js';
import type { Cleanup } from './services.js';

export interface MixJob {
  readonly subjectPrefix: string;
  readonly actors: readonly string[];
  readonly outstanding: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly timeoutMs: number;
  /** Makes message and reservation ids unique within the database. */
  readonly tag: string;
  /**
   * Open loop: send at this many requests per second (across all processes) whatever the
   * replies do, up to `outstanding` in flight (beyond that a send is counted as SKIPPED).
   * Unset: closed loop with exactly `outstanding` requests in flight.
   */
  readonly ratePerSecond?: number;
}

export interface OnceJob {
  readonly subjectPrefix: string;
  readonly actors: readonly string[];
  readonly command: string;
  readonly payload?: unknown;
  readonly outstanding: number;
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly tag: string;
}

/**
 * A fixed number of commands on one actor with new reservation ids, `outstanding` at a time:
 * `reserve` opens one reservation per command (open reservations pile up, as on a popular SKU),
 * `reserve-consume` opens one and consumes it (a long history of consumed reservations).
 */
export interface GrowJob {
  readonly subjectPrefix: string;
  readonly actor: string;
  readonly commands: number;
  readonly outstanding: number;
  readonly pattern: 'reserve' | 'reserve-consume';
  readonly timeoutMs: number;
  readonly tag: string;
}

export interface JobResult {
  readonly ok: number;
  readonly errors: Record<string, number>;
  readonly histogram: HistogramData;
  readonly seconds: number;
  readonly cpuSeconds: number;
  /** Reply sizes seen, when the job measures them. */
  readonly replyBytes?: { readonly max: number; readonly total: number; readonly count: number };
}

export type WorkerRequest =
  | { type: 'connect'; natsUrl: string; index: number }
  | { type: 'mix'; job: MixJob }
  | { type: 'once'; job: OnceJob }
  | { type: 'grow'; job: GrowJob }
  | { type: 'exit' };

export type WorkerMessage =
  | { type: 'connected' }
  | { type: 'window'; phase: 'start' | 'end' }
  | { type: 'result'; result: JobResult }
  | { type: 'failed'; message: string };

export interface LoadResult {
  /** Successful (ok) replies per second inside the window. */
  readonly perSecond: number;
  readonly ok: number;
  readonly errors: Record<string, number>;
  readonly p50: number;
  readonly p99: number;
  readonly meanMs: number;
  readonly seconds: number;
  readonly clients: number;
  /** CPU of all client processes, % of one core. */
  readonly clientCpu: number;
  /** Busiest client process, % of one core: near 100 means the load generator is the limit. */
  readonly clientCpuMax: number;
  readonly serverCpu: number;
  readonly postgresCpu: number;
  readonly machineCpu: number;
}

const workerPath = path.join(path.dirname(fileURLToPath(import.meta.url)), 'load-worker.js');

class Worker {
  private readonly listeners = new Set<(message: WorkerMessage) => void>();

  constructor(readonly child: ChildProcess) {
    child.on('message', (message: WorkerMessage) => {
      for (const listener of [...this.listeners]) listener(message);
    });
  }

  request(message: WorkerRequest, onWindow?: (phase: 'start' | 'end') => void): Promise<WorkerMessage> {
    return new Promise((resolve, reject) => {
      const onExit = (): void => reject(new Error('a load-generator process exited unexpectedly'));
      const listener = (reply: WorkerMessage): void => {
        if (reply.type === 'window') {
          onWindow?.(reply.phase);
          return;
        }
        this.listeners.delete(listener);
        this.child.off('exit', onExit);
        if (reply.type === 'failed') reject(new Error(`load generator failed: ${reply.message}`));
        else resolve(reply);
      };
      this.listeners.add(listener);
      this.child.once('exit', onExit);
      this.child.send(message);
    });
  }
}

export class LoadGenerator {
  private constructor(
    private readonly workers: Worker[],
    private readonly postgresPids: () => Promise<ReadonlySet<number>>,
  ) {}

  /** `postgresPids` names the PostgreSQL processes whose CPU counts for this run. */
  static async start(natsUrl: string, processes: number, cleanup: Cleanup, postgresPids: () => Promise<ReadonlySet<number>>): Promise<LoadGenerator> {
    const workers: Worker[] = [];
    for (let index = 0; index < processes; index += 1) {
      const child = fork(workerPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      cleanup.add(`load generator ${child.pid}`, async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await once(child, 'exit');
        }
      });
      const worker = new Worker(child);
      await worker.request({ type: 'connect', natsUrl, index });
      workers.push(worker);
    }
    return new LoadGenerator(workers, postgresPids);
  }

  get size(): number {
    return this.workers.length;
  }

  pids(): number[] {
    return this.workers.map((w) => w.child.pid!).filter((pid) => pid !== undefined);
  }

  /** The Reserve/Release loop for a fixed window; `serverPid` is the process whose CPU is reported. */
  async mix(job: MixJob, serverPid: number | undefined, processes = this.workers.length): Promise<LoadResult> {
    const used = this.workers.slice(0, Math.max(1, Math.min(processes, job.outstanding)));
    const shares = split(job.outstanding, used.length);
    let startReading: CpuReading | undefined;
    let endReading: CpuReading | undefined;
    const onWindow = (phase: 'start' | 'end'): void => {
      if (phase === 'start') startReading = readCpu(serverPid);
      else endReading = readCpu(serverPid);
    };
    const replies = await Promise.all(
      used.map((worker, i) =>
        worker.request(
          {
            type: 'mix',
            job: { ...job, outstanding: shares[i]!, ...(job.ratePerSecond ? { ratePerSecond: job.ratePerSecond / used.length } : {}) },
          },
          i === 0 ? onWindow : undefined,
        ),
      ),
    );
    const results = replies.map((reply) => (reply as { result: JobResult }).result);
    const cpu = cpuPercent(startReading ?? readCpu(serverPid), endReading ?? readCpu(serverPid), await this.postgresPids());
    return summarise(results, cpu);
  }

  /** One command to each actor, spread over the processes; for setup and activation sweeps. */
  async once(job: OnceJob): Promise<LoadResult> {
    const started = readCpu(undefined);
    const parts = this.workers.map((_, i) => job.actors.filter((__, k) => k % this.workers.length === i));
    const shares = split(job.outstanding, this.workers.length);
    const replies = await Promise.all(
      this.workers.map((worker, i) => worker.request({ type: 'once', job: { ...job, actors: parts[i]!, outstanding: Math.max(1, shares[i]!) } })),
    );
    const results = replies.map((reply) => (reply as { result: JobResult }).result);
    return summarise(results, cpuPercent(started, readCpu(undefined), await this.postgresPids()));
  }

  /** A grow job on the first process (one actor: spreading it would only add contention). */
  async grow(job: GrowJob): Promise<JobResult> {
    const reply = await this.workers[0]!.request({ type: 'grow', job });
    return (reply as { result: JobResult }).result;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(async (worker) => {
        if (worker.child.exitCode !== null) return;
        const exited = once(worker.child, 'exit');
        worker.child.send({ type: 'exit' } satisfies WorkerRequest);
        await exited;
      }),
    );
  }
}

function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

function summarise(results: JobResult[], cpu: { server: number; postgres: number; machine: number }): LoadResult {
  const histogram = new Histogram();
  const errors: Record<string, number> = {};
  let ok = 0;
  let seconds = 0;
  let clientCpu = 0;
  let clientCpuMax = 0;
  for (const result of results) {
    histogram.merge(result.histogram);
    ok += result.ok;
    seconds = Math.max(seconds, result.seconds);
    for (const [code, n] of Object.entries(result.errors)) errors[code] = (errors[code] ?? 0) + n;
    const pct = (100 * result.cpuSeconds) / Math.max(1e-3, result.seconds);
    clientCpu += pct;
    clientCpuMax = Math.max(clientCpuMax, pct);
  }
  return {
    perSecond: ok / Math.max(1e-3, seconds),
    ok,
    errors,
    p50: histogram.quantile(0.5),
    p99: histogram.quantile(0.99),
    meanMs: histogram.count ? histogram.sumMs / histogram.count : Number.NaN,
    seconds,
    clients: results.length,
    clientCpu,
    clientCpuMax,
    serverCpu: cpu.server,
    postgresCpu: cpu.postgres,
    machineCpu: cpu.machine,
  };
}
