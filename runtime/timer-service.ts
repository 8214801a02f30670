// Fires the due timers of the shards this node holds: each as the internal command its row
// names, delivered to the actor like any other command, under an id fixed by the timer (actor,
// key, deadline). A timer fired twice (a crash between the commit and the row's removal, two
// owners around a takeover) is one command delivered twice: the actor's dedupe answers the
// second, so a timer fires exactly once in effect. The firing's own event removes the row in
// its commit; a firing that changed nothing (the hold was closed meanwhile) removes it here.
// Timers are found by (shard, due_at), never loaded all at once: a node with a million pending
// timers starts as fast as one with none.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { DueTimer, Journal } from '../persistence/journal.js';
import type { Envelope, Reply } from './envelope.js';

export interface TimerServiceOptions {
  readonly journal: Journal;
  readonly logger: Logger;
  /** The shards this node holds now. */
  heldShards(): number[];
  /** Hands a command to the actor (internal: only the runtime sends timer commands). */
  deliver(timer: DueTimer, envelope: Envelope): Promise<Reply | null>;
  /** How often to look for due timers (default 200 ms). */
  readonly pollMs?: number;
  /** At most this many timers per look (default 500); a full look goes on at once. */
  readonly batch?: number;
}

/** The timer's command id: the same for the same timer every time, 128 characters at most. */
/** Includes the seq of the event that set the timer: a later hold of the same key with the same deadline is another timer. */
export const timerMessageId = (timer: DueTimer): string =>
  `ppos:timer:${createHash('sha256').update(`${timer.ref.kind}/${timer.ref.id}/${timer.key}/${timer.dueAt}/${timer.setSeq}`).digest('base64url').slice(0, 32)}`;

const transient = (reply: Reply | null): boolean => reply === null || (!reply.ok && (reply.error.code === 'UNAVAILABLE' || reply.error.code === 'OVERLOADED'));

export class TimerService {
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  fired = 0;

  constructor(private readonly options: TimerServiceOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const batch = this.options.batch ?? 500;
    let failing = false;
    while (!this.stopped) {
      let goOn = false;
      try {
        // Due by this node's clock, the one the deadlines were set by (a command's received time).
        const due = await this.options.journal.dueTimers(this.options.heldShards(), Date.now(), batch);
        const settled = await Promise.all(due.map((timer) => this.fire(timer)));
        // A full look that settled every timer goes on at once; one that was told "not now"
        // (the journal away, the shard moving) waits, or it would ask again at once, for ever.
        goOn = due.length === batch && settled.every(Boolean);
        if (failing) this.options.logger.info('due timers can be read again');
        failing = false;
      } catch (error) {
        if (!failing) this.options.logger.warn({ err: (error as Error).message }, 'cannot read due timers; retrying');
        failing = true;
      }
      if (!goOn) await this.pause(this.options.pollMs ?? 200);
    }
  }

  /** Fires one timer; true when it was answered for good (its row is gone), false for "not now". */
  private async fire(timer: DueTimer): Promise<boolean> {
    const id = timerMessageId(timer);
    const envelope: Envelope = { id, type: timer.command.type, payload: timer.command.payload };
    const reply = await this.options.deliver(timer, envelope);
    // Not answered, or not now: the row stays and a later look fires it again (same id).
    if (transient(reply)) return false;
    this.fired += 1;
    if (!reply!.ok) this.options.logger.warn({ actor: `${timer.ref.kind}/${timer.ref.id}`, timer: timer.key, messageId: id, error: reply!.error }, 'a timer fired and was refused');
    await this.options.journal.dropFiredTimer(timer);
    return true;
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }
}
