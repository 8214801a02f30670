// The bench's one output: a markdown report (printed, and written to bench/results/).
// Ratios are taken between figures measured in the same run, never against old numbers.
import type { BaselineBResult } from './baseline-b.js';
import type { ClusterRow } from './cluster.js';
import type { LoadResult } from './load.js';
import type { HistoryResult } from './history.js';
import type { DatabasesResult } from './databases.js';
import type { EventualResult } from './eventual.js';
import type { TimersResult } from './timers.js';
import type { HttpCostResult } from './http.js';
import type { ActivationRow, CrashResult, MemoryResult } from './recovery.js';
import type { ThroughputRow } from './throughput.js';

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly postgres: string;
  readonly postgresSettings: string;
  readonly nats: string;
  readonly commit: string;
}

export interface BenchResults {
  readonly settings: string;
  readonly startedAt: Date;
  readonly seconds: number;
  readonly machine: Machine;
  readonly ppos?: ThroughputRow[];
  readonly baselineA?: ThroughputRow[];
  readonly baselineB?: BaselineBResult;
  readonly echo?: ThroughputRow[];
  readonly halfPeak?: { readonly rate: number; readonly result: LoadResult };
  readonly activation?: ActivationRow[];
  readonly crash?: CrashResult;
  readonly memory?: MemoryResult;
  readonly cluster?: ClusterRow[];
  readonly history?: HistoryResult;
  readonly eventual?: EventualResult;
  readonly databases?: DatabasesResult;
  readonly timers?: TimersResult;
  readonly http?: HttpCostResult;
  readonly notes: string[];
}

const n0 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '—' : Math.round(x).toLocaleString('en-US'));
const ms = (x: number | undefined): string => {
  if (x === undefined || !Number.isFinite(x)) return '—';
  if (x < 10) return x.toFixed(2);
  if (x < 100) return x.toFixed(1);
  return Math.round(x).toLocaleString('en-US');
};
const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? '—' : `${(a / b).toFixed(a / b < 0.1 ? 3 : 2)}×`;
const pct = (x: number): string => `${Math.round(x)} %`;

function errorsText(errors: Record<string, number>): string {
  const entries = Object.entries(errors);
  return entries.length === 0 ? '0' : entries.map(([code, k]) => `${k} ${code}`).join(', ');
}

function table(header: string[], rows: string[][]): string {
  const align = header.map((_, i) => (i === 0 ? '---' : '---:'));
  return [`| ${header.join(' | ')} |`, `| ${align.join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/**
 * The speed goals of issue 17, against bare NATS request/reply measured with the same client in
 * the same run, and what bounds them: baseline B (PostgreSQL writing ppos's rows for each command,
 * nothing else) ÷ bare NATS is the most any design that journals these rows could reach here.
 */
function speedGoals(results: BenchResults): string | undefined {
  const echo64 = results.echo?.find((e) => e.workload.outstanding === 64)?.result.perSecond;
  const actors64 = results.ppos?.find((r) => r.workload.name === '1000 actors' && r.workload.outstanding === 64)?.result;
  const hot64 = results.ppos?.find((r) => r.workload.name === 'hot SKU' && r.workload.outstanding === 64)?.result;
  if (echo64 === undefined || (!actors64 && !hot64)) return undefined;
  const verdict = (value: number | undefined, goal: number, atMost = false): string =>
    value === undefined ? '—' : (atMost ? value <= goal : value >= goal) ? 'met' : 'missed';
  const share = (x: number | undefined): number | undefined => (x === undefined ? undefined : x / echo64);
  const halfP99 = results.halfPeak?.result.p99;
  const rows = [
    ['1000 actors, 64 outstanding ÷ bare NATS', '≥ 0.45×', ratio(actors64?.perSecond, echo64), verdict(share(actors64?.perSecond), 0.45)],
    ['one hot actor, 64 outstanding ÷ bare NATS', '≥ 0.35×', ratio(hot64?.perSecond, echo64), verdict(share(hot64?.perSecond), 0.35)],
    ['p99 at half of peak (open loop)', '≤ 5 ms', halfP99 === undefined ? '—' : `${ms(halfP99)} ms`, verdict(halfP99, 5, true)],
  ];
  const lines = [table(['speed goal (issue 17)', 'goal', 'this run', 'verdict'], rows)];
  const b = results.baselineB?.rowsPerSecond;
  if (b !== undefined) {
    lines.push(
      '',
      `What bounds the first two: baseline B writes ${n0(b)} commands' rows/s with the whole machine to itself, ${ratio(b, echo64)} of bare NATS; ` +
        'ppos writes the same rows and also runs the node, the broker and the client on the same cores.',
    );
  }
  if (actors64) {
    lines.push(
      '',
      `Machine CPU per command at 1000 actors / 64 outstanding: ${n0((actors64.machineCpu * 10_000) / Math.max(1, actors64.perSecond))} µs ` +
        `(node ${n0((actors64.serverCpu * 10_000) / Math.max(1, actors64.perSecond))}, PostgreSQL ${n0((actors64.postgresCpu * 10_000) / Math.max(1, actors64.perSecond))}); ` +
        `reaching 0.45× of bare NATS here would need ${n0(2_000_000 / (0.45 * echo64))} µs or less.`,
    );
  }
  return lines.join('\n');
}

