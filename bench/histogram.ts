// Latency histogram with 1 % wide buckets from 1 µs to ~20 min: fixed memory, mergeable
// across load-generator processes, quantiles good to 1 %.

const GROWTH = Math.log(1.01);
const BUCKETS = 2200;

export interface HistogramData {
  readonly buckets: [number, number][];
  readonly count: number;
  readonly sumMs: number;
  readonly maxMs: number;
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sumMs = 0;
  maxMs = 0;

  record(ms: number): void {
    const us = Math.max(1, ms * 1000);
    const bucket = Math.min(BUCKETS - 1, Math.ceil(Math.log(us) / GROWTH));
    this.counts[bucket] = (this.counts[bucket] ?? 0) + 1;
    this.count += 1;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  /** The latency (ms) below which a fraction `q` of the samples fall; NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i += 1) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return Math.min(this.maxMs, Math.exp(i * GROWTH) / 1000);
    }
    return this.maxMs;
  }

  merge(data: HistogramData): void {
    for (const [bucket, n] of data.buckets) this.counts[bucket] = (this.counts[bucket] ?? 0) + n;
    this.count += data.count;
    this.sumMs += data.sumMs;
    this.maxMs = Math.max(this.maxMs, data.maxMs);
  }

  toData(): HistogramData {
    const buckets: [number, number][] = [];
    this.counts.forEach((n, i) => {
      if (n > 0) buckets.push([i, n]);
    });
    return { buckets, count: this.count, sumMs: this.sumMs, maxMs: this.maxMs };
  }
}
