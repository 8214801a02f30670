// The alternatives a user would pick instead of ppos, answering over the same NATS server
// with the same envelopes (on <prefix>.inventory.<id>), so the client path is identical:
//
//   serializable  Baseline A, the seed's design: the stock row of a SKU (on hand, reserved and
//                 the open reservations as jsonb) is read and written in a SERIALIZABLE
//                 transaction, retried on serialization failure. Exactly-once by a message-id
//                 table written in the same transaction. 4 round trips per attempt:
//                 BEGIN, read, one write statement, COMMIT; prepared statements; a pool
//                 of --a-pool connections (default 32, the best of 8/16/32 here).
//   echo          Bare NATS request/reply, no work: what the transport and client cost.
//
// Forked by the bench with an IPC channel: 'stats' asks for (and resets) its counters.
import { connect, type Msg } from '@nats-io/transport-node';
import pg from 'pg';
import { JOURNAL_TYPES } from '../persistence/pg-types.js';

const [mode, poolSizeArg, subjectPrefix = 'ppos.cmd'] = process.argv.slice(2);
const natsUrl = process.env.PPOS_NATS_URL;
const databaseUrl = process.env.PPOS_DATABASE_URL;
const poolSize = Number(poolSizeArg ?? 16);

interface Counters {
  commits: number;
  attempts: number;
  serializationFailures: number;
  failures: number;
}
const counters: Counters = { commits: 0, attempts: 0, serializationFailures: 0, failures: 0 };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS bench_a_stock (
    sku          text   PRIMARY KEY,
    on_hand      bigint NOT NULL,
    reserved     bigint NOT NULL,
    reservations jsonb  NOT NULL
  ) WITH (fillfactor = 50); -- room for HOT updates: a stock row is rewritten by every command
  CREATE TABLE IF NOT EXISTS bench_a_messages (
    message_id text PRIMARY KEY,
    reply      json NOT NULL
  );`;

const READ = {
  name: 'a_read',
  text: 'SELECT on_hand, reserved, (reservations -> $2::text)::bigint AS held FROM bench_a_stock WHERE sku = $1',
};
// Every write statement records the message id first and writes state only if it was new:
// a duplicate writes nothing and is answered from the table after the rollback.
const RECEIVE = {
  name: 'a_receive',
  text: `WITH m AS (INSERT INTO bench_a_messages VALUES ($3, $4) ON CONFLICT DO NOTHING RETURNING 1),
         s AS (INSERT INTO bench_a_stock SELECT $1, $2, 0, '{}' WHERE EXISTS (SELECT 1 FROM m)
               ON CONFLICT (sku) DO UPDATE SET on_hand = bench_a_stock.on_hand + excluded.on_hand RETURNING 1)
         SELECT count(*)::int AS n FROM m`,
};
const RESERVE = {
  name: 'a_reserve',
  text: `WITH m AS (INSERT INTO bench_a_messages VALUES ($4, $5) ON CONFLICT DO NOTHING RETURNING 1),
         s AS (UPDATE bench_a_stock SET reserved = reserved + $3, reservations = reservations || jsonb_build_object($2::text, $3::bigint)
               WHERE sku = $1 AND EXISTS (SELECT 1 FROM m) RETURNING 1)
         SELECT count(*)::int AS n FROM m`,
};
const RELEASE = {
  name: 'a_release',
  text: `WITH m AS (INSERT INTO bench_a_messages VALUES ($3, $4) ON CONFLICT DO NOTHING RETURNING 1),
         s AS (UPDATE bench_a_stock SET reserved = reserved - (reservations -> $2::text)::bigint, reservations = reservations - $2::text
               WHERE sku = $1 AND reservations ? $2::text AND EXISTS (SELECT 1 FROM m) RETURNING 1)
         SELECT count(*)::int AS n FROM m`,
};
const RECORD_ONLY = {
  name: 'a_record',
  text: 'WITH m AS (INSERT INTO bench_a_messages VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*)::int AS n FROM m',
};

interface Envelope {
  id: string;
  type: string;
  payload?: { qty?: number; reservationId?: string };
}

type Reply = Record<string, unknown>;

class Duplicate extends Error {}

async function attempt(pool: pg.Pool, sku: string, envelope: Envelope): Promise<Reply> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
    const row = (await client.query({ ...READ, values: [sku, envelope.payload?.reservationId ?? ''] })).rows[0] as
      | { on_hand: number; reserved: number; held: number | null }
      | undefined;
    const onHand = Number(row?.on_hand ?? 0);
    const reserved = Number(row?.reserved ?? 0);
    const held = row?.held === null || row?.held === undefined ? null : Number(row.held);
    const p = envelope.payload ?? {};
    let reply: Reply;
    let write: { name: string; text: string; values: unknown[] };
    const ok = (events: unknown[], state: { onHand: number; reserved: number }): Reply => ({
      ok: true,
      duplicate: false,
      events,
      state: { ...state, available: state.onHand - state.reserved },
    });
    switch (envelope.type) {
      case 'Receive': {
        reply = ok([{ type: 'Received', qty: p.qty }], { onHand: onHand + (p.qty ?? 0), reserved });
        write = { ...RECEIVE, values: [sku, p.qty, envelope.id, JSON.stringify(reply)] };
        break;
      }
      case 'Reserve': {
        if (held !== null) {
          reply = ok([], { onHand, reserved });
          write = { ...RECORD_ONLY, values: [envelope.id, JSON.stringify(reply)] };
        } else if (onHand - reserved < (p.qty ?? 0)) {
          reply = { ok: false, duplicate: false, error: { code: 'REJECTED', reason: 'INSUFFICIENT_STOCK', message: 'not enough available' } };
          write = { ...RECORD_ONLY, values: [envelope.id, JSON.stringify(reply)] };
        } else {
          reply = ok([{ type: 'Reserved', reservationId: p.reservationId, qty: p.qty }], { onHand, reserved: reserved + (p.qty ?? 0) });
          write = { ...RESERVE, values: [sku, p.reservationId, p.qty, envelope.id, JSON.stringify(reply)] };
        }
        break;
      }
      case 'Release': {
        reply = held === null ? ok([], { onHand, reserved }) : ok([{ type: 'Released', reservationId: p.reservationId }], { onHand, reserved: reserved - held });
        write = { ...RELEASE, values: [sku, p.reservationId, envelope.id, JSON.stringify(reply)] };
        break;
      }
      default:
        await client.query('ROLLBACK');
        return { ok: false, duplicate: false, error: { code: 'UNKNOWN_COMMAND', message: `no command ${envelope.type}` } };
    }
    const written = await client.query(write);
    if ((written.rows[0] as { n: number }).n === 0) throw new Duplicate();
    await client.query('COMMIT');
    return reply;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === undefined && !(error instanceof Duplicate)) broken = error as Error;
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release(broken);
  }
}

async function handle(pool: pg.Pool, sku: string, envelope: Envelope): Promise<Reply> {
  for (let tries = 0; ; tries += 1) {
    counters.attempts += 1;
    try {
      const reply = await attempt(pool, sku, envelope);
      counters.commits += 1;
      return reply;
    } catch (error) {
      if (error instanceof Duplicate) {
        const prior = await pool.query('SELECT reply FROM bench_a_messages WHERE message_id = $1', [envelope.id]);
        return { ...(prior.rows[0]?.reply as Reply), duplicate: true };
      }
      const code = (error as { code?: string }).code;
      // 40001 serialization failure, 40P01 deadlock, 23505 a concurrent twin of this message id.
      if ((code === '40001' || code === '40P01' || code === '23505') && tries < 1000) {
        counters.serializationFailures += 1;
        await sleep(Math.random() * Math.min(16, 2 ** tries));
        continue;
      }
      counters.failures += 1;
      return { ok: false, duplicate: false, error: { code: 'UNAVAILABLE', message: (error as Error).message } };
    }
  }
}

/** The request's envelope, or undefined after answering BAD_REQUEST to one that is not JSON. */
function envelopeOf(msg: Msg): Envelope | undefined {
  try {
    return msg.json<Envelope>();
  } catch {
    msg.respond('{"ok":false,"duplicate":false,"error":{"code":"BAD_REQUEST","message":"not JSON"}}');
    return undefined;
  }
}

async function main(): Promise<void> {
  const nc = await connect({ servers: natsUrl!, name: `ppos-bench-${mode}` });
  let onMessage: (msg: Msg) => void;
  let pool: pg.Pool | undefined;
  if (mode === 'echo') {
    // Parses the request and answers with a reply of the same shape as ppos's: the transport's
    // own cost plus the least a responder must do (issue 17's "a responder that parses and answers").
    onMessage = (msg) => {
      const envelope = envelopeOf(msg);
      if (envelope) msg.respond(JSON.stringify({ ok: true, duplicate: false, id: envelope.id, seq: 1, events: [], state: {} }));
    };
  } else if (mode === 'serializable') {
    pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize, application_name: 'ppos-bench-a', types: JOURNAL_TYPES });
    pool.on('error', () => undefined);
    await pool.query(SCHEMA);
    const db = pool;
    onMessage = (msg) => {
      const sku = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
      const envelope = envelopeOf(msg);
      if (!envelope) return;
      void handle(db, sku, envelope).then((reply) => msg.respond(JSON.stringify(reply)));
    };
  } else {
    throw new Error(`unknown responder mode ${mode}`);
  }
  nc.subscribe(`${subjectPrefix}.>`, { queue: 'ppos', callback: (error, msg) => (error ? undefined : onMessage(msg)) });
  await nc.flush();
  process.on('message', (message: { type: string }) => {
    if (message.type === 'stats') {
      process.send?.({ type: 'stats', counters: { ...counters } });
      counters.commits = counters.attempts = counters.serializationFailures = counters.failures = 0;
    } else if (message.type === 'exit') {
      void (async () => {
        await nc.drain().catch(() => undefined);
        await pool?.end().catch(() => undefined);
        process.exit(0);
      })();
    }
  });
  process.send?.({ type: 'ready' });
}

process.on('disconnect', () => process.exit(0));
main().catch((error: unknown) => {
  process.stderr.write(`responder: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
