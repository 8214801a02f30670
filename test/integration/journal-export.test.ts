// The export's publishing against a real JetStream: a batch is known stored exactly once from
// the acknowledgements of its first and last messages when they are n − 1 apart, and anything
// else (repeats after a crash, a message refused in the middle) is published again with an
// acknowledgement per message, which says exactly what happened to each.
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FedEvent } from '../../persistence/journal-feed.js';
import { JOURNAL_STREAM, JOURNAL_SUBJECT_PREFIX, JournalExport } from '../../runtime/journal-export.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { readJournalStream } from '../helpers/journal-stream.js';
import { startNats } from '../helpers/services.js';

const INBOX_PREFIX = '_INBOX.export_test';

let nats: PrivateNatsServer;
let nc: NatsConnection;
/** A second connection, watching the export's inbox. */
let watcher: NatsConnection;
/** Every acknowledgement JetStream sends the export, seen from a second connection. */
let acks: Subscription;
let acked = 0;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  watcher = await connect({ servers: nats.url });
  acks = watcher.subscribe(`${INBOX_PREFIX}.>`, {
    callback: () => {
      acked += 1;
    },
  });
  await watcher.flush();
});

afterAll(async () => {
  acks?.unsubscribe();
  await watcher?.close();
  await nc?.close();
  await nats?.stop();
});

beforeEach(async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(JOURNAL_STREAM).catch(() => undefined);
  acked = 0;
});

let position = 0;
const fed = (id: string, seq: number, data: Record<string, unknown> = {}): FedEvent => {
  position += 1;
  return {
    tx: '1000',
    position,
    kind: 'inventory',
    id,
    seq,
    event: { type: 'Received', qty: 1, ...data },
    messageId: `m-${id}-${seq}`,
    correlationId: null,
    causationId: null,
    traceparent: null,
    recordedAt: new Date(),
  };
};
const batch = (id: string, from: number, count: number): FedEvent[] => Array.from({ length: count }, (_, i) => fed(id, from + i));
const msgIds = (events: readonly FedEvent[]): string[] => events.map((e) => `${e.kind}/${e.id}/${e.seq}`);

/** Waits until the watcher has seen `count` acknowledgements (they cross a second connection). */
async function ackedReaches(count: number): Promise<number> {
  const deadline = Date.now() + 2_000;
  while (acked < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  await new Promise((resolve) => setTimeout(resolve, 50));
  return acked;
}

/** A relay publishing on this file's inbox prefix, its stream made and its inbox subscribed. */
async function preparedRelay(): Promise<JournalExport> {
  const relay = new JournalExport(nc, INBOX_PREFIX);
  await relay.prepare();
  return relay;
}

describe('the export publishing a batch', () => {
  it('stores a fresh batch once, in order, asking JetStream for two acknowledgements', async () => {
    const relay = await preparedRelay();
    const events = batch('a-1', 1, 50);
    await relay.apply(events);
    expect(await ackedReaches(2)).toBe(2);
    expect((await readJournalStream(nats.url)).map((m) => m.msgId)).toEqual(msgIds(events));
  });

  it('publishes a batch again message by message when it begins with repeats (a relay that crashed before its checkpoint)', async () => {
    const relay = await preparedRelay();
    const published = batch('b-1', 1, 20);
    await relay.apply(published);
    expect(await ackedReaches(2)).toBe(2);
    const more = batch('b-1', 21, 30);
    acked = 0;
    // From the old checkpoint: the first 20 again, then 30 new ones.
    await relay.apply([...published, ...more]);
    // Two for the first try (its first message a duplicate), then one per message.
    expect(await ackedReaches(52)).toBe(52);
    const streamed = (await readJournalStream(nats.url)).map((m) => m.msgId);
    expect(streamed).toEqual(msgIds([...published, ...more]));
  });

  it('does not take a batch as stored when a message in its middle was refused, and says which', async () => {
    const jsm = await jetstreamManager(nc);
    // A stream that refuses large messages: one in the middle of the batch is not stored, while
    // its first and last are.
    await jsm.streams.add({ name: JOURNAL_STREAM, subjects: [`${JOURNAL_SUBJECT_PREFIX}.>`], storage: StorageType.File, max_msg_size: 2_000 });
    const relay = await preparedRelay();
    const events = [...batch('c-1', 1, 5), fed('c-1', 6, { note: 'x'.repeat(4_000) }), ...batch('c-1', 7, 5)];
    await expect(relay.apply(events)).rejects.toThrow(/JetStream refused a message/);
    // The runner publishes the batch again from its checkpoint: still refused, nothing taken as done.
    await expect(relay.apply(events)).rejects.toThrow(/JetStream refused a message/);
    const streamed = (await readJournalStream(nats.url)).map((m) => m.msgId);
    expect(streamed).toEqual(msgIds([...events.slice(0, 5), ...events.slice(6)]));
  });

  it('stores small batches with an acknowledgement per message', async () => {
    const relay = await preparedRelay();
    const events = batch('d-1', 1, 2);
    await relay.apply(events);
    expect(await ackedReaches(2)).toBe(2);
    expect((await readJournalStream(nats.url)).map((m) => m.msgId)).toEqual(msgIds(events));
  });
});
