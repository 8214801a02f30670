// The on-CPU view of the profile (`npm run bench -- --profile`, when Linux `perf` is
// installed). `node --cpu-prof` samples wall-clock time: on a 2-core machine where the
// node, the clients, nats-server and PostgreSQL all want a core, a node that is preempted
// inside a write() piles up samples there without using CPU. `perf record -a` samples only
// what runs, in every process and in the kernel; the node runs with --perf-prof so its
// JIT-compiled JavaScript has names (perf inject --jit).
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { actorIds, SUBJECT_PREFIX, type BenchContext } from './context.js';
import type { LoadResult } from './load.js';
import { postgresPidsOf, startNodeWithV8Flags } from './services.js';
import { stock } from './throughput.js';

const FREQUENCY = 999;

export function perfAvailable(): boolean {
  try {
    execFileSync('perf', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface Sample {
  readonly comm: string;
  readonly pid: number;
  readonly tid: number;
  readonly frames: string[];
}

function parsePerfScript(text: string): Sample[] {
  const samples: Sample[] = [];
  let current: Sample | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current) samples.push(current);
      current = undefined;
      continue;
    }
    if (!/^\s/.test(line)) {
      const m = /^(.*?)\s+(\d+)\/(\d+)\s*$/.exec(line);
      current = m ? { comm: m[1]!.trim(), pid: Number(m[2]), tid: Number(m[3]), frames: [] } : undefined;
      continue;
    }
    const m = /^\s*[0-9a-f]+\s+(.*) \((.*)\)\s*$/.exec(line);
    if (m && current) current.frames.push(m[2] === '[kernel.kallsyms]' ? `[k] ${m[1]}` : m[1]!);
  }
  if (current) samples.push(current);
  return samples;
}

function ownerOf(frame: string): string | undefined {
  const lib = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(frame)?.[1];
  if (lib) {
    if (lib.startsWith('@nats-io/')) return 'NATS client (@nats-io)';
    if (lib === 'pg' || lib.startsWith('pg-') || lib === 'postgres-date') return 'pg (node-postgres)';
    if (lib === 'xstate') return 'XState';
    if (lib === 'zod') return 'zod';
    if (lib === 'safe-stable-stringify') return 'safe-stable-stringify';
    return lib;
  }
  const own = /\/dist\/(runtime|persistence|actors|src)\//.exec(frame)?.[1];
  return own ? `ppos ${own}/ (own code)` : undefined;
}

const GC = /Scaveng|MarkCompact|ConcurrentMarking|Sweeper|Heap::|MarkingVisitor|IteratePointers|Evacuat|MinorGC|GCTracer|MarkingBarrier|RecordWrite/;

function concernOf(sample: Sample, mainThread: boolean): string {
  const frames = sample.frames;
  if (frames.slice(0, 12).some((f) => GC.test(f))) return 'GC (V8 heap)';
  if (frames.slice(0, 6).some((f) => f.includes('Json'))) return 'JSON (V8 JsonParser / JsonStringifier)';
  if (frames.slice(0, 8).some((f) => /sha256/i.test(f))) return 'crypto (sha256)';
  for (const frame of frames) {
    const owner = ownerOf(frame);
    if (owner) return owner;
  }
  if (!mainThread) return 'other node threads (JIT compiler, libuv pool)';
  return 'node / V8 / libuv, no JS owner (promises, microtasks, stream reads)';
}

