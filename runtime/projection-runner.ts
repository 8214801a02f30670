// Runs the followers of the journal (projections and the export) inside a node. Each follower
// has one owner at a time, by a lease with an epoch (projection-store.ts); the owner reads
// committed events in read order (journal-feed.ts) in batches, and applies each batch and moves
// its checkpoint in one transaction that holds the follower's row locked with its epoch. So a
// batch is applied exactly once whatever crashes: a transaction that did not commit moved
// nothing, and an owner that lost the lease finds another epoch and applies nothing.
// A journal over several databases is followed database by database, each in its own read order
// with its own checkpoint (an actor lives in one database, so its events stay in order); the
// batches of every database are applied in the first database, under the one lease.
import type pg from 'pg';
import type { Logger } from 'pino';
import { FEED_START, lagBehind, readCommitted, type FedEvent, type FeedPosition, type Queryable } from '../persistence/journal-feed.js';
import { checkpointName, type FeedSources, type ProjectionStore } from '../persistence/projection-store.js';
import type { ProjectionHandler } from '../persistence/projections/projection.js';

/** Something that follows the journal: a projection's tables, or the stream it is exported to. */
export interface Follower {
  readonly name: string;
  /** Called once by the owner before its first batch (e.g. to create a stream). */
  prepare?(): Promise<void>;
  /** Applies a batch inside the runner's transaction; throwing rolls it back (retried later). */
  apply(events: readonly FedEvent[], client: pg.PoolClient): Promise<void>;
}

export interface ProjectionRunnerOptions {
  /** The first database: checkpoints, leases and read models. */
  readonly pool: pg.Pool;
  /** The journal's databases, in layout order (default: the first alone). */
  readonly sources?: FeedSources;
  readonly store: ProjectionStore;
  readonly followers: readonly Follower[];
  /** Lag each follower is allowed (ms), by name. */
  readonly budgets: ReadonlyMap<string, number>;
  readonly nodeId: string;
  readonly incarnation: string;
  readonly leaseMs: number;
  readonly logger: Logger;
  /** Most events in one batch (default 1000). */
  readonly batchSize?: number;
  /** How long an owner that found nothing new waits before it looks again (a nudge wakes it). */
  readonly idleMs?: number;
  /**
   * Least time between the starts of two batches that are not full (default: from the
   * follower's lag budget, gapFor). A full batch goes on at once.
   */
  readonly minGapMs?: number;
}

/**
 * The least time between two batches of a follower with this lag budget: an eighth of it,
 * between 50 and 250 ms. Under load every commit nudges; without a spacing each batch would
 * carry an event or two, and a batch's cost is mostly per row it writes: the `stock` read model
 * changes a row per SKU a batch touches, however many of its events, and a reservation opened
 * and closed in one batch never reaches the side table, so at 1000 SKUs a batch of 1000 events
 * cost PostgreSQL 5 µs per event where one of 200 cost 14. Lag stays well inside the budget.
 */
export const gapFor = (budgetMs: number): number => Math.min(250, Math.max(50, Math.floor(budgetMs / 8)));

const DEFAULT_BATCH_SIZE = 1_000;

interface Held {
  readonly epoch: number;
  prepared: Promise<void> | undefined;
  /** By source: where the last batch left it, and whether it is over budget now (logged once when it crossed, once when it came back). */
  readonly sources: Map<number, { checkpoint: FeedPosition; lagging: boolean }>;
}

/** A stretch of the journal read from one source: shared by the followers of this process. */
interface SharedRead {
  readonly after: FeedPosition;
  readonly events: Promise<readonly FedEvent[]>;
  settled?: readonly FedEvent[];
}

export class ProjectionRunner {
  private readonly held = new Map<string, Held>();
  private stopped = false;
  /** The lease cycle running now, if one is. */
  private cycling: Promise<void> | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private wakers: (() => void)[] = [];
  /** Nudges so far: a follower that waited out its gap looks whether commits came meanwhile. */
  private nudges = 0;
  private stopWakers: (() => void)[] = [];
  private readonly loops: Promise<void>[] = [];
  /**
   * The last batch read from the journal, shared by this process's followers: they usually
   * stand at the same place, and each read and decoded every event again. Any stretch of a read
   * is exactly what the journal holds there for good (it was below the horizon: committed, and
   * nothing can commit before it later), so a follower standing at its start, or inside it,
   * takes the rest of it instead of reading. The followers start their batches together (one
   * nudge wakes them all), so a read still under way is shared too.
   */
  private readonly lastRead = new Map<number, SharedRead>();
  private readonly sources: FeedSources;

  private readonly batchSize: number;

  constructor(private readonly options: ProjectionRunnerOptions) {
    this.sources = options.sources ?? [options.pool];
    this.batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  }

  /** The lag a follower is allowed (ms). */
  private budgetOf(name: string): number {
    return this.options.budgets.get(name) ?? 2_000;
  }

