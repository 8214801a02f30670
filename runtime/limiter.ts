// A small counting semaphore with a bounded queue: work that reads the journal on behalf of
// requests anyone may send (inspections, queries of idle actors) waits its turn here, so a
// flood of them cannot starve command appends of connections.

export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  /** `maxWaiting`: beyond this many queued, `tryRun` refuses at once. */
  constructor(
    private readonly limit: number,
    private readonly maxWaiting = Number.POSITIVE_INFINITY,
  ) {}

  /** Runs `task` when a slot is free; callers queue in order. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active += 1;
    try {
      return await task();
    } finally {
      this.active -= 1;
      this.waiting.shift()?.();
    }
  }

  /** As `run`, or null at once when the queue is full. */
  tryRun<T>(task: () => Promise<T>): Promise<T> | null {
    if (this.active >= this.limit && this.waiting.length >= this.maxWaiting) return null;
    return this.run(task);
  }
}
