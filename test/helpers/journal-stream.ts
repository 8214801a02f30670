// Everything in the JetStream stream the journal is exported to, read back with an ordered
// consumer: what an outside system following PPOS_JOURNAL would see.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { JOURNAL_STREAM } from '../../runtime/journal-export.js';

export interface StreamedEvent {
  readonly subject: string;
  readonly msgId: string;
  readonly body: { kind: string; id: string; seq: number; event: { type: string }; messageId: string };
}

export async function readJournalStream(natsUrl: string): Promise<StreamedEvent[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const total = (await jsm.streams.info(JOURNAL_STREAM)).state.messages;
    const read: StreamedEvent[] = [];
    if (total === 0) return read;
    const consumer = await jetstream(nc).consumers.get(JOURNAL_STREAM);
    while (read.length < total) {
      const batch = await consumer.fetch({ max_messages: total - read.length, expires: 5_000 });
      let got = 0;
      for await (const msg of batch) {
        got += 1;
        read.push({ subject: msg.subject, msgId: msg.headers?.get('Nats-Msg-Id') ?? '', body: msg.json() });
      }
      if (got === 0) throw new Error(`the stream says ${total} messages, read ${read.length}`);
    }
    return read;
  } finally {
    await nc.close();
  }
}
