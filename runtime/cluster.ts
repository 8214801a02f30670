// Shard ownership across nodes: leases in PostgreSQL, renewed on a heartbeat; the desired owner
// of each shard by rendezvous hashing over the live nodes; clean handoffs; takeover of a dead
// node's shards after its leases expire.
//
// Safety: a node applies commands for a shard only until `validUntil`, which it computes from
// its own monotonic clock as (time it *sent* the renewal) + lease - margin. The database sets
// expiry to (its now() when the renewal ran) + lease, which is later, and another node can take
// the shard only after that expiry by the database's clock. So with clock rates that agree
// within the margin, the old owner has stopped before a new one starts. And if they do not (a
// paused process, a wild clock), the journal still refuses the old owner: every append carries
// the lease epoch and is fenced in the same statement (pg-journal.ts).
//
// Each process is one incarnation of its node id. A process started with an id already in use
// takes the id over (a supervisor restarting a node whose old process is stuck but alive): the
// old process finds out at its next heartbeat, gives up everything and reports it (`onReplaced`);
// meanwhile the new one's acquisitions bump every epoch, so the old one cannot append.
import type { Logger } from 'pino';
import type { ActorRef } from '../persistence/journal.js';
import type { GrantedLease, LeaseStore } from '../persistence/leases.js';
import type { Fence, Ownership, Route } from './ownership.js';
import { desiredOwner, shardOf } from './sharding.js';

export interface ClusterOptions {
  readonly nodeId: string;
  /** This process's incarnation: what other nodes forward to, and what its leases name. */
  readonly incarnation: string;
  readonly leases: LeaseStore;
  readonly shardCount: number;
  readonly leaseMs: number;
  readonly renewMs: number;
  readonly logger: Logger;
  /** Shards just taken: resume their open sagas. */
  readonly onAcquired: (shards: readonly number[]) => void;
  /** Shards about to be given up (or already lost): finish their messages, snapshot, unload. */
  readonly unload: (shards: ReadonlySet<number>) => Promise<void>;
  /** This node handed shards over or took some: tell the others to read the lease table now. */
  readonly onChanged?: () => void;
  /** Another process took this node id over: this one holds nothing any more and must stop. */
  readonly onReplaced?: (message: string) => void;
  /** Nudges from other nodes run a cycle at most this often (a flood must not hammer the database). */
  readonly minNudgeIntervalMs?: number;
}

/** Another process registered under this node id: this one has been fenced out. */
export class ReplacedError extends Error {}

interface Held {
  readonly epoch: number;
  /** performance.now() after which this node no longer acts for the shard. */
  validUntil: number;
  handingOff: boolean;
}

export interface ShardView {
  readonly shard: number;
  readonly owner: string | null;
  readonly epoch: number;
}

interface Owner {
  readonly node: string;
  readonly incarnation: string | null;
}

