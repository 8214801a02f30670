// Prometheus metrics of one node (CONTRACT.md section 9), on a registry of its own: importing
// ppos registers nothing in prom-client's global registry. Counters and histograms are updated
// on the hot path (a label lookup and an increment); the gauges read their sources only when
// scraped.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricSources {
  activeActors(): number;
  mailboxDepth(): number;
  shardsOwned(): number;
  /** Each projection's (and the export's) lag, ms; read at scrape time. */
  projectionLags(): Promise<ReadonlyMap<string, number>>;
  timersFired(): number;
  /** Timers past their deadline on this node's shards, not fired yet; read at scrape time. */
  timersOverdue(): Promise<number>;
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly commands: Counter<'kind' | 'type' | 'outcome'>;
  private readonly commandSeconds: Histogram<'kind'>;
  private readonly commitSeconds: Histogram;
  private readonly commitBatch: Histogram;

  constructor(labels: { readonly node: string; readonly version: string }, sources: MetricSources) {
    const registers = [this.registry];
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry, prefix: 'ppos_' });
    this.commands = new Counter({ name: 'ppos_commands_total', help: 'Commands answered, by kind, type and outcome (ok, duplicate, or the error code)', labelNames: ['kind', 'type', 'outcome'], registers });
    this.commandSeconds = new Histogram({ name: 'ppos_command_duration_seconds', help: 'From receipt to reply, by kind', labelNames: ['kind'], buckets: LATENCY_BUCKETS, registers });
    this.commitSeconds = new Histogram({ name: 'ppos_journal_commit_duration_seconds', help: 'One group commit (one statement, one transaction)', buckets: LATENCY_BUCKETS, registers });
    this.commitBatch = new Histogram({ name: 'ppos_journal_commit_batch_size', help: 'Appends per group commit', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], registers });
    new Gauge({ name: 'ppos_active_actors', help: 'Actors in memory', registers, collect() { this.set(sources.activeActors()); } });
    new Gauge({ name: 'ppos_mailbox_depth', help: 'Messages waiting in all mailboxes', registers, collect() { this.set(sources.mailboxDepth()); } });
    new Gauge({ name: 'ppos_shards_owned', help: 'Shards this node holds', registers, collect() { this.set(sources.shardsOwned()); } });
    new Counter({ name: 'ppos_timers_fired_total', help: 'Durable timers this node fired and saw answered', registers, collect() { this.reset(); this.inc(sources.timersFired()); } });
    new Gauge({
      name: 'ppos_timers_overdue',
      help: 'Durable timers on this node\'s shards past their deadline and not fired yet (the backlog; counted up to 100,000)',
      registers,
      async collect() {
        this.set(await sources.timersOverdue().catch(() => Number.NaN));
      },
    });
    new Gauge({
      name: 'ppos_projection_lag_seconds',
      help: 'Age of the oldest committed event a follower (projection or export) has not applied',
      labelNames: ['projection'],
      registers,
      async collect() {
        this.reset();
        for (const [projection, ms] of await sources.projectionLags().catch(() => new Map<string, number>())) this.set({ projection }, ms / 1000);
      },
    });
  }

  /** Label children by their values: prom-client would hash the label object on every call. */
  private readonly commandCounters = new Map<string, { inc(): void }>();
  private readonly commandTimers = new Map<string, { observe(value: number): void }>();

  recordCommand(kind: string, type: string, outcome: string, ms: number): void {
    const key = `${kind}\u0000${type}\u0000${outcome}`;
    let counter = this.commandCounters.get(key);
    if (!counter) this.commandCounters.set(key, (counter = this.commands.labels({ kind, type, outcome })));
    counter.inc();
    let timer = this.commandTimers.get(kind);
    if (!timer) this.commandTimers.set(kind, (timer = this.commandSeconds.labels({ kind })));
    timer.observe(ms / 1000);
  }

  recordCommit(size: number, ms: number): void {
    this.commitBatch.observe(size);
    this.commitSeconds.observe(ms / 1000);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
