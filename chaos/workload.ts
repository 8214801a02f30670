// The chaos workload: clients with at-least-once delivery (every retry and every injected
// duplicate carries the command's one message id, with random timeouts), inventory and work
// order commands on a skewed key distribution (a few hot SKUs), and a ledger of every command
// and the first definite answer it got, which the checks compare with the journal.
import stringify from 'safe-stable-stringify';
import type { ActorRef } from '../persistence/journal.js';
import type { Reply } from '../runtime/envelope.js';
import type { PposClient } from '../src/client.js';
import { Random } from '../src/random.js';

export interface CommandRecord {
  readonly messageId: string;
  readonly ref: ActorRef;
  readonly type: string;
  readonly payload: Record<string, unknown>;
  /** How long the client keeps retrying before it gives up (the command stays unacknowledged). */
  deadlineMs: number;
  /** Deliveries the client started: 1 plus injected duplicates. */
  copies: number;
  /** Requests sent for it, every retry of every copy included. */
  attempts: number;
  /** The first definite answer (ok or REJECTED), from whichever copy got one first. */
  first: Reply | null;
  /** A later answer that differs from the first one. */
  mismatch: string | null;
  /** Requests of this command waiting for an answer now. */
  inFlight: number;
  /** Requests that got no answer (timeout): their outcome is unknown. */
  unanswered: number;
  /** Requests answered UNAVAILABLE or OVERLOADED: each a promise that it was not applied. */
  refused: number;
  /** A first answer `duplicate: true` after nothing but refusals: one of them was not true. */
  falseRefusal: string | null;
}

export interface WorkloadStats {
  commands: number;
  deliveries: number;
  retries: number;
  duplicateCopies: number;
  lateCopies: number;
  duplicatesSuppressed: number;
  acks: number;
  rejections: Record<string, number>;
  /** Answers no correct client can cause: ID_REUSED for its own command, BAD_REQUEST, UNKNOWN_COMMAND. */
  anomalies: string[];
}

export interface WorkloadOptions {
  readonly client: PposClient;
  readonly seed: number;
  readonly clients: number;
  readonly skus: number;
  /** Per request: a random timeout in this range (ms). */
  readonly timeoutMs: readonly [number, number];
  /** A command (and each of its copies) is retried until answered or this long has passed. */
  readonly commandDeadlineMs: number;
  /** Share of commands delivered 2–5 times; of those copies, the share sent after a long delay. */
  readonly duplicateRate: number;
  readonly lateRate: number;
  readonly lateDelayMs: readonly [number, number];
  /** Share of commands whose client gives up early, leaving them unacknowledged (default none). */
  readonly giveUpRate?: number;
  readonly giveUpAfterMs?: readonly [number, number];
}

export interface CommandOptions {
  /** Inject duplicate deliveries (default true). */
  readonly duplicates?: boolean;
  /** Never give up early (default false): stock and probes must land. */
  readonly patient?: boolean;
  /** Give up after this long instead of the workload's deadline (a probe that must be answered promptly). */
  readonly deadlineMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const transient = (reply: Reply): boolean => !reply.ok && (reply.error.code === 'UNAVAILABLE' || reply.error.code === 'OVERLOADED');
const definiteFailure = (reply: Reply): string | null =>
  !reply.ok && reply.error.code !== 'REJECTED' ? `${reply.error.code}: ${reply.error.message}` : null;

/** Same answer: the same outcome, the same seq and events (the state may be rebuilt). */
export function sameAnswer(a: Reply, b: Reply): boolean {
  if (a.ok && b.ok) return a.seq === b.seq && stringify(a.events) === stringify(b.events);
  if (!a.ok && !b.ok) return a.error.code === b.error.code && a.error.reason === b.error.reason;
  return false;
}

export class Workload {
  readonly ledger = new Map<string, CommandRecord>();
  readonly stats: WorkloadStats = {
    commands: 0,
    deliveries: 0,
    retries: 0,
    duplicateCopies: 0,
    lateCopies: 0,
    duplicatesSuppressed: 0,
    acks: 0,
    rejections: {},
    anomalies: [],
  };
  readonly skus: string[];
  private readonly random: Random;
  private readonly jitter: Random;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly openReservations: { sku: string; reservationId: string }[] = [];
  private counter = 0;
  private stopping = false;

