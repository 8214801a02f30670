// The actors a node currently hosts: activation on first message, a mailbox each, and
// passivation of idle actors (after a timeout, or least recently used beyond a cap).
import type { Logger } from 'pino';
import type { ActorKind } from '../actors/kind.js';
import { refKey, type ActorRef } from '../persistence/journal.js';
import { ActorHost, isDeferred, type ActorHostOptions, type Handled, type Incoming } from './actor-host.js';
import { errorReply, type Reply } from './envelope.js';
import { Mailbox } from './mailbox.js';
import { Limiter } from './limiter.js';
import { initialState } from '../actors/state.js';

export interface RegistryOptions {
  readonly kinds: ReadonlyMap<string, ActorKind>;
  readonly host: ActorHostOptions;
  readonly logger: Logger;
  readonly mailboxCapacity: number;
  /** An actor idle this long is passivated. */
  readonly idleMs: number;
  /** Beyond this many active actors, the least recently used idle ones are passivated. */
  readonly maxActive: number;
  /** Most consecutive messages an actor decides together and journals in one commit. */
  readonly maxBatch?: number;
  /** Called when an actor's state has been loaded (a saga resumes from here). */
  readonly onActivated?: (host: ActorHost) => void;
  /** True while something outside the mailbox still works for the actor (a saga step in flight). */
  readonly busyOutside?: (ref: ActorRef) => boolean;
}

/** How a message is answered; null when its outcome is unknown (see `Handled`): the sender retries. */
export type Respond = (reply: Reply | null) => void;

/** A message waiting in a mailbox, and how to answer it. */
interface Letter {
  readonly incoming: Incoming;
  readonly respond: Respond;
}

class Entry {
  host: ActorHost | null = null;
  lastUsed = 0;
  readonly mailbox: Mailbox<Letter>;

  constructor(
    readonly ref: ActorRef,
    capacity: number,
    maxBatch: number,
    deliver: (entry: Entry, batch: Letter[]) => Promise<void>,
  ) {
    this.mailbox = new Mailbox<Letter>(capacity, (batch) => deliver(this, batch), maxBatch);
  }
}

export interface ActiveActor {
  readonly kind: string;
  readonly id: string;
  readonly seq: number;
  readonly mailboxDepth: number;
  readonly messages: number;
  readonly activatedAt: string;
  readonly lastUsedAt: string;
}

export interface RecoveryCounters {
  activations: number;
  passivations: number;
  eventsReplayed: number;
  snapshotHits: number;
  snapshotMisses: number;
  snapshotsRejected: number;
  activationMs: number;
}

export class ActorRegistry {
  /** Insertion order is recency order: a used entry is moved to the end. */
  private readonly entries = new Map<string, Entry>();
  private sweeper: NodeJS.Timeout | undefined;
  readonly counters: RecoveryCounters = {
    activations: 0,
    passivations: 0,
    eventsReplayed: 0,
    snapshotHits: 0,
    snapshotMisses: 0,
    snapshotsRejected: 0,
    activationMs: 0,
  };

  constructor(private readonly options: RegistryOptions) {}

