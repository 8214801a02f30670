// What the machine and its processes are doing, read from /proc: CPU time per process,
// busy time of the whole machine, resident memory. Linux only, like the rest of the bench.
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
export function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** CPU seconds of every PostgreSQL process on the machine, by pid. */
export function postgresCpuByPid(): Map<number, number> {
  const cpu = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (name !== 'postgres') continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpu.set(Number(entry), (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS);
    } catch {
      // the process ended while we looked
    }
  }
  return cpu;
}

/** Busy CPU seconds of the whole machine, summed over its cores. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [, user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  void idle;
  void iowait;
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / CLOCK_TICKS;
}

/** Resident and peak resident memory of a process, in MiB. */
export function memoryMiB(pid: number | undefined): { rss: number; peak: number } {
  if (pid === undefined) return { rss: 0, peak: 0 };
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

/** A reading of the CPU counters the throughput runs report. */
export interface CpuReading {
  readonly at: number;
  readonly server: number;
  readonly postgres: ReadonlyMap<number, number>;
  readonly machine: number;
}

export function readCpu(serverPid: number | undefined): CpuReading {
  return { at: performance.now(), server: processCpuSeconds(serverPid), postgres: postgresCpuByPid(), machine: machineBusySeconds() };
}

/**
 * CPU used between two readings, as a percentage of one core (200 % = both cores of a
 * 2-core machine). PostgreSQL counts the processes in `postgresPids` (this run's backends
 * and the shared WAL writer, checkpointer and background writer), or all when unset.
 */
export function cpuPercent(
  from: CpuReading,
  to: CpuReading,
  postgresPids?: ReadonlySet<number>,
): { server: number; postgres: number; machine: number } {
  const seconds = Math.max(1e-3, (to.at - from.at) / 1000);
  const pct = (a: number, b: number): number => (100 * (b - a)) / seconds;
  let postgres = 0;
  for (const [pid, cpu] of to.postgres) {
    if (postgresPids && !postgresPids.has(pid)) continue;
    postgres += cpu - (from.postgres.get(pid) ?? 0);
  }
  return { server: pct(from.server, to.server), postgres: (100 * postgres) / seconds, machine: pct(from.machine, to.machine) };
}