  constructor(private readonly options: WorkloadOptions) {
    this.random = new Random(options.seed);
    this.jitter = new Random(options.seed ^ 0x5bd1e995);
    this.skus = Array.from({ length: options.skus }, (_, i) => `sku-${String(i).padStart(2, '0')}`);
  }

  /** Stock for every SKU before the clients start. */
  async seedStock(): Promise<void> {
    await Promise.all(
      this.skus.map((sku) => this.command({ kind: 'inventory', id: sku }, 'Receive', { qty: this.random.int(40, 160) }, { duplicates: false, patient: true })),
    );
  }

  /** Runs the clients until `stop()`, then waits for every delivery (late duplicates too). */
  async run(): Promise<void> {
    await Promise.all(Array.from({ length: this.options.clients }, (_, i) => this.client(i)));
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  stop(): void {
    this.stopping = true;
  }

  /**
   * One command, delivered at least once: retried with the same id until a definite answer,
   * and sometimes delivered again on purpose (at once, or much later). Resolves with the first
   * definite answer, or null if none came within the deadline (unacknowledged).
   */
  async command(ref: ActorRef, type: string, payload: Record<string, unknown>, options: CommandOptions = {}): Promise<Reply | null> {
    this.counter += 1;
    const impatient = !options.patient && type !== 'Get' && this.random.chance(this.options.giveUpRate ?? 0);
    const record: CommandRecord = {
      messageId: `c${this.options.seed}-${this.counter}`,
      ref,
      type,
      payload,
      deadlineMs: impatient ? this.random.int(...(this.options.giveUpAfterMs ?? [500, 2_000])) : (options.deadlineMs ?? this.options.commandDeadlineMs),
      copies: 1,
      attempts: 0,
      first: null,
      mismatch: null,
      inFlight: 0,
      unanswered: 0,
      refused: 0,
      falseRefusal: null,
    };
    this.ledger.set(record.messageId, record);
    this.stats.commands += 1;
    if (type !== 'Get' && options.duplicates !== false && this.random.chance(this.options.duplicateRate)) {
      const extra = this.random.int(1, 4);
      for (let copy = 0; copy < extra; copy += 1) {
        const late = this.random.chance(this.options.lateRate);
        const delay = late ? this.random.int(...this.options.lateDelayMs) : this.random.int(0, 80);
        record.copies += 1;
        this.stats.duplicateCopies += 1;
        if (late) this.stats.lateCopies += 1;
        this.track(sleep(delay).then(() => this.deliver(record)));
      }
    }
    return this.deliver(record);
  }

  private track(work: Promise<unknown>): void {
    this.inflight.add(work);
    void work.finally(() => this.inflight.delete(work));
  }

  private async deliver(record: CommandRecord): Promise<Reply | null> {
    const { client } = this.options;
    const deadline = Date.now() + record.deadlineMs;
    for (let attempt = 1; ; attempt += 1) {
      record.attempts += 1;
      this.stats.deliveries += 1;
      let reply: Reply | null = null;
      record.inFlight += 1;
      try {
        reply = await client.send(record.ref.kind, record.ref.id, record.type, record.payload, {
          messageId: record.messageId,
          timeoutMs: this.jitter.int(...this.options.timeoutMs),
        });
      } catch {
        reply = null; // no answer in time, nobody listening, or NATS itself down: the outcome is unknown
      } finally {
        record.inFlight -= 1;
      }
      if (reply === null) record.unanswered += 1;
      else if (transient(reply)) record.refused += 1;
      if (reply && !transient(reply)) {
        this.answered(record, reply);
        return record.first;
      }
      if (Date.now() > deadline) return record.first;
      this.stats.retries += 1;
      await sleep(Math.min(1_000, 25 * 2 ** Math.min(attempt, 5)) * (0.5 + this.jitter.next()));
    }
  }

  private answered(record: CommandRecord, reply: Reply): void {
    if (reply.duplicate) this.stats.duplicatesSuppressed += 1;
    const failure = definiteFailure(reply);
    if (failure) {
      this.stats.anomalies.push(`${record.ref.kind}/${record.ref.id} ${record.type} ${record.messageId}: ${failure}`);
      return;
    }
    if (!record.first) {
      // Applied already, yet every earlier request was told "nothing was applied" and none is
      // still under way or lost: one of those refusals was false (contract section 3).
      if (reply.duplicate && record.refused > 0 && record.unanswered === 0 && record.inFlight === 0) {
        record.falseRefusal = `answered UNAVAILABLE/OVERLOADED ${record.refused} time(s), then duplicate: true`;
      }
      record.first = reply;
      this.stats.acks += 1;
      if (!reply.ok) {
        const reason = reply.error.reason ?? reply.error.code;
        this.stats.rejections[reason] = (this.stats.rejections[reason] ?? 0) + 1;
      }
    } else if (!record.mismatch && !sameAnswer(record.first, reply)) {
      record.mismatch = `first ${stringify(record.first)}, then ${stringify(reply)}`;
    }
  }

  private async client(index: number): Promise<void> {
    // Clients start staggered so they do not move in lockstep.
    await sleep(index * 7);
    while (!this.stopping) {
      if (this.random.chance(0.3)) await this.workOrderLife();
      else await this.inventoryStep();
      await sleep(this.random.int(0, 15));
    }
  }

  private hotSku(): string {
    return this.skus[this.random.skewed(this.skus.length, 3)]!;
  }

  private async inventoryStep(): Promise<void> {
    const roll = this.random.next();
    if (roll < 0.4 || this.openReservations.length === 0) {
      const sku = this.hotSku();
      const reservationId = `r${this.options.seed}-${this.counter + 1}`;
      // A third of them holds with a short deadline: expiries race the clients' releases and the faults.
      const hold = this.random.chance(0.33) ? { holdMs: this.random.int(300, 3_000) } : {};
      const reply = await this.command({ kind: 'inventory', id: sku }, 'Reserve', { reservationId, qty: this.random.int(1, 5), ...hold });
      // Unanswered: it may hold or not; releasing or consuming it later is safe either way.
      if (reply === null || (reply.ok && reply.events.length > 0)) this.openReservations.push({ sku, reservationId });
    } else if (roll < 0.65) {
      const [open] = this.openReservations.splice(this.random.int(0, this.openReservations.length - 1), 1);
      await this.command({ kind: 'inventory', id: open!.sku }, this.random.chance(0.5) ? 'Release' : 'Consume', { reservationId: open!.reservationId });
    } else if (roll < 0.9) {
      await this.command({ kind: 'inventory', id: this.hotSku() }, 'Receive', { qty: this.random.int(1, 25) });
    } else if (roll < 0.95) {
      await this.command({ kind: 'inventory', id: this.hotSku() }, 'Adjust', { onHand: this.random.int(20, 300) });
    } else {
      await this.command({ kind: 'inventory', id: this.hotSku() }, 'Get', {});
    }
  }

  /** A work order through its life; an unanswered step ends it (its state is then unknown). */
  private async workOrderLife(): Promise<void> {
    const id = `wo${this.options.seed}-${this.counter + 1}`;
    const ref = { kind: 'workorder', id };
    const lines = new Map<string, number>();
    for (let i = this.random.int(1, 3); i > 0; i -= 1) lines.set(this.hotSku(), this.random.int(1, 6));
    const stages = ['cut', 'weld', 'paint'].slice(0, this.random.int(1, 3));
    const bom = [...lines].map(([sku, qty]) => ({ sku, qty }));
    if (!(await this.command(ref, 'Create', { bom, stages }))?.ok) return;
    let released = false;
    for (let attempt = 0; attempt < 2 && !released; attempt += 1) {
      const reply = await this.command(ref, 'Release', {});
      if (!reply) return;
      released = reply.ok;
      if (!reply.ok && reply.error.reason === 'SHORTAGE') {
        for (const sku of (reply.error.shortSkus as string[] | undefined) ?? []) await this.command({ kind: 'inventory', id: sku }, 'Receive', { qty: this.random.int(5, 30) });
      } else if (!reply.ok) return;
    }
    if (!released) {
      if (this.random.chance(0.5)) await this.command(ref, 'Cancel', {});
      return;
    }
    if (this.stopping) return;
    if (this.random.chance(0.25)) {
      await this.command(ref, 'Cancel', {});
      return;
    }
    if (!(await this.command(ref, 'Start', {}))?.ok) return;
    for (const stage of stages.slice(1)) {
      if (this.stopping) return;
      if (!(await this.command(ref, 'AdvanceStage', { to: stage }))?.ok) return;
      // Already there: a no-op success that journals nothing.
      if (this.random.chance(0.1)) await this.command(ref, 'AdvanceStage', { to: stage });
    }
    await this.command(ref, this.random.chance(0.15) ? 'Cancel' : 'Complete', {});
  }
}
