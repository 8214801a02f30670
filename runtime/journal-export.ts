// The journal exported to JetStream (CONTRACT.md section 8): every committed event published,
// in read order (so in per-actor order), to the stream PPOS_JOURNAL on ppos.journal.<kind>.<id>,
// with Nats-Msg-Id <kind>/<id>/<seq>. A follower of the journal like a projection: a batch is
// published and known stored (JetStream's acknowledgements, below) before its checkpoint moves,
// so a crash can only publish a batch again, and JetStream's duplicate window drops those
// repeats. PostgreSQL stays the source of truth: the stream can be deleted and is refilled from
// a reset checkpoint.
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { writtenVersion } from '../actors/event-version.js';
import type { FedEvent } from '../persistence/journal-feed.js';
import type { Follower } from './projection-runner.js';
import { TRACEPARENT_HEADER } from './tracing.js';

export const EXPORT_NAME = 'export';
export const JOURNAL_STREAM = 'PPOS_JOURNAL';
export const JOURNAL_SUBJECT_PREFIX = 'ppos.journal';

/** Repeats from a relay restart are dropped within this window: far longer than a batch takes. */
const DUPLICATE_WINDOW_NS = 15 * 60 * 1_000_000_000;

export const journalMessageId = (fed: Pick<FedEvent, 'kind' | 'id' | 'seq'>): string => `${fed.kind}/${fed.id}/${fed.seq}`;

/** The body of an exported event: what an outside consumer needs to follow an actor's history. */
export function exportedBody(fed: FedEvent): string {
  return JSON.stringify({
    kind: fed.kind,
    id: fed.id,
    seq: fed.seq,
    event: fed.event,
    // The version of its type the event was written at, when not 1: a consumer upcasts by it.
    ...(writtenVersion(fed.event) === 1 ? {} : { eventVersion: writtenVersion(fed.event) }),
    messageId: fed.messageId,
    correlationId: fed.correlationId,
    causationId: fed.causationId,
    recordedAt: fed.recordedAt.toISOString(),
  });
}

/** What JetStream said it did with one message: stored at `seq`, or found it a duplicate of the message stored there. */
interface Stored {
  readonly stream: string;
  readonly seq: number;
  readonly duplicate: boolean;
}

/** A batch whose acknowledgements have not all come: each awaited message's reply subject names its slot. */
interface PendingBatch {
  readonly id: number;
  /** By slot: undefined while not awaited (or published without a reply), then what JetStream said. */
  readonly stored: (Stored | null | undefined)[];
  remaining: number;
  readonly done: (error?: Error) => void;
}

/** How long a batch may wait for its acknowledgements before it counts as failed (and is published again). */
const ACK_TIMEOUT_MS = 10_000;

/** Batches this small are published with an acknowledgement per message: nothing to save. */
const CHECKED_FROM = 3;

export class JournalExport implements Follower {
  readonly name = EXPORT_NAME;
  /** Acknowledgements come back on `<inbox>.<batch>.<index>`, one subscription for all. */
  private readonly inbox: string;
  private subscription: Subscription | undefined;
  /** By batch id: one per source database being published at once. */
  private readonly pending = new Map<number, PendingBatch>();
  private batches = 0;

  constructor(
    private readonly nc: NatsConnection,
    inboxPrefix?: string,
  ) {
    this.inbox = createInbox(inboxPrefix);
  }

  /** Creates the stream when it is missing (file storage, subjects ppos.journal.>). */
  async prepare(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    try {
      await jsm.streams.info(JOURNAL_STREAM);
    } catch {
      await jsm.streams.add({
        name: JOURNAL_STREAM,
        subjects: [`${JOURNAL_SUBJECT_PREFIX}.>`],
        storage: StorageType.File,
        duplicate_window: DUPLICATE_WINDOW_NS,
      });
    }
    this.subscription ??= this.nc.subscribe(`${this.inbox}.>`, { callback: (error, msg) => this.acknowledged(error, msg) });
  }