  start(): void {
    const period = Math.max(50, Math.min(this.options.idleMs / 2, 10_000));
    this.sweeper = setInterval(() => this.passivateIdle(), period);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Queries of actors that are not active look at the journal first, a few at a time. */
  private readonly unseenProbes = new Limiter(4, 1_000);

  /** Queues one message for an actor; `respond` is called exactly once. */
  dispatch(ref: ActorRef, incoming: Incoming, respond: Respond): void {
    const kind = this.options.kinds.get(ref.kind);
    if (kind?.queries.has(incoming.envelope.type) && !this.entries.has(refKey(ref))) {
      this.queryInactive(ref, kind, incoming, respond);
      return;
    }
    this.enqueue(ref, incoming, respond);
  }

  /**
   * A query of an actor that is not in memory: one with no journaled event is in its initial
   * state, answered from that without activating it (a flood of queries for made-up ids must
   * not fill memory with empty actors); any other is activated as for a command.
   */
  private queryInactive(ref: ActorRef, kind: ActorKind, incoming: Incoming, respond: Respond): void {
    const parsed = kind.parseCommand(incoming.envelope.type, incoming.envelope.payload);
    if (!parsed.ok) return respond(errorReply(parsed.code, parsed.message));
    const probe = this.unseenProbes.tryRun(() => this.options.host.journal.headSeq(ref));
    if (!probe) return respond(errorReply('OVERLOADED', 'too many queries of idle actors at once; nothing was applied, retry later'));
    probe.then(
      (head) => {
        if (head > 0 || this.entries.has(refKey(ref))) return this.enqueue(ref, incoming, respond);
        respond({ ok: true, duplicate: false, seq: 0, events: [], state: kind.view(initialState(kind), parsed.command) });
      },
      (error: Error) => respond(errorReply('UNAVAILABLE', `journal unavailable: ${error.message}; nothing was applied`)),
    );
  }

  private enqueue(ref: ActorRef, incoming: Incoming, respond: Respond): void {
    const entry = this.entryFor(ref);
    if (!entry.mailbox.offerMessage({ incoming, respond })) {
      respond(errorReply('OVERLOADED', `mailbox of ${refKey(ref)} is full (${entry.mailbox.capacity}); nothing was applied, retry later`));
    }
  }

  /** The mailbox's consumer: the actor handles the messages waiting together as one batch. */
  private async deliver(entry: Entry, batch: readonly Letter[]): Promise<void> {
    let handled: Handled[];
    let host: ActorHost;
    try {
      host = await this.ensureActive(entry);
    } catch (error) {
      // Nothing was decided: the actor could not even be loaded.
      this.drop(entry);
      this.options.logger.error({ actor: refKey(entry.ref), err: error }, 'actor could not be activated');
      const reply = errorReply('UNAVAILABLE', `actor unavailable: ${(error as Error).message}; nothing was applied`);
      for (const letter of batch) letter.respond(reply);
      return;
    }
    try {
      handled = await host.handleBatch(batch.map((letter) => letter.incoming));
      if (host.broken) this.drop(entry); // memory may be behind the journal: reload on next use
    } catch (error) {
      // A bug, not an outage: what was committed is unknown, so nothing is claimed about it.
      this.drop(entry);
      this.options.logger.error({ actor: refKey(entry.ref), messageIds: batch.map((l) => l.incoming.envelope.id), err: error }, 'message handling failed');
      handled = batch.map(() => null);
    }
    batch.forEach((letter, i) => {
      const answer = handled[i]!;
      // A saga's reply comes when it settles; the mailbox moves on to the saga's answers meanwhile.
      if (answer !== null && isDeferred(answer)) void answer.deferred.then(letter.respond);
      else letter.respond(answer);
    });
  }

  /** The host if the actor is active and idle enough to read consistently; never activates. */
  activeHost(ref: ActorRef): { host: ActorHost; mailboxDepth: number } | null {
    const entry = this.entries.get(refKey(ref));
    return entry?.host ? { host: entry.host, mailboxDepth: entry.mailbox.depth } : null;
  }

  /** Activates the actor if it is not (e.g. to resume its saga after a restart). */
  activate(ref: ActorRef): Promise<void> {
    return this.runInMailbox(ref, () => undefined);
  }

  /** Runs `task` on the actor's own mailbox, so it sees state between two messages. */
  runInMailbox<T>(ref: ActorRef, task: (host: ActorHost) => Promise<T> | T): Promise<T> {
    const entry = this.entryFor(ref);
    return new Promise<T>((resolve, reject) => {
      const taken = entry.mailbox.offer(async () => {
        try {
          resolve(await task(await this.ensureActive(entry)));
        } catch (error) {
          reject(error);
        }
      });
      if (!taken) reject(new Error(`mailbox of ${refKey(ref)} is full`));
    });
  }

  list(): ActiveActor[] {
    const actors: ActiveActor[] = [];
    for (const entry of this.entries.values()) {
      if (!entry.host) continue;
      actors.push({
        kind: entry.ref.kind,
        id: entry.ref.id,
        seq: entry.host.seq,
        mailboxDepth: entry.mailbox.depth,
        messages: entry.host.messagesHandled,
        activatedAt: entry.host.activatedAt.toISOString(),
        lastUsedAt: new Date(entry.lastUsed).toISOString(),
      });
    }
    return actors;
  }

  totalMailboxDepth(): number {
    let depth = 0;
    for (const entry of this.entries.values()) depth += entry.mailbox.depth;
    return depth;
  }

  /**
   * Unloads the actors `which` selects, after their mailboxes empty: used when their shard is
   * handed to another node (in-flight messages finish here, a snapshot saves replay there).
   */
  async unloadWhere(which: (ref: ActorRef) => boolean): Promise<number> {
    for (;;) {
      const busy = [...this.entries.values()].filter((e) => which(e.ref) && !e.mailbox.isIdle);
      if (busy.length === 0) break;
      await Promise.all(busy.map((e) => e.mailbox.whenIdle()));
    }
    const leaving = [...this.entries].filter(([, e]) => which(e.ref));
    // The next owner starts from these instead of a long replay; losing one costs only time.
    await Promise.all(leaving.map(([, e]) => e.host?.snapshotNow().catch(() => undefined)));
    for (const [key, entry] of leaving) {
      this.entries.delete(key);
      if (entry.host) this.counters.passivations += 1;
      this.drop(entry);
    }
    return leaving.length;
  }

  /** Resolves when every mailbox is empty and nothing is being handled. */
  async drain(): Promise<void> {
    for (;;) {
      const busy = [...this.entries.values()].filter((e) => !e.mailbox.isIdle);
      if (busy.length === 0) return;
      await Promise.all(busy.map((e) => e.mailbox.whenIdle()));
    }
  }

  private entryFor(ref: ActorRef): Entry {
    const key = refKey(ref);
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
    } else {
      entry = new Entry(ref, this.options.mailboxCapacity, this.options.maxBatch ?? 64, (e, batch) => this.deliver(e, batch));
    }
    entry.lastUsed = Date.now();
    this.entries.set(key, entry);
    if (this.entries.size > this.options.maxActive) this.passivateOverCap(key);
    return entry;
  }