  async start(): Promise<void> {
    await this.options.store.ensure(this.options.budgets, this.sources.length);
    await this.leaseCycle();
    this.leaseTimer = setInterval(() => void this.leaseCycle(), Math.max(200, Math.floor(this.options.leaseMs / 3)));
    this.leaseTimer.unref();
    this.lagTimer = setInterval(() => void this.watchLag(), 1_000);
    this.lagTimer.unref();
    for (const follower of this.options.followers) for (const source of this.sources.keys()) this.loops.push(this.follow(follower, source));
  }

  /** New events were committed here: owners look at once instead of at their next poll. */
  nudge(): void {
    this.nudges += 1;
    const wakers = this.wakers;
    this.wakers = [];
    for (const wake of wakers) wake();
  }

  /** The followers this process owns now. */
  owned(): string[] {
    return [...this.held.keys()];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    if (this.lagTimer) clearInterval(this.lagTimer);
    this.nudge();
    for (const wake of [...this.stopWakers]) wake();
    await Promise.all(this.loops);
    // A cycle under way may still take a follower: let it end, then give everything back.
    await this.cycling;
    for (const [name, held] of this.held) await this.options.store.release(name, this.options.incarnation, held.epoch).catch(() => undefined);
    this.held.clear();
  }

  private leaseCycle(): Promise<void> {
    // One at a time: a cycle held up by a slow database must not pile more up behind it.
    if (this.stopped || this.cycling) return this.cycling ?? Promise.resolve();
    this.cycling = this.leaseCycleOnce().finally(() => {
      this.cycling = undefined;
    });
    return this.cycling;
  }

  private async leaseCycleOnce(): Promise<void> {
    const { store, nodeId, incarnation, leaseMs, logger } = this.options;
    for (const { name } of this.options.followers) {
      try {
        const held = this.held.get(name);
        if (held) {
          if (!(await store.renew(name, incarnation, held.epoch, leaseMs))) {
            this.held.delete(name);
            logger.warn({ projection: name }, 'projection lease lost');
          }
          continue;
        }
        const epoch = await store.acquire(name, nodeId, incarnation, leaseMs);
        if (epoch !== null) {
          this.held.set(name, { epoch, prepared: undefined, sources: new Map() });
          logger.info({ projection: name, epoch }, 'projection taken');
          this.nudge();
        }
      } catch (error) {
        logger.warn({ projection: name, err: (error as Error).message }, 'projection lease cycle failed; retrying');
      }
    }
  }

  private async follow(follower: Follower, source: number): Promise<void> {
    const label = checkpointName(follower.name, source);
    const idleMs = this.options.idleMs ?? 100;
    const minGapMs = this.options.minGapMs ?? gapFor(this.budgetOf(follower.name));
    // A failing follower (database away, JetStream disabled) backs off up to 10 s and says so
    // once when it starts failing, then every minute, and once when it recovers.
    let failures = 0;
    let lastWarned = 0;
    while (!this.stopped) {
      let applied = 0;
      const began = performance.now();
      const nudgesBefore = this.nudges;
      try {
        applied = await this.batch(follower, source);
        if (failures > 0) this.options.logger.info({ projection: label, failures }, 'projection batches succeed again');
        failures = 0;
      } catch (error) {
        failures += 1;
        if (failures === 1 || Date.now() - lastWarned > 60_000) {
          lastWarned = Date.now();
          this.options.logger.warn({ projection: label, failures, err: (error as Error).message }, 'projection batch failed; retrying');
        }
        await this.backOff(Math.min(10_000, 250 * 2 ** Math.min(failures, 6)));
        continue;
      }
      if (applied >= this.batchSize) continue;
      const gap = minGapMs - (performance.now() - began);
      if (gap > 0) await this.backOff(gap);
      // Commits since the batch began: go on at once; else wait for the next one, or a while.
      if (this.nudges === nudgesBefore) await this.idle(idleMs);
    }
  }

  /** Waits `ms`, or until stop: new commits do not cut a back-off short. */
  private backOff(ms: number): Promise<void> {
    return this.wait(ms, 'stopWakers');
  }

  /** Waits `ms`, or until new commits (a nudge) or stop. */
  private idle(ms: number): Promise<void> {
    return this.wait(ms, 'wakers');
  }