export async function runPerfProfile(ctx: BenchContext): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ppos-perf-'));
  ctx.cleanup.add('perf folder', async () => rmSync(dir, { recursive: true, force: true }));
  // --perf-prof writes jit-<pid>.dump into the working folder.
  const node = await startNodeWithV8Flags(ctx.cleanup, {
    natsUrl: ctx.nats.url,
    databaseUrl: ctx.db.url,
    nodeId: `bench-perf-${ctx.runTag}`,
    v8Flags: ['--perf-prof', '--interpreted-frames-native-stack'],
    cwd: dir,
    label: 'perf-profiled node',
  });
  const nodePid = node.pid!;
  const actors = actorIds('SKU', ctx.settings.actors);
  ctx.progress('perf: receiving stock');
  await stock(ctx, SUBJECT_PREFIX, `${ctx.runTag}-perf-stock`, actors);
  const recordS = ctx.settings.name === 'quick' ? 4 : 10;
  const warmupMs = ctx.settings.warmupMs;
  await ctx.settle();
  ctx.progress(`perf: ${ctx.settings.actors} actors, 64 outstanding, perf record -a for ${recordS} s`);
  const nc: NatsConnection = await connect({ servers: ctx.nats.url, name: 'ppos-bench-perf' });
  const commands = async (): Promise<number> => (await nc.request('ppos.nodes.stats', '', { timeout: 10_000 })).json<{ commands: number }>().commands;
  const running: Promise<LoadResult> = ctx.load.mix(
    { subjectPrefix: SUBJECT_PREFIX, actors, outstanding: 64, warmupMs, measureMs: recordS * 1000 + 2_000, timeoutMs: 10_000, tag: `${ctx.runTag}-perf` },
    nodePid,
    ctx.settings.clientsFor(64),
  );
  await new Promise((resolve) => setTimeout(resolve, warmupMs + 1_000));
  const before = await commands();
  const data = path.join(dir, 'perf.data');
  execFileSync('perf', ['record', '-k', '1', '-e', 'cpu-clock', '-F', String(FREQUENCY), '-a', '-g', '-o', data, '--', 'sleep', String(recordS)], { stdio: 'ignore' });
  const handled = (await commands()) - before;
  const postgresPids = await postgresPidsOf(ctx.db.pool);
  const result = await running;
  await nc.drain();
  node.kill('SIGTERM');
  await once(node, 'exit');
  if (!readdirSync(dir).some((f) => f.startsWith('jit-'))) throw new Error('the node wrote no jit dump');
  const injected = path.join(dir, 'perf.jit.data');
  execFileSync('perf', ['inject', '--jit', '-i', data, '-o', injected], { stdio: 'ignore', cwd: dir });
  const script = execFileSync('perf', ['script', '-i', injected, '-F', 'comm,pid,tid,ip,sym,dso'], {
    cwd: dir,
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return summarise(parsePerfScript(script), { nodePid, clientPids: new Set(ctx.load.pids()), postgresPids, seconds: recordS, commands: handled, result });
}

function summarise(
  samples: Sample[],
  run: { nodePid: number; clientPids: Set<number>; postgresPids: ReadonlySet<number>; seconds: number; commands: number; result: LoadResult },
): string {
  const perCore = (n: number): string => `${Math.round((100 * n) / FREQUENCY / run.seconds)} %`;
  const usPerCommand = (n: number): string => ((n / FREQUENCY / Math.max(1, run.commands)) * 1e6).toFixed(1);
  const processes = new Map<string, number>();
  const others = new Map<string, number>();
  const concerns = new Map<string, number>();
  const kernelByOwner = new Map<string, number>();
  let nodeSamples = 0;
  let nodeMain = 0;
  const add = (map: Map<string, number>, key: string): void => {
    map.set(key, (map.get(key) ?? 0) + 1);
  };
  for (const sample of samples) {
    let group: string;
    if (sample.pid === run.nodePid) group = 'ppos node';
    else if (run.clientPids.has(sample.pid)) group = 'load generator (2 processes)';
    else if (sample.comm === 'postgres' && run.postgresPids.has(sample.pid)) group = 'PostgreSQL (bench database backends, WAL writer, checkpointer)';
    else if (sample.comm === 'nats-server') group = 'nats-server';
    else {
      group = 'everything else on the machine';
      add(others, sample.comm === 'postgres' ? 'PostgreSQL for other databases' : sample.comm.replace(/[0-9:/-]+$/, ''));
    }
    add(processes, group);
    if (sample.pid !== run.nodePid) continue;
    nodeSamples += 1;
    const main = sample.tid === run.nodePid;
    if (main) nodeMain += 1;
    add(concerns, concernOf(sample, main));
    if (sample.frames[0]?.startsWith('[k] ')) add(kernelByOwner, sample.frames.map(ownerOf).find((o) => o) ?? 'no JS owner');
  }
  const sorted = (map: Map<string, number>): [string, number][] => [...map.entries()].sort((a, b) => b[1] - a[1]);
  const kernelTotal = [...kernelByOwner.values()].reduce((a, b) => a + b, 0);
  const out: string[] = [];
  out.push(`### On-CPU (perf record -a, ${run.seconds} s at ${FREQUENCY} Hz, during the same workload)`);
  out.push('');
  out.push(
    `${run.commands.toLocaleString('en-US')} commands in the recording (${Math.round(run.commands / run.seconds).toLocaleString('en-US')}/s; whole run ${Math.round(run.result.perSecond).toLocaleString('en-US')}/s, p50 / p99 ${run.result.p50.toFixed(2)} / ${run.result.p99.toFixed(2)} ms).`,
  );
  out.push('');
  out.push('| process | CPU (% of one core) | µs CPU per command |');
  out.push('| --- | ---: | ---: |');
  for (const [group, n] of sorted(processes)) out.push(`| ${group} | ${perCore(n)} | ${usPerCommand(n)} |`);
  out.push('');
  if (others.size > 0) {
    out.push(`Everything else: ${sorted(others).slice(0, 5).map(([name, n]) => `${name} ${perCore(n)}`).join(', ')}.`);
    out.push('');
  }
  out.push(
    `Inside the ppos node (${usPerCommand(nodeSamples)} µs per command; main thread ${Math.round((100 * nodeMain) / Math.max(1, nodeSamples))} %, ` +
      `kernel ${Math.round((100 * kernelTotal) / Math.max(1, nodeSamples))} %: ${sorted(kernelByOwner)
        .slice(0, 4)
        .map(([owner, n]) => `${owner} ${Math.round((100 * n) / Math.max(1, nodeSamples))} %`)
        .join(', ')}). ` +
      'A sample goes to GC, JSON or sha256 when those are on top of the stack, otherwise to the innermost library or ppos frame:',
  );
  out.push('');
  out.push('| concern | share of node CPU | µs per command |');
  out.push('| --- | ---: | ---: |');
  for (const [name, n] of sorted(concerns)) out.push(`| ${name} | ${Math.round((1000 * n) / Math.max(1, nodeSamples)) / 10} % | ${usPerCommand(n)} |`);
  out.push('');
  return out.join('\n');
}
