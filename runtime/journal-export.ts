// The journal exported to JetStream (CONTRACT.md section 8): every committed event published,
// in read order (so in per-actor order), to the stream PPOS_JOURNAL on ppos.journal.<kind>.<id>,
// with Nats-Msg-Id <kind>/<id>/<seq>. A follower of the journal like a projection: a batch is
// published and every ack awaited before its checkpoint moves, so a crash can only publish a
// batch again, and JetStream's duplicate window drops those repeats. PostgreSQL stays the
// source of truth: the stream can be deleted and is refilled from a reset checkpoint.
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

/** A batch whose acknowledgements have not all come: each message's reply subject names its slot. */
interface PendingBatch {
  readonly id: number;
  readonly acked: Uint8Array;
  remaining: number;
  readonly done: (error?: Error) => void;
}

/** How long a batch may wait for its acknowledgements before it counts as failed (and is published again). */
const ACK_TIMEOUT_MS = 10_000;

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
   * resolves once JetStream acknowledged every message, duplicates included; any error, or a
   * missing acknowledgement, fails the batch and the runner publishes it again from the
   * checkpoint. Plain publishes with a reply subject, not one request each: no timer, promise
   * or subscription per message, which is what the export costs the node under load.
   */
  async apply(events: readonly FedEvent[]): Promise<void> {
    if (events.length === 0) return;
    const id = ++this.batches;
    let batch!: PendingBatch;
    const finished = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => batch.done(new Error(`JetStream did not acknowledge ${batch.remaining} of ${events.length} message(s) within ${ACK_TIMEOUT_MS} ms`)), ACK_TIMEOUT_MS);
      batch = {
        id,
        acked: new Uint8Array(events.length),
        remaining: events.length,
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
        this.nc.publish(`${JOURNAL_SUBJECT_PREFIX}.${fed.kind}.${fed.id}`, exportedBody(fed), { headers: h, reply: `${this.inbox}.${id}.${index}` });
      });
    } catch (error) {
      // A publish refused at once (connection closed or draining, message too large): the
      // batch fails now, and its timer with it (else its rejection would go unheard later).
      batch.done(error as Error);
    }
    await finished;
  }

  private acknowledged(error: Error | null, msg: Msg): void {
    if (error) return;
    const [batchId, index] = msg.subject.slice(this.inbox.length + 1).split('.').map(Number);
    const batch = batchId === undefined ? undefined : this.pending.get(batchId);
    if (!batch || index === undefined || !Number.isInteger(index) || index < 0 || index >= batch.acked.length || batch.acked[index]) return;
    // A status reply (503: no stream takes the subject) or a JetStream error fails the batch.
    if (msg.headers?.hasError) return batch.done(new Error(`JetStream refused a message: ${msg.headers.code} ${msg.headers.description}`));
    let ack: { error?: { description?: string }; stream?: unknown; seq?: unknown };
    try {
      ack = msg.json();
    } catch {
      return batch.done(new Error('JetStream answered a publish with something that is not an acknowledgement'));
    }
    if (ack.error) return batch.done(new Error(`JetStream refused a message: ${ack.error.description ?? JSON.stringify(ack.error)}`));
    // Only JetStream's own acknowledgement (the stream and the sequence it stored the message at)
    // counts: anything else on this inbox is ignored.
    const stored = ack as { stream?: unknown; seq?: unknown };
    if (typeof stored.stream !== 'string' || typeof stored.seq !== 'number') return;
    batch.acked[index] = 1;
    batch.remaining -= 1;
    if (batch.remaining === 0) batch.done();
  }
}
