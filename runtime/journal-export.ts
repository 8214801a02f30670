// The journal exported to JetStream (CONTRACT.md section 8): every committed event published,
// in read order (so in per-actor order), to the stream PPOS_JOURNAL on ppos.journal.<kind>.<id>,
// with Nats-Msg-Id <kind>/<id>/<seq>. A follower of the journal like a projection: a batch is
// published and every ack awaited before its checkpoint moves, so a crash can only publish a
// batch again, and JetStream's duplicate window drops those repeats. PostgreSQL stays the
// source of truth: the stream can be deleted and is refilled from a reset checkpoint.
import { jetstream, jetstreamManager, StorageType, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { FedEvent } from '../persistence/journal-feed.js';
import type { Follower } from './projection-runner.js';

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
    messageId: fed.messageId,
    correlationId: fed.correlationId,
    causationId: fed.causationId,
    recordedAt: fed.recordedAt.toISOString(),
  });
}

export class JournalExport implements Follower {
  readonly name = EXPORT_NAME;
  private readonly js: JetStreamClient;

  constructor(private readonly nc: NatsConnection) {
    this.js = jetstream(nc);
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
  }

  async apply(events: readonly FedEvent[]): Promise<void> {
    // Sent in order on one connection (the stream keeps that order), acks awaited together.
    const acks = events.map((fed) =>
      this.js.publish(`${JOURNAL_SUBJECT_PREFIX}.${fed.kind}.${fed.id}`, exportedBody(fed), { msgID: journalMessageId(fed) }),
    );
    await Promise.all(acks);
  }
}
