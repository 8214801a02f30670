// What every bench section gets: its settings (full or --quick), the services of this run,
// and a progress line on stderr.
import type { PrivateNatsServer } from '../src/nats-server.js';
import type { LoadGenerator, LoadResult, MixJob } from './load.js';
import type { BenchDatabase, Cleanup } from './services.js';

export interface Settings {
  readonly name: 'full' | 'quick';
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly actors: number;
  readonly levels: readonly number[];
  readonly hotOutstanding: number;
  /** Client processes used for a given number of outstanding requests. */
  readonly clientsFor: (outstanding: number) => number;
  readonly baselineAPool: number;
  readonly recoverySizes: readonly number[];
  readonly recoveryRepeats: number;
  readonly crashActors: number;
  readonly memoryActors: number;
}

export interface BenchContext {
  readonly settings: Settings;
  readonly cleanup: Cleanup;
  readonly db: BenchDatabase;
  readonly nats: PrivateNatsServer;
  readonly load: LoadGenerator;
  /** Unique per run: keeps message ids distinct between sections sharing the database. */
  readonly runTag: string;
  progress(text: string): void;
  /**
   * With --wait-quiet: waits (up to its limit) until the rest of the machine is idle, so
   * other people's work on a shared machine does not land inside a measurement window.
   */
  settle(): Promise<void>;
}

export const SUBJECT_PREFIX = 'ppos.cmd.inventory';

export const actorIds = (prefix: string, n: number): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(String(n - 1).length, '0')}`);

/**
 * One measurement window of the mixed workload with the run's warm-up and measuring times and a
 * 10 s request timeout: `job` names the rest (inventory subjects unless it says otherwise).
 */
export function measureMix(
  ctx: BenchContext,
  job: Omit<MixJob, 'subjectPrefix' | 'warmupMs' | 'measureMs' | 'timeoutMs'> & { readonly subjectPrefix?: string },
  serverPid: number | undefined,
  clients: number,
): Promise<LoadResult> {
  return ctx.load.mix(
    { subjectPrefix: SUBJECT_PREFIX, warmupMs: ctx.settings.warmupMs, measureMs: ctx.settings.measureMs, timeoutMs: 10_000, ...job },
    serverPid,
    clients,
  );
}
