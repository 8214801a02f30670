// Group commit: appends that arrive together share one statement and one commit.
// Appends queued during one turn of the event loop (or while every flush slot is busy)
// leave together, so batching costs no added latency when the journal is idle.

export interface GroupCommitOptions {
  /** Most appends in one commit. */
  readonly maxBatch: number;
  /** Most commits in flight at once (each uses one connection). */
  readonly maxInFlight: number;
  /** Extra wait before a flush, to collect more appends; 0 = only what is already queued. */
  readonly lingerMs: number;
  /** Told of each commit: how many appends it carried and how long it took (metrics). */
  readonly onFlushed?: (size: number, ms: number) => void;
}

interface Pending<Req, Res> {
  readonly request: Req;
  resolve(result: Res): void;
  reject(error: unknown): void;
}

/** `flush` must settle with one result (or Error) per request, in order. */
export type FlushBatch<Req, Res> = (requests: readonly Req[]) => Promise<readonly (Res | Error)[]>;

export class GroupCommitter<Req, Res> {
  private readonly queue: Pending<Req, Res>[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly flushBatch: FlushBatch<Req, Res>,
    private readonly options: GroupCommitOptions,
  ) {}

  submit(request: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.schedule();
    });
  }

  get queued(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.flushSome();
    };
    if (this.options.lingerMs > 0) setTimeout(run, this.options.lingerMs);
    else setImmediate(run);
  }

  private flushSome(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.inFlight += 1;
      void this.flushOne(batch);
      // Leave the remaining slots for appends that arrive while this batch commits.
      if (this.queue.length < this.options.maxBatch) break;
    }
  }

  private async flushOne(batch: Pending<Req, Res>[]): Promise<void> {
    try {
      const began = performance.now();
      const results = await this.flushBatch(batch.map((p) => p.request));
      this.options.onFlushed?.(batch.length, performance.now() - began);
      batch.forEach((pending, i) => {
        const result = results[i];
        if (result instanceof Error) pending.reject(result);
        else if (result === undefined) pending.reject(new Error('group commit returned no result for an append'));
        else pending.resolve(result);
      });
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    } finally {
      this.inFlight -= 1;
      this.schedule();
    }
  }
}