  /** Waits `ms`, or until one of `list`'s wakers is called; the waker leaves the list either way. */
  private wait(ms: number, list: 'wakers' | 'stopWakers'): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this[list] = this[list].filter((w) => w !== wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this[list].push(wake);
    });
  }

  /** One batch from `source`, if this process owns the follower: how many events it applied. */
  private async batch(follower: Follower, source: number): Promise<number> {
    const held = this.held.get(follower.name);
    if (!held) return 0;
    // Once per ownership, whichever source's batch comes first; a failure is tried again.
    held.prepared ??= Promise.resolve(follower.prepare?.()).catch((error: unknown) => {
      held.prepared = undefined;
      throw error;
    });
    await held.prepared;
    const { pool, store } = this.options;
    // Another database's events are read before the batch's transaction opens: they never
    // change below the horizon, and a database that is slow or away must not hold the
    // projection's row locked (every other database's batches wait on it). Checked under the
    // lock that the checkpoint is still where the read began.
    let readAhead: { readonly from: FeedPosition; readonly events: readonly FedEvent[] } | undefined;
    if (source > 0) {
      const from = held.sources.get(source)?.checkpoint ?? (await store.row(follower.name, pool, source))?.checkpoint ?? FEED_START;
      readAhead = { from, events: (await this.readFromLast(source, from)) ?? (await this.read(source, this.sources[source]!, from)) };
    }
    const client = await pool.connect();
    let broken: Error | undefined;
    const onError = (error: Error): void => {
      broken ??= error;
    };
    client.on('error', onError);
    try {
      const checkpoint = await store.beginBatch(client, follower.name, held.epoch, source);
      if (!checkpoint) {
        await client.query('ROLLBACK');
        if (this.held.get(follower.name) === held) {
          this.held.delete(follower.name);
          this.options.logger.warn({ projection: follower.name }, 'projection taken by another process; stopped following it here');
        }
        return 0;
      }
      if (readAhead && (readAhead.from.tx !== checkpoint.tx || readAhead.from.position !== checkpoint.position)) {
        // Moved meanwhile (a rebuild swapped it): read again from where it is now.
        await client.query('COMMIT');
        this.placed(held, source, checkpoint);
        return 0;
      }
      // The first database's events are read in the batch's own transaction.
      const events = readAhead?.events ?? (await this.readFromLast(source, checkpoint)) ?? (await this.read(source, client, checkpoint));
      if (events.length === 0) {
        await client.query('COMMIT');
        this.placed(held, source, checkpoint);
        return 0;
      }
      await follower.apply(events, client);
      const last = events[events.length - 1]!;
      await store.commitBatch(client, follower.name, last, events.length, source);
      this.placed(held, source, { tx: last.tx, position: last.position });
      return events.length;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  private placed(held: Held, source: number, checkpoint: FeedPosition): void {
    const at = held.sources.get(source);
    if (at) at.checkpoint = checkpoint;
    else held.sources.set(source, { checkpoint, lagging: false });
  }

  private read(source: number, db: Queryable, after: FeedPosition): Promise<readonly FedEvent[]> {
    const events = readCommitted(db, after, this.batchSize);
    const read: SharedRead = { after, events };
    this.lastRead.set(source, read);
    events.then(
      (done) => {
        read.settled = done;
      },
      () => {
        if (this.lastRead.get(source) === read) this.lastRead.delete(source);
      },
    );
    return events;
  }

  /**
   * What the last read of `source` holds after `at`, when `at` is where it started (waiting for
   * it, if it is under way) or one of its events; undefined otherwise, or when nothing is left.
   */
  private async readFromLast(source: number, at: FeedPosition): Promise<readonly FedEvent[] | undefined> {
    const last = this.lastRead.get(source);
    if (!last) return undefined;
    const same = (p: FeedPosition): boolean => p.tx === at.tx && p.position === at.position;
    let events: readonly FedEvent[];
    let from: number;
    if (same(last.after)) {
      // Another follower's read, from the same place: its failure is only a reason to read here.
      events = await last.events.catch(() => []);
      from = 0;
    } else {
      if (!last.settled) return undefined;
      events = last.settled;
      from = events.findIndex(same) + 1;
      if (from === 0) return undefined;
    }
    return from < events.length ? events.slice(from) : undefined;
  }

  /** Logs, once per episode, a follower this process owns going over its lag budget in a source, and coming back. */
  private async watchLag(): Promise<void> {
    for (const [name, held] of this.held) {
      const budget = this.budgetOf(name);
      for (const [source, at] of held.sources) {
        const projection = checkpointName(name, source);
        try {
          const { lagMs, lagEvents } = await lagBehind(this.sources[source]!, at.checkpoint, 10_000);
          if (lagMs > budget && !at.lagging) {
            at.lagging = true;
            this.options.logger.warn({ projection, lagMs, lagEvents, budgetMs: budget }, 'projection over its lag budget');
          } else if (lagMs <= budget && at.lagging) {
            at.lagging = false;
            this.options.logger.info({ projection, lagMs, budgetMs: budget }, 'projection back within its lag budget');
          }
        } catch {
          // the database is away: the batches say so
        }
      }
    }
  }
}

/** A projection's handler as a follower: its batches applied to its live tables. */
export const projectionFollower = (handler: ProjectionHandler): Follower => ({
  name: handler.name,
  apply: (events, client) => handler.apply(events, client, handler.tables),
});
