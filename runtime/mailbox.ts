// One actor's mailbox: a bounded FIFO drained by a single consumer, so the actor handles its
// messages one after the other in arrival order. Consecutive messages waiting together are
// handed over as one batch (the actor may then journal them in one commit). A full mailbox
// refuses at once (OVERLOADED) rather than letting latency grow without bound.

export type Task = () => Promise<void>;

type Item<M> = { readonly task: Task } | { readonly message: M };

export class Mailbox<M = never> {
  private readonly queue: Item<M>[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly capacity: number,
    /** Handles consecutive messages in order; reports its own failures. */
    private readonly deliver: (batch: M[]) => Promise<void> = async () => undefined,
    private readonly maxBatch = 64,
  ) {}

  /** False when full: the task was not taken. */
  offer(task: Task): boolean {
    return this.push({ task });
  }

  /** False when full: the message was not taken. */
  offerMessage(message: M): boolean {
    return this.push({ message });
  }

  /** Messages waiting, plus the ones being handled. */
  get depth(): number {
    return this.queue.length + this.inHand;
  }

  get isIdle(): boolean {
    return !this.running && this.queue.length === 0;
  }

  whenIdle(): Promise<void> {
    if (this.isIdle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private inHand = 0;

  private push(item: Item<M>): boolean {
    if (this.queue.length >= this.capacity) return false;
    this.queue.push(item);
    if (!this.running) void this.drain();
    return true;
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let item = this.queue.shift(); item; item = this.queue.shift()) {
        if ('task' in item) {
          this.inHand = 1;
          // A task reports its own failures; one that throws must not stall the mailbox.
          await item.task().catch(() => undefined);
          continue;
        }
        const batch = [item.message];
        while (batch.length < this.maxBatch && this.queue[0] !== undefined && 'message' in this.queue[0]) {
          batch.push((this.queue.shift() as { message: M }).message);
        }
        this.inHand = batch.length;
        await this.deliver(batch).catch(() => undefined);
      }
    } finally {
      this.inHand = 0;
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }
}
