// `npm run bench -- --profile`: ppos at 1000 actors and 64 outstanding with the node under
// `node --cpu-prof`, then where its CPU time went. NodeProcess cannot pass V8 flags (and
// NODE_OPTIONS refuses --cpu-prof), so this spawns `ppos start` itself (startNodeWithV8Flags).
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { actorIds, SUBJECT_PREFIX, type BenchContext } from './context.js';
import { summariseProfile, type CpuProfile } from './cpuprofile.js';
import { perfAvailable, runPerfProfile } from './perf.js';
import { startNodeWithV8Flags } from './services.js';
import { stock } from './throughput.js';

export async function runProfile(ctx: BenchContext): Promise<string> {
  const profileDir = mkdtempSync(path.join(os.tmpdir(), 'ppos-cpuprof-'));
  ctx.cleanup.add('profile folder', async () => rmSync(profileDir, { recursive: true, force: true }));
  const node = await startNodeWithV8Flags(ctx.cleanup, {
    natsUrl: ctx.nats.url,
    databaseUrl: ctx.db.url,
    nodeId: `bench-profile-${ctx.runTag}`,
    v8Flags: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
    label: 'profiled node',
  });
  const actors = actorIds('SKU', ctx.settings.actors);
  ctx.progress('profile: receiving stock');
  await stock(ctx, SUBJECT_PREFIX, `${ctx.runTag}-prof-stock`, actors);
  const measureMs = ctx.settings.name === 'quick' ? 5_000 : 20_000;
  await ctx.settle();
  ctx.progress(`profile: ${ctx.settings.actors} actors, 64 outstanding, ${measureMs / 1000} s`);
  const result = await ctx.load.mix(
    { subjectPrefix: SUBJECT_PREFIX, actors, outstanding: 64, warmupMs: ctx.settings.warmupMs, measureMs, timeoutMs: 10_000, tag: `${ctx.runTag}-prof` },
    node.pid,
    ctx.settings.clientsFor(64),
  );
  const nc = await connect({ servers: ctx.nats.url, name: 'ppos-bench-profile' });
  const stats = (await nc.request('ppos.nodes.stats', '', { timeout: 10_000 })).json<{ commands: number }>();
  await nc.drain();
  node.kill('SIGTERM'); // the node drains and exits; V8 writes the profile on exit
  await once(node, 'exit');
  const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error('the node wrote no .cpuprofile');
  const text = readFileSync(path.join(profileDir, file), 'utf8');
  if (process.env.PPOS_BENCH_KEEP_PROFILE) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(process.env.PPOS_BENCH_KEEP_PROFILE, text);
  }
  const profile = JSON.parse(text) as CpuProfile;
  const header =
    `# ppos CPU profile: ${ctx.settings.actors} actors, 64 outstanding\n\n` +
    `While under --cpu-prof: ${Math.round(result.perSecond).toLocaleString('en-US')} cmd/s, p50 / p99 ${result.p50.toFixed(2)} / ${result.p99.toFixed(2)} ms; ` +
    `node CPU ${Math.round(result.serverCpu)} %, client ${Math.round(result.clientCpu)} %, PostgreSQL ${Math.round(result.postgresCpu)} %, machine ${Math.round(result.machineCpu)} % ` +
    `(% of one core); errors: ${JSON.stringify(result.errors)}. The profile covers the node's whole life (start, stocking, warm-up, window, drain).\n`;
  let onCpu = '';
  if (perfAvailable()) {
    onCpu = await runPerfProfile(ctx);
  } else {
    onCpu = '(Linux `perf` is not installed: no on-CPU view; `apt-get install linux-perf` adds it.)\n';
  }
  return (
    `${header}\n${onCpu}\n### Wall-clock (node --cpu-prof)\n\n` +
    'V8 samples the node\'s main thread on a wall-clock timer: time spent runnable-but-preempted (frequent on a busy 2-core machine, ' +
    'typically right after a write() wakes nats-server or PostgreSQL) is charged to whatever was running, so native writes look far ' +
    'more expensive here than in the on-CPU view. Use it for which JavaScript functions are hot.\n\n' +
    summariseProfile(profile, stats.commands)
  );
}