export function renderReport(results: BenchResults): string {
  const out: string[] = [];
  const m = results.machine;
  out.push(`# ppos bench, ${results.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC (${results.settings}, ${Math.round(results.seconds)} s)`);
  out.push('');
  out.push(
    `Machine: ${m.cpus} cores (${m.cpuModel}), ${m.memoryGiB.toFixed(1)} GiB, Linux ${m.kernel}; Node ${m.node}; ${m.postgres} (${m.postgresSettings}); ${m.nats}; ppos ${m.commit}.`,
  );
  out.push('');

  const b = results.baselineB;
  if (results.ppos || results.baselineA || results.echo || results.baselineB) {
    out.push('## Durable commands per second (Reserve/Release, every reply after its commit)');
    out.push('');
    out.push(
      'Closed loop: a fixed number of requests outstanding; latency is what the client saw, ms. ' +
        'ppos = one `ppos start` process (default settings); A = SERIALIZABLE transactions on the stock row with retries ' +
        '(a responder process behind the same NATS server, same envelopes, same load generator); ppos and A are measured alternately, workload by workload; ' +
        'B = the same event + dedupe rows inserted in batches, no runtime (the ceiling). Every workload has its own warm-up before its window.',
    );
    out.push('');
    const keyOf = (row: ThroughputRow): string => `${row.workload.name}/${row.workload.outstanding}`;
    const aByKey = new Map((results.baselineA ?? []).map((row) => [keyOf(row), row]));
    // Bare NATS at the same number outstanding (the hot SKU's subject is one more subject to NATS).
    const echoAt = (outstanding: number): ThroughputRow | undefined => results.echo?.find((e) => e.workload.outstanding === outstanding);
    const rows = (results.ppos ?? results.baselineA ?? []).map((row) => {
      const p = results.ppos?.find((r) => keyOf(r) === keyOf(row));
      const a = aByKey.get(keyOf(row));
      const aborted = a?.counters && a.counters.attempts > 0 ? pct((100 * a.counters.serializationFailures) / a.counters.attempts) : '—';
      return [
        row.workload.name,
        String(row.workload.outstanding),
        n0(p?.result.perSecond),
        p ? `${ms(p.result.p50)} / ${ms(p.result.p99)}` : '—',
        n0(a?.result.perSecond),
        a ? `${ms(a.result.p50)} / ${ms(a.result.p99)}` : '—',
        aborted,
        ratio(p?.result.perSecond, a?.result.perSecond),
        ratio(p?.result.perSecond, b?.rowsPerSecond),
        ratio(p?.result.perSecond, echoAt(row.workload.outstanding)?.result.perSecond),
      ];
    });
    out.push(
      table(['workload', 'outstanding', 'ppos cmd/s', 'ppos p50 / p99 ms', 'A cmd/s', 'A p50 / p99 ms', 'A attempts aborted', 'ppos ÷ A', 'ppos ÷ B', 'ppos ÷ bare NATS'], rows),
    );
    out.push('');
    const goals = speedGoals(results);
    if (goals) {
      out.push(goals);
      out.push('');
    }
    if (b) {
      out.push(
        `Baseline B: **${n0(b.rowsPerSecond)} event rows/s** (each with its dedupe row; ${b.connections} connections × ${b.batchSize}-row statements; ` +
          `commit p50 / p99 ${ms(b.p50)} / ${ms(b.p99)} ms; PostgreSQL CPU ${pct(b.postgresCpu)}, inserting process ${pct(b.benchCpu)}, machine busy ${pct(b.machineCpu)}).`,
      );
      out.push('');
    }
    if (results.halfPeak) {
      const h = results.halfPeak;
      out.push(
        `Open loop at half of ppos's peak (${n0(h.rate)} cmd/s offered, 1000 actors): ${n0(h.result.perSecond)} cmd/s served, ` +
          `p50 / p99 **${ms(h.result.p50)} / ${ms(h.result.p99)} ms**, errors ${errorsText(h.result.errors)}.`,
      );
      out.push('');
    }
    if (results.echo) {
      out.push(
        'Bare NATS request/reply (a responder that parses the request and answers with a reply of ppos\'s shape; same client): ' +
          results.echo.map((e) => `${n0(e.result.perSecond)} req/s at ${e.workload.outstanding} outstanding (p99 ${ms(e.result.p99)} ms)`).join(', ') +
          '.',
      );
      out.push('');
    }

    out.push('### CPU during each measurement window');
    out.push('');
    out.push(
      '% of one core (200 % = the whole 2-core machine). "server" = the ppos node or the baseline A responder process; ' +
        'PostgreSQL = the backends of the bench database plus the server\'s WAL writer, checkpointer and background writer; ' +
        '"other" = machine busy minus server, client and PostgreSQL (nats-server, the kernel, anything else running on the machine).',
    );
    out.push('');
    const cpuRows: string[][] = [];
    const add = (system: string, row: ThroughputRow): void => {
      const r = row.result;
      cpuRows.push([
        row.workload.name,
        String(row.workload.outstanding),
        system,
        n0(r.perSecond),
        pct(r.serverCpu),
        `${pct(r.clientCpu)} (${r.clients} proc, busiest ${pct(r.clientCpuMax)})`,
        pct(r.postgresCpu),
        pct(r.machineCpu),
        pct(Math.max(0, r.machineCpu - r.serverCpu - r.clientCpu - r.postgresCpu)),
        n0((r.serverCpu * 10_000) / Math.max(1, r.perSecond)),
        errorsText(r.errors),
      ]);
    };
    for (const row of results.ppos ?? []) add('ppos', row);
    for (const row of results.baselineA ?? []) add('A', row);
    for (const row of results.echo ?? []) add('NATS echo', row);
    out.push(table(['workload', 'outstanding', 'system', 'ok/s', 'server CPU', 'client CPU', 'PostgreSQL CPU', 'machine busy', 'other', 'server µs CPU/cmd', 'errors'], cpuRows));
    out.push('');
  }

  if (results.activation) {
    out.push('## Recovery: activating one actor with a long journal');
    out.push('');
    out.push(
      'A fresh node, one `Get` to an actor not yet in memory. "node activation" = the node\'s own measure (read snapshot, read events, replay); ' +
        '"first Get" = what the client waited; "pure replay" = the same events through the same machine in-process, no database. ' +
        'With snapshots, the latest snapshot is 50 events behind the head (snapshot every 100 events).',
    );
    out.push('');
    out.push(
      table(
        ['journal', 'snapshot', 'events replayed', 'node activation ms', 'first Get ms', 'pure replay ms', 'actors measured (median)'],
        results.activation.map((r) => [
          `${n0(r.events)} events`,
          r.snapshot ? 'yes' : 'no',
          n0(r.replayed),
          ms(r.activationMs),
          ms(r.firstGetMs),
          ms(r.pureReplayMs),
          String(r.repeats),
        ]),
      ),
    );
    out.push('');
  }

  if (results.crash) {
    const c = results.crash;
    out.push('## Restart after SIGKILL');
    out.push('');
    out.push(
      `A node with ${n0(c.actors)} active actors (${c.eventsPerActor} events each; activated by a sweep at ${n0(c.activationPerSecond)} actors/s) is killed with SIGKILL; ` +
        'a replacement `ppos start` with the same node id is spawned while a client keeps retrying a Reserve (with another id it would first wait for the old shard leases to expire, up to `--lease-ms`).',
    );
    out.push('');
    out.push(
      table(
        ['from spawning the replacement to', 'ms'],
        [
          ['"node started" (process up, schema checked, subscribed)', ms(c.readyMs)],
          ['first durable command answered (Reserve, ok)', ms(c.firstReplyMs)],
          [`all ${n0(c.actors)} actors answered again (sweep, 256 outstanding)`, ms(c.allAnsweredMs)],
        ],
      ),
    );
    out.push('');
  }

  if (results.memory) {
    const mm = results.memory;
    out.push('## Memory');
    out.push('');
    out.push(
      table(
        ['node', 'RSS MiB'],
        [
          ['idle, just started', n0(mm.idleRssMiB)],
          [`after one ${mm.command} to each of ${n0(mm.actors)} actors (${n0(mm.activeActors)} active; sweep at ${n0(mm.activationPerSecond)}/s)`, n0(mm.activeRssMiB)],
          [
            `same sweep with --passivate-after-ms ${mm.passivateAfterMs}, after all were passivated (${n0(mm.passivatedActiveActors)} still active; peak ${n0(mm.passivatedPeakMiB)} MiB)`,
            n0(mm.passivatedRssMiB),
          ],
        ],
      ),
    );
    out.push('');
  }

  if (results.http) {
    const h = results.http;
    const mean = (rs: readonly LoadResult[]): number => rs.reduce((sum, r) => sum + r.perSecond, 0) / Math.max(1, rs.length);
    out.push('## The cost of metrics (`--http`)');
    out.push('');
    out.push(
      `The ${n0(results.ppos?.[0]?.workload.actors ?? 1000)}-actor workload at ${h.outstanding} outstanding against a node with \`--http\` (metrics on the hot path, ` +
        `scraped every second: ${h.scrapes} scrapes) and one without, alternately on one database (each first in every other round), after a warm-up round of each.`,
    );
    out.push('');
    // What the node process itself spends per command: the cost of metrics, less exposed to
    // the machine's noise than throughput (a window slowed by a neighbour is slow for both).
    const cpuPerCommand = (r: LoadResult): number => (r.serverCpu / 100) * 1e6 / Math.max(1, r.perSecond);
    const meanCpu = (rs: readonly LoadResult[]): number => rs.reduce((sum, r) => sum + cpuPerCommand(r), 0) / Math.max(1, rs.length);
    out.push(
      table(
        ['', 'cmd/s (each window)', 'mean cmd/s', 'node CPU µs/cmd (each window)', 'mean µs/cmd', 'p99 ms (last window)'],
        [
          ['--http off', h.off.map((r) => n0(r.perSecond)).join(', '), n0(mean(h.off)), h.off.map((r) => n0(cpuPerCommand(r))).join(', '), n0(meanCpu(h.off)), ms(h.off[h.off.length - 1]?.p99)],
          ['--http on', h.on.map((r) => n0(r.perSecond)).join(', '), n0(mean(h.on)), h.on.map((r) => n0(cpuPerCommand(r))).join(', '), n0(meanCpu(h.on)), ms(h.on[h.on.length - 1]?.p99)],
        ],
      ),
    );
    out.push('');
    out.push(
      `Throughput on ÷ off: ${(mean(h.on) / mean(h.off)).toFixed(3)}× (goal ≥ 0.97×). ` +
        `Node CPU per command on ÷ off: ${(meanCpu(h.on) / meanCpu(h.off)).toFixed(3)}× (goal ≤ 1.03×).`,
    );
    out.push('');
  }

  if (results.timers) {
    const t = results.timers;
    const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    out.push('## Durable timers');
    out.push('');
    out.push(
      `A node started on a journal with ${n0(t.pending)} pending timers (due in a day) and on one with none, alternately, twice each; ` +
        `then ${n0(t.holds)} holds (Reserve with holdMs, 1,000 SKUs, 64 clients) set to fall due at one moment, and the rate they expire ` +
        '(each fired as a command, journaled as HoldExpired) after it.',
    );
    out.push('');
    out.push(
      table(
        ['', 'no timers', `${n0(t.pending)} pending`],
        [
          ['start to ready, ms (each round)', t.startMs.none.map(n0).join(', '), t.startMs.full.map(n0).join(', ')],
          ['start, median ms', n0(median(t.startMs.none)), n0(median(t.startMs.full))],
          ['RSS after start, MiB', n0(t.rssMiB.none), n0(t.rssMiB.full)],
        ],
      ),
    );
    out.push('');
    out.push(`Holds set at ${n0(t.setPerSecond)}/s (commands); fired and expired at ${n0(t.firedPerSecond)}/s (${n0(t.holds)} in ${n0(t.drainMs)} ms after their deadline): ${(t.firedPerSecond / t.setPerSecond).toFixed(2)}× the command rate.`);
    out.push('');
  }

  if (results.databases) {
    const d = results.databases;
    const mean = (rs: readonly LoadResult[]): number => rs.reduce((sum, r) => sum + r.perSecond, 0) / Math.max(1, rs.length);
    const meanOf = (rs: readonly LoadResult[], pick: (r: LoadResult) => number): number => rs.reduce((sum, r) => sum + pick(r), 0) / Math.max(1, rs.length);
    out.push('## The journal over one database and over two');
    out.push('');
    out.push(
      `The ${n0(results.ppos?.[0]?.workload.actors ?? 1000)}-actor workload against a node given one database and against one given two (\`--db URL1,URL2\`: ` +
        'the shards split in halves), `--followers none`, alternately, after one unmeasured round of each. Both databases are in this machine\'s one ' +
        'PostgreSQL server, so the second brings no cores of its own: this is the cost of spreading, not the gain of separate servers.',
    );
    out.push('');
    out.push(
      table(
        ['outstanding', 'cmd/s, 1 database', 'cmd/s, 2 databases', '2 ÷ 1', 'PostgreSQL CPU 1 / 2', 'node CPU 1 / 2'],
        d.rows.map((r) => [
          String(r.outstanding),
          n0(mean(r.one)),
          n0(mean(r.two)),
          ratio(mean(r.two), mean(r.one)),
          `${pct(meanOf(r.one, (x) => x.postgresCpu))} / ${pct(meanOf(r.two, (x) => x.postgresCpu))}`,
          `${pct(meanOf(r.one, (x) => x.serverCpu))} / ${pct(meanOf(r.two, (x) => x.serverCpu))}`,
        ]),
      ),
    );
    out.push('');
    const b = results.baselineB?.rowsPerSecond;
    out.push(
      b
        ? `Paper estimate for separate servers: baseline B (bare batched inserts of the rows ppos writes) reached ${n0(b)} commands' rows/s on one PostgreSQL here; ` +
            'no statement spans two databases, so with N servers like this one the journal\'s ceiling is about N × that ' +
            `(${[2, 4, 8].map((n) => `${n}: ${n0(n * b)}/s`).join(', ')}), provided the nodes and NATS keep up (they become the bound first: see the ppos section).`
        : 'Paper estimate for separate servers: run with the `b` section for baseline B; the journal\'s ceiling is about N × one server\'s, since no statement spans two databases.',
    );
    out.push('');
  }

  if (results.eventual) {
    const e = results.eventual;
    const mean = (rs: readonly LoadResult[]): number => rs.reduce((sum, r) => sum + r.perSecond, 0) / Math.max(1, rs.length);
    const names = [...new Set(e.rows.flatMap((r) => Object.keys(r.lag)))].sort();
    out.push('## The eventual side: projections and the journal export');
    out.push('');
    out.push(
      `The ${n0(results.ppos?.[0]?.workload.actors ?? 1000)}-actor workload against a node running the projections (stock, workorders) and the export to JetStream ` +
        '(the default), and against one started with `--followers none`, alternately (off, on, off, on, ...), each on its own database, after one unmeasured round of each. ' +
        'cmd/s is the mean of the windows. Lag is the age of the oldest committed event a follower has not applied (0 when caught up), ' +
        'sampled every 100 ms during the measurement windows with followers on; budgets ' +
        Object.entries(e.budgets).map(([name, budget]) => `${name} ${n0(budget)} ms`).join(', ') +
        '.',
    );
    out.push('');
    out.push(
      table(
        ['outstanding', 'cmd/s off', 'cmd/s on', 'on ÷ off', ...names.map((name) => `${name} lag p50 / p99 / max ms`)],
        e.rows.map((r) => [
          String(r.outstanding),
          n0(mean(r.off)),
          n0(mean(r.on)),
          ratio(mean(r.on), mean(r.off)),
          ...names.map((name) => (r.lag[name] ? `${ms(r.lag[name]!.p50)} / ${ms(r.lag[name]!.p99)} / ${ms(r.lag[name]!.max)}` : '—')),
        ]),
      ),
    );
    out.push('');
    const windows = (pick: (r: (typeof e.rows)[number]) => readonly LoadResult[]): string =>
      e.rows.map((r) => `${r.outstanding}: ${pick(r).map((x) => `${n0(x.perSecond)} (node ${pct(x.serverCpu)}, PostgreSQL ${pct(x.postgresCpu)}, machine ${pct(x.machineCpu)})`).join(', ')}`).join('; ');
    out.push(`Windows, cmd/s and CPU (% of one core): off ${windows((r) => r.off)}; on ${windows((r) => r.on)}.`);
    out.push('');
  }

  if (results.history) {
    const h = results.history;
    const base = h.windows[0]?.perSecond;
    out.push('## Cost that does not grow with history (one hot SKU)');
    out.push('');
    out.push(
      `One inventory actor, Reserve only with new reservation ids at 64 outstanding, so open reservations pile up. Each row is the same ` +
        `window of ${n0(h.windows[0]?.commands)} commands, taken once the actor holds that many open reservations (the fillers in between ` +
        'are not measured). Replies carry the summary and the named reservation, whatever the count.',
    );
    out.push('');
    out.push(
      table(
        ['open reservations', 'cmd/s', '÷ 0 open', 'p50 / p99 ms', 'reply bytes mean / max'],
        h.windows.map((w) => [n0(w.openAtStart), n0(w.perSecond), ratio(w.perSecond, base), `${ms(w.p50)} / ${ms(w.p99)}`, `${n0(w.meanReplyBytes)} / ${n0(w.maxReplyBytes)}`]),
      ),
    );
    out.push('');
    out.push(`Largest reply of the whole run, fillers included: ${n0(h.maxReplyBytes)} bytes.`);
    out.push('');
    out.push(
      `Then the same actor's journal grown to ${n0(h.events)} events with Reserve/Consume pairs on new ids (${n0(h.fillRate)} cmd/s at 256 outstanding): ` +
        `${n0(h.openAtEnd)} reservations open, the rest consumed. Then SIGKILL, a restart with the same node id, and the first Get.`,
    );
    out.push('');
    out.push(
      table(
        ['figure', 'value'],
        [
          ['journal on disk (events, dedupe, facts; with indexes)', `${n0(h.journalBytes / 2 ** 20)} MiB`],
          [`snapshots written (${n0(h.snapshots)})`, `${(h.snapshotBytes / 2 ** 20).toFixed(1)} MiB = ${((100 * h.snapshotBytes) / h.journalBytes).toFixed(1)} % of the journal`],
          ['first Get after the restart (activation included)', `${ms(h.activation.firstGetMs)} ms`],
          ['activation, as the node measured it', `${ms(h.activation.activationMs)} ms (from the snapshot at seq ${n0(h.activation.snapshotSeq)}, ${n0(h.activation.eventsReplayed)} events replayed)`],
          ['node RSS, idle after the restart', `${n0(h.rss.idleMiB)} MiB`],
          ['node RSS, with the actor active', `${n0(h.rss.activeMiB)} MiB`],
        ],
      ),
    );
    out.push('');
  }

  if (results.cluster && results.cluster.length > 0) {
    out.push('## Several nodes on this one machine');
    out.push('');
    out.push(
      '1, 2 and 3 `ppos start` processes sharing one NATS server and one PostgreSQL database (fresh per cluster size, 256 shards), ' +
        'the same Reserve/Release mix over 1000 actors, sent to the queue group: ' +
        'a request that reaches a node not owning its actor takes one forwarding hop. On one machine the nodes compete for the same cores, ' +
        'so this measures the cost of sharding and forwarding, not the gain of adding machines.',
    );
    out.push('');
    const one = new Map(results.cluster.filter((r) => r.nodes === 1).map((r) => [r.outstanding, r.result.perSecond]));
    out.push(
      table(
        ['nodes', 'outstanding', 'cmd/s', 'p50 / p99 ms', '÷ 1 node', 'machine busy', 'PostgreSQL CPU', 'errors'],
        results.cluster.map((r) => [
          String(r.nodes),
          String(r.outstanding),
          n0(r.result.perSecond),
          `${ms(r.result.p50)} / ${ms(r.result.p99)}`,
          ratio(r.result.perSecond, one.get(r.outstanding)),
          pct(r.result.machineCpu),
          pct(r.result.postgresCpu),
          errorsText(r.result.errors),
        ]),
      ),
    );
    out.push('');
  }

  if (results.notes.length > 0) {
    out.push('## Notes');
    out.push('');
    for (const note of results.notes) out.push(`- ${note}`);
    out.push('');
  }
  return out.join('\n');
}