  private async ensureActive(entry: Entry): Promise<ActorHost> {
    if (entry.host) return entry.host;
    const kind = this.options.kinds.get(entry.ref.kind);
    if (!kind) throw new Error(`no actor kind ${entry.ref.kind}`);
    const started = performance.now();
    const { host, loaded } = await ActorHost.activate(entry.ref, kind, this.options.host);
    const c = this.counters;
    c.activations += 1;
    c.eventsReplayed += loaded.eventsReplayed;
    if (loaded.snapshotSeq > 0) c.snapshotHits += 1;
    else if (loaded.seq > 0) c.snapshotMisses += 1;
    c.snapshotsRejected += loaded.rejectedSnapshots.length;
    c.activationMs += performance.now() - started;
    entry.host = host;
    this.options.onActivated?.(host);
    return host;
  }

  private drop(entry: Entry): void {
    entry.host?.abandon();
    entry.host = null;
  }

  private passivable(entry: Entry): boolean {
    return entry.mailbox.isIdle && !entry.host?.hasWaiters && !this.options.busyOutside?.(entry.ref);
  }

  private passivateIdle(): void {
    const cutoff = Date.now() - this.options.idleMs;
    for (const [key, entry] of this.entries) {
      if (entry.lastUsed > cutoff) break; // recency order: the rest are newer
      if (this.passivable(entry)) this.passivate(key);
    }
  }

  /** Never the entry being handed out (`keep`): its message is about to enter its mailbox. */
  private passivateOverCap(keep: string): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.options.maxActive) return;
      if (key !== keep && this.passivable(entry)) this.passivate(key);
    }
  }

  private passivate(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    if (entry.host) this.counters.passivations += 1;
  }
}