export class ClusterOwnership implements Ownership {
  private readonly held = new Map<number, Held>();
  /** Lease owners as last read, for forwarding (null: expired or free). */
  private owners: (Owner | null)[];
  private timer: NodeJS.Timeout | undefined;
  private cycling: Promise<void> | undefined;
  /** A nudge came in while a cycle ran: run one more after it, so no change goes unread. */
  private cycleAgain = false;
  private draining = false;
  private replaced = false;
  private liveNodes: string[] = [];
  private lastNudgedCycle = 0;
  private nudgeTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ClusterOptions) {
    this.owners = new Array<Owner | null>(options.shardCount).fill(null);
  }

  private get margin(): number {
    return Math.max(500, this.options.leaseMs / 5);
  }

  async start(): Promise<void> {
    const { leases, nodeId, incarnation, leaseMs, logger } = this.options;
    await leases.ensureShards(this.options.shardCount);
    const replaced = await leases.register(nodeId, incarnation, leaseMs);
    if (replaced) {
      logger.warn(
        { replacedIncarnation: replaced.incarnation, heartbeatAgoMs: replaced.heartbeatAgoMs },
        `node id ${nodeId} was in use by a live process; it is fenced out and will stop`,
      );
    }
    await this.cycle();
    this.timer = setInterval(() => void this.cycle(), this.options.renewMs);
    this.timer.unref();
  }

  route(ref: ActorRef): Route {
    const shard = shardOf(ref, this.options.shardCount);
    const held = this.held.get(shard);
    if (held && !held.handingOff && performance.now() < held.validUntil) return { local: true, shard, epoch: held.epoch };
    const owner = this.owners[shard];
    const forwardTo = owner?.incarnation ?? null;
    return { local: false, shard, forwardTo: forwardTo === this.options.incarnation ? null : forwardTo };
  }

  fence(ref: ActorRef): Fence {
    const shard = shardOf(ref, this.options.shardCount);
    const held = this.held.get(shard);
    // -1 matches no lease: an append for a shard this node does not hold is refused.
    return { shard, epoch: held && performance.now() < held.validUntil ? held.epoch : -1 };
  }

  shardOf(ref: ActorRef): number {
    return shardOf(ref, this.options.shardCount);
  }

  /** The shards this node holds now. */
  heldShards(): number[] {
    const now = performance.now();
    return [...this.held].filter(([, h]) => h.validUntil > now).map(([shard]) => shard).sort((a, b) => a - b);
  }

  view(): { nodes: string[]; shards: ShardView[] } {
    return {
      nodes: this.liveNodes,
      shards: this.owners.map((owner, shard) => ({ shard, owner: owner?.node ?? null, epoch: this.held.get(shard)?.epoch ?? 0 })),
    };
  }

  /** Runs a cycle soon (another node says the membership changed), at most once per interval. */
  nudge(): void {
    const interval = this.options.minNudgeIntervalMs ?? 200;
    if (this.nudgeTimer) return;
    const wait = this.lastNudgedCycle + interval - performance.now();
    const run = (): void => {
      this.nudgeTimer = undefined;
      this.lastNudgedCycle = performance.now();
      void this.cycle();
    };
    if (wait <= 0) run();
    else {
      this.nudgeTimer = setTimeout(run, wait);
      this.nudgeTimer.unref();
    }
  }

  /** Graceful exit: leave the member list, finish and hand over every shard at once. */
  async drain(): Promise<void> {
    this.draining = true;
    this.stop();
    await this.cycling?.catch(() => undefined);
    if (this.replaced) return; // nothing is ours any more, and the node id belongs to another process
    try {
      await this.options.leases.heartbeat(this.options.nodeId, this.options.incarnation, true);
    } catch {
      // the database may be gone; the leases then simply expire
    }
    const all = [...this.held.keys()];
    for (const shard of all) this.held.get(shard)!.handingOff = true;
    await this.options.unload(new Set(all));
    const leases = all.map((shard) => ({ shard, epoch: this.held.get(shard)!.epoch }));
    this.held.clear();
    try {
      await this.options.leases.release(this.options.nodeId, this.options.incarnation, leases);
      await this.options.leases.leave(this.options.nodeId, this.options.incarnation);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'could not release shard leases; they expire on their own');
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.nudgeTimer) clearTimeout(this.nudgeTimer);
  }

  private cycle(): Promise<void> {
    if (this.draining || this.replaced) return this.cycling ?? Promise.resolve();
    if (this.cycling) {
      this.cycleAgain = true;
      return this.cycling;
    }
    this.cycling = this.runCycle()
      .catch((error: Error) => {
        if (error instanceof ReplacedError) return this.giveUp(error.message);
        this.options.logger.warn({ err: error.message }, 'shard lease cycle failed; retrying');
      })
      .finally(() => {
        this.cycling = undefined;
        if (this.cycleAgain) {
          this.cycleAgain = false;
          void this.cycle();
        }
      });
    return this.cycling;
  }

  /** Another process owns this node id now: hold nothing, act for nothing, and say so once. */
  private async giveUp(message: string): Promise<void> {
    this.replaced = true;
    this.stop();
    const shards = new Set(this.held.keys());
    this.held.clear();
    this.owners = this.owners.map(() => null);
    this.options.logger.error({ node: this.options.nodeId, incarnation: this.options.incarnation }, message);
    await this.options.unload(shards).catch(() => undefined);
    this.options.onReplaced?.(message);
  }

  private async runCycle(): Promise<void> {
    const { leases, nodeId, incarnation, leaseMs } = this.options;
    const sentAt = performance.now();
    // Renew what we hold first, database by database: a database that does not answer (or the
    // first one, which holds membership, being away) must not cost the shards of the others.
    // Whatever a database that answered left out was lost.
    const heldList: GrantedLease[] = [...this.held].filter(([, h]) => !h.handingOff).map(([shard, h]) => ({ shard, epoch: h.epoch }));
    // An answer that comes late (after its database's time limit) only ever lengthens a lease held at that epoch.
    const extend = (renewedNow: readonly GrantedLease[]): void => {
      for (const { shard, epoch } of renewedNow) {
        const held = this.held.get(shard);
        if (held && held.epoch === epoch) held.validUntil = Math.max(held.validUntil, sentAt + leaseMs - this.margin);
      }
    };
    const { renewed: renewedList, unanswered } = await leases.renew(nodeId, incarnation, heldList, leaseMs, extend);
    const renewed = new Set(renewedList.map((l) => l.shard));
    const unknown = new Set(unanswered);
    const lost = heldList.filter((l) => !renewed.has(l.shard) && !unknown.has(l.shard)).map((l) => l.shard);
    if (lost.length > 0) {
      this.options.logger.warn({ shards: lost }, 'shard leases lost');
      for (const shard of lost) {
        this.held.delete(shard);
        this.owners[shard] = null;
      }
      await this.options.unload(new Set(lost));
    }
    if (unanswered.length > 0) this.options.logger.warn({ shards: unanswered.length }, "shard leases not renewed: their database did not answer");

    if (!(await leases.heartbeat(nodeId, incarnation, false))) {
      throw new ReplacedError(`another process registered as node ${nodeId}: this one (incarnation ${incarnation}) is fenced out and stops`);
    }
    this.liveNodes = await leases.liveNodes(leaseMs);
    const members = this.liveNodes.includes(nodeId) ? this.liveNodes : [...this.liveNodes, nodeId].sort();

    // The lease rows of the databases that answered; a shard of one that did not keeps the owner last read.
    const table = await leases.leases();
    for (const l of table) this.owners[l.shard] = l.owner !== null && l.remainingMs > 0 ? { node: l.owner, incarnation: l.ownerIncarnation } : null;
    const self: Owner = { node: nodeId, incarnation };
    for (const shard of this.held.keys()) this.owners[shard] = self;

    // Hand over shards that belong to another live node now (a node joined).
    const handOff = [...this.held]
      .filter(([shard, h]) => !h.handingOff && desiredOwner(shard, members) !== nodeId)
      .map(([shard]) => shard);
    if (handOff.length > 0) {
      for (const shard of handOff) this.held.get(shard)!.handingOff = true;
      await this.options.unload(new Set(handOff));
      const released = handOff.map((shard) => ({ shard, epoch: this.held.get(shard)!.epoch }));
      // Until the next read of the lease table names the new owner's process, route nowhere: the
      // entry must not keep naming this process, or inspections here would answer for an actor
      // that the new owner may already have active (a request meanwhile is told to retry).
      for (const shard of handOff) {
        this.held.delete(shard);
        this.owners[shard] = null;
      }
      await leases.release(nodeId, incarnation, released);
      this.options.logger.info({ shards: handOff.length }, 'shards handed over');
      this.options.onChanged?.();
    }

    // Take the shards that are ours by the member list and free (or expired, or already ours).
    const wanted = table
      .filter((l) => !this.held.has(l.shard) && desiredOwner(l.shard, members) === nodeId)
      .filter((l) => l.owner === null || l.owner === nodeId || l.remainingMs <= 0)
      .map((l) => l.shard);
    if (wanted.length > 0) {
      const acquiredAt = performance.now();
      const granted = await leases.acquire(nodeId, incarnation, wanted, leaseMs);
      for (const lease of granted) {
        this.held.set(lease.shard, { epoch: lease.epoch, validUntil: acquiredAt + leaseMs - this.margin, handingOff: false });
        this.owners[lease.shard] = self;
      }
      if (granted.length > 0) {
        this.options.logger.info({ shards: granted.length, held: this.held.size }, 'shards acquired');
        this.options.onAcquired(granted.map((l) => l.shard));
        this.options.onChanged?.();
      }
    }
  }
}