  /**
   * Publishes the batch in order on this connection (the stream stores it in that order) and
   * resolves once JetStream has stored every message of it exactly once; any error, or a missing
   * acknowledgement, fails the batch and the runner publishes it again from the checkpoint.
   *
   * Usually only the first and the last message ask for an acknowledgement (an acknowledgement
   * per message was a third of what the export cost JetStream, and more of what it cost the
   * node): JetStream numbers what it stores one by one, and only the export publishes on
   * ppos.journal (least privilege), so when neither end is a duplicate and they are stored n − 1
   * apart, every message between was stored once, in order. Anything else (a repeat after a
   * crash, a message refused in the middle) and the batch is published again with an
   * acknowledgement per message, which the duplicate window makes harmless and which says
   * exactly what happened to each.
   */
  async apply(events: readonly FedEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (events.length >= CHECKED_FROM) {
      const [first, last] = (await this.publish(events, (index) => index === 0 || index === events.length - 1)) as [Stored, Stored];
      if (!first.duplicate && !last.duplicate && first.stream === last.stream && last.seq - first.seq === events.length - 1) return;
    }
    await this.publish(events, () => true);
  }

  /**
   * Publishes `events` in order, those `awaited` with a reply subject, and resolves with what
   * JetStream said of each awaited one, in order; rejects on an error or a missing answer.
   */
  private async publish(events: readonly FedEvent[], awaited: (index: number) => boolean): Promise<Stored[]> {
    const id = ++this.batches;
    const asked = events.map((_, index) => awaited(index));
    let batch!: PendingBatch;
    const finished = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => batch.done(new Error(`JetStream did not acknowledge ${batch.remaining} of ${events.length} message(s) within ${ACK_TIMEOUT_MS} ms`)), ACK_TIMEOUT_MS);
      batch = {
        id,
        stored: asked.map((ask) => (ask ? null : undefined)),
        remaining: asked.filter(Boolean).length,
        done: (error) => {
          clearTimeout(timer);
          this.pending.delete(id);
          if (error) reject(error);
          else resolve();
        },
      };
      this.pending.set(id, batch);
    });
    try {
      events.forEach((fed, index) => {
        const h = headers();
        h.set('Nats-Msg-Id', journalMessageId(fed));
        // The trace of the command that wrote it: a consumer's span can continue it.
        if (fed.traceparent) h.set(TRACEPARENT_HEADER, fed.traceparent);
        this.nc.publish(`${JOURNAL_SUBJECT_PREFIX}.${fed.kind}.${fed.id}`, exportedBody(fed), asked[index] ? { headers: h, reply: `${this.inbox}.${id}.${index}` } : { headers: h });
      });
    } catch (error) {
      // A publish refused at once (connection closed or draining, message too large): the
      // batch fails now, and its timer with it (else its rejection would go unheard later).
      batch.done(error as Error);
    }
    await finished;
    // Resolved: every awaited slot holds its acknowledgement.
    return batch.stored.filter((ack): ack is Stored => ack !== undefined && ack !== null);
  }

  private acknowledged(error: Error | null, msg: Msg): void {
    if (error) return;
    const [batchId, index] = msg.subject.slice(this.inbox.length + 1).split('.').map(Number);
    const batch = batchId === undefined ? undefined : this.pending.get(batchId);
    // Only a slot still awaited: anything else on this inbox is ignored.
    if (!batch || index === undefined || !Number.isInteger(index) || index < 0 || index >= batch.stored.length || batch.stored[index] !== null) return;
    // A status reply (503: no stream takes the subject) or a JetStream error fails the batch.
    if (msg.headers?.hasError) return batch.done(new Error(`JetStream refused a message: ${msg.headers.code} ${msg.headers.description}`));
    let ack: { error?: { description?: string }; stream?: unknown; seq?: unknown; duplicate?: unknown };
    try {
      ack = msg.json();
    } catch {
      return batch.done(new Error('JetStream answered a publish with something that is not an acknowledgement'));
    }
    if (ack.error) return batch.done(new Error(`JetStream refused a message: ${ack.error.description ?? JSON.stringify(ack.error)}`));
    // Only JetStream's own acknowledgement (the stream and the sequence it stored the message at) counts.
    if (typeof ack.stream !== 'string' || typeof ack.seq !== 'number') return;
    batch.stored[index] = { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate === true };
    batch.remaining -= 1;
    if (batch.remaining === 0) batch.done();
  }
}
