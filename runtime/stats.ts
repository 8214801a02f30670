// Node counters for operators: cheap enough for the hot path (a few increments and one
// array write per command), summarised only when asked.
import type { Reply } from './envelope.js';
import type { NodeMetrics } from './metrics.js';
import type { ActorRegistry } from './registry.js';

const WINDOW = 4096;
const RATE_SECONDS = 10;

export class NodeStats {
  private readonly startedAt = Date.now();
  private readonly latencies = new Float64Array(WINDOW);
  private latencyCount = 0;
  private commands = 0;
  private readonly outcomes = new Map<string, number>();
  private readonly appendLatencies = new Float64Array(WINDOW);
  private appendCount = 0;
  private snapshots = 0;
  private inspections = 0;
  /** Commands per wall-clock second over the last RATE_SECONDS, so reading the rate never resets it. */
  private readonly perSecond = new Uint32Array(RATE_SECONDS + 1);
  private readonly perSecondStamp = new Float64Array(RATE_SECONDS + 1);

  /** Prometheus metrics, when the node serves them (`--http`). */
  metrics: NodeMetrics | undefined;

  constructor(readonly nodeId: string) {}

  recordCommand(ms: number, reply: Reply, kind = '_unknown', type = '_unknown'): void {
    this.latencies[this.latencyCount % WINDOW] = ms;
    this.latencyCount += 1;
    this.commands += 1;
    const second = Math.floor(Date.now() / 1000);
    const slot = second % this.perSecond.length;
    if (this.perSecondStamp[slot] !== second) {
      this.perSecondStamp[slot] = second;
      this.perSecond[slot] = 0;
    }
    this.perSecond[slot] = this.perSecond[slot]! + 1;
    const outcome = reply.ok ? (reply.duplicate ? 'duplicate' : 'ok') : reply.error.code;
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
    this.metrics?.recordCommand(kind, type, outcome, ms);
  }

  /** The metrics hooks actor hosts report to. */
  readonly hostMetrics = {
    appendLatency: (ms: number): void => {
      this.appendLatencies[this.appendCount % WINDOW] = ms;
      this.appendCount += 1;
    },
    snapshotSaved: (): void => {
      this.snapshots += 1;
    },
  };

  recordInspection(): void {
    this.inspections += 1;
  }

  /** Mean over the last RATE_SECONDS complete seconds (fewer right after start). */
  private commandsPerSecond(now: number): number {
    const current = Math.floor(now / 1000);
    const seconds = Math.max(1, Math.min(RATE_SECONDS, Math.floor((now - this.startedAt) / 1000)));
    let sum = 0;
    for (let slot = 0; slot < this.perSecond.length; slot += 1) {
      const stamp = this.perSecondStamp[slot]!;
      if (stamp < current && stamp >= current - seconds) sum += this.perSecond[slot]!;
    }
    return sum / seconds;
  }

  snapshot(registry: ActorRegistry): Record<string, unknown> {
    const now = Date.now();
    const rate = this.commandsPerSecond(now);
    const latency = percentiles(this.latencies, this.latencyCount);
    const append = percentiles(this.appendLatencies, this.appendCount);
    return {
      node: this.nodeId,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeSeconds: Math.round((now - this.startedAt) / 1000),
      commands: this.commands,
      commandsPerSecond: Math.round(rate * 10) / 10,
      latencyMs: latency,
      appendLatencyMs: append,
      snapshotsSaved: this.snapshots,
      inspections: this.inspections,
      outcomes: Object.fromEntries(this.outcomes),
      activeActors: registry.size,
      mailboxDepth: registry.totalMailboxDepth(),
      ...registry.counters,
      activationMs: Math.round(registry.counters.activationMs * 100) / 100,
    };
  }
}

function percentiles(window: Float64Array, count: number): { p50: number | null; p99: number | null } {
  const samples = Array.from(window.subarray(0, Math.min(count, WINDOW))).sort((a, b) => a - b);
  const pick = (q: number): number | null =>
    samples.length ? Math.round(samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]! * 100) / 100 : null;
  return { p50: pick(0.5), p99: pick(0.99) };
}
