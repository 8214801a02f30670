// Malformed and hostile input sent as raw NATS requests (CONTRACT.md 3 and 4.7): each gets the
// error code the contract's table gives it, nothing of it reaches the journal or the dedupe
// records, and the node keeps answering normal commands.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import type { Reply } from '../../runtime/envelope.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';

let db: TestDatabase;
let nats: PrivateNatsServer;
let node: RunningNode;
let nc: NatsConnection;

const subject = (id: string, kind = 'inventory'): string => `ppos.cmd.${kind}.${id}`;

async function request(to: string, body: string | Uint8Array): Promise<Reply> {
  const msg = await nc.request(to, body, { timeout: 5_000 });
  return msg.json<Reply>();
}

const envelope = (fields: Record<string, unknown>): string => JSON.stringify(fields);

function expectError(reply: Reply, code: string): void {
  expect(reply.ok, JSON.stringify(reply)).toBe(false);
  expect(reply.duplicate).toBe(false);
  if (!reply.ok) {
    expect(reply.error.code).toBe(code);
    expect(reply.error.message.length).toBeGreaterThan(0);
  }
}

/** The node answers a normal command on the same actor afterwards. */
async function expectNodeServes(actorId: string): Promise<void> {
  const reply = await request(subject(actorId), envelope({ id: `ok-${actorId}-${Date.now()}`, type: 'Receive', payload: { qty: 1 } }));
  expect(reply).toMatchObject({ ok: true, duplicate: false, events: [{ type: 'Received', qty: 1 }] });
}

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  node = await startTestNode(nats.url, db.url);
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await node?.stop();
  await nats?.stop();
  await db?.drop();
});

describe('the request body', () => {
  it.each<[string, string | Uint8Array]>([
    ['an empty body', ''],
    ['plain text', 'Receive 10 please'],
    ['truncated JSON', '{"id": "m1", "type": "Receive", "payload": {"qty": 1}'],
    ['JSON with a trailing comma', '{"id": "m1", "type": "Receive",}'],
    ['bytes that are not UTF-8', new Uint8Array([0xff, 0xfe, 0x7b, 0x00, 0xc3, 0x28])],
  ])('%s is BAD_REQUEST', async (_what, body) => {
    expectError(await request(subject('body-1'), body), 'BAD_REQUEST');
  });

  it.each<[string, string]>([
    ['null', 'null'],
    ['a number', '42'],
    ['a string', '"Receive"'],
    ['an array', '[{"id": "m1", "type": "Receive"}]'],
    ['an object that is a reply', '{"ok": true, "duplicate": false, "seq": 1, "events": [], "state": {}}'],
  ])('JSON that is %s rather than an envelope is BAD_REQUEST', async (_what, body) => {
    expectError(await request(subject('body-2'), body), 'BAD_REQUEST');
  });

  it('a body just under NATS max_payload (1 MiB) is BAD_REQUEST, whether JSON or not', async () => {
    const max = nc.info!.max_payload;
    expect(max).toBe(1024 * 1024);
    const size = max - 1024;
    const json = envelope({ id: 'huge-1', type: 'Receive', payload: { qty: 1, filler: 'x'.repeat(size - 80) } });
    expect(json.length).toBeLessThan(max);
    expect(json.length).toBeGreaterThan(size - 200);
    expectError(await request(subject('huge-1'), json), 'BAD_REQUEST');
    expectError(await request(subject('huge-1'), new Uint8Array(size).fill(0x7b)), 'BAD_REQUEST');
    await expectNodeServes('huge-1');
  });

  it('a body over 64 KiB is BAD_REQUEST even when it is a valid command', async () => {
    const padded = `${envelope({ id: 'big-1', type: 'Receive', payload: { qty: 1 } })}${' '.repeat(64 * 1024)}`;
    expectError(await request(subject('big-1'), padded), 'BAD_REQUEST');
    expect((await db.query("SELECT 1 FROM ppos_dedupe WHERE message_id = 'big-1'")).rowCount).toBe(0);
  });

  it('deeply nested JSON is BAD_REQUEST', async () => {
    const depth = 20_000;
    const body = `{"id":"deep-1","type":"Receive","payload":{"qty":${'['.repeat(depth)}${']'.repeat(depth)}}}`;
    expect(body.length).toBeLessThan(64 * 1024);
    expectError(await request(subject('deep-1'), body), 'BAD_REQUEST');
    await expectNodeServes('deep-1');
  });
});

describe('envelope fields', () => {
  it.each<[string, Record<string, unknown>]>([
    ['a missing id', { type: 'Receive', payload: { qty: 1 } }],
    ['an empty id', { id: '', type: 'Receive', payload: { qty: 1 } }],
    ['a numeric id', { id: 7, type: 'Receive', payload: { qty: 1 } }],
    ['an id with a space', { id: 'm 1', type: 'Receive', payload: { qty: 1 } }],
    ['an id with a NUL byte', { id: 'm\u00001', type: 'Receive', payload: { qty: 1 } }],
    ['an id of 129 characters', { id: 'm'.repeat(129), type: 'Receive', payload: { qty: 1 } }],
    ['a missing type', { id: 'f-1', payload: { qty: 1 } }],
    ['a numeric type', { id: 'f-1', type: 3, payload: { qty: 1 } }],
    ['an empty type', { id: 'f-1', type: '', payload: { qty: 1 } }],
    ['a payload that is a string', { id: 'f-1', type: 'Receive', payload: '{"qty": 1}' }],
    ['a payload that is an array', { id: 'f-1', type: 'Receive', payload: [1] }],
    ['a payload that is null', { id: 'f-1', type: 'Receive', payload: null }],
    ['a NUL byte in correlationId', { id: 'f-1', type: 'Receive', payload: { qty: 1 }, correlationId: 'c\u0000rr' }],
    ['a NUL byte in causationId', { id: 'f-1', type: 'Receive', payload: { qty: 1 }, causationId: '\u0000' }],
    ['a numeric correlationId', { id: 'f-1', type: 'Receive', payload: { qty: 1 }, correlationId: 12 }],
    ['an empty correlationId', { id: 'f-1', type: 'Receive', payload: { qty: 1 }, correlationId: '' }],
  ])('%s is BAD_REQUEST', async (_what, fields) => {
    expectError(await request(subject('env-1'), envelope(fields)), 'BAD_REQUEST');
  });

  it('none of them left a trace in the journal or the dedupe records', async () => {
    await expectNodeServes('env-1');
    const events = await db.query<{ message_id: string }>("SELECT message_id FROM ppos_events WHERE actor_id = 'env-1'");
    expect(events.rows).toHaveLength(1);
    expect(events.rows[0]!.message_id).toMatch(/^ok-env-1-/);
    expect((await db.query("SELECT 1 FROM ppos_dedupe WHERE actor_id = 'env-1' AND message_id NOT LIKE 'ok-%'")).rowCount).toBe(0);
  });

  it('a correlationId and causationId that are fine are journaled with the event', async () => {
    const reply = await request(subject('env-2'), envelope({ id: 'trace-1', type: 'Receive', payload: { qty: 1 }, correlationId: 'order-9', causationId: 'cause-3' }));
    expect(reply.ok).toBe(true);
    const row = await db.query("SELECT correlation_id, causation_id FROM ppos_events WHERE actor_id = 'env-2' AND message_id = 'trace-1'");
    expect(row.rows).toEqual([{ correlation_id: 'order-9', causation_id: 'cause-3' }]);
  });
});

describe('payloads', () => {
  it.each<[string, string, unknown]>([
    ['a negative qty', 'Receive', { qty: -5 }],
    ['a zero qty', 'Receive', { qty: 0 }],
    ['a fractional qty', 'Receive', { qty: 2.5 }],
    ['a qty in exponent form that is fractional', 'Receive', { qty: 1e-3 }],
    ['a qty as a string', 'Receive', { qty: '10' }],
    ['a qty that overflows to Infinity', 'Receive', '1e400'],
    ['a missing qty', 'Receive', {}],
    ['an extra field', 'Receive', { qty: 1, admin: true }],
    ['a __proto__ field', 'Receive', '{"__proto__": {"qty": 1}}'],
    ['a negative reservation qty', 'Reserve', { reservationId: 'r1', qty: -1 }],
    ['a fractional reservation qty', 'Reserve', { reservationId: 'r1', qty: 0.5 }],
    ['a reservation id with a dot', 'Reserve', { reservationId: 'r.1', qty: 1 }],
    ['a reservation id with a NUL', 'Reserve', { reservationId: 'r\u00001', qty: 1 }],
    ['a reservation id that is an object', 'Release', { reservationId: { $ne: null } }],
    ['a missing reservation id', 'Consume', {}],
    ['a negative onHand', 'Adjust', { onHand: -1 }],
    ['a fractional onHand', 'Adjust', { onHand: 1.5 }],
    ['a payload on Get', 'Get', { qty: 1 }],
  ])('%s is BAD_REQUEST', async (_what, type, payload) => {
    // A string payload is spliced in raw: JSON that JSON.stringify cannot produce.
    const raw = typeof payload === 'string' ? payload : JSON.stringify(payload);
    const body = `{"id": "p-${type}", "type": "${type}", "payload": ${raw}}`;
    expectError(await request(subject('pay-1'), body), 'BAD_REQUEST');
  });

  it.each(['Explode', 'receive', 'Received', '__proto__', 'constructor', 'Create', 'x'.repeat(64)])(
    'an unknown command type %j is UNKNOWN_COMMAND',
    async (type) => {
      expectError(await request(subject('pay-1'), envelope({ id: 'u-1', type, payload: { qty: 1 } })), 'UNKNOWN_COMMAND');
    },
  );

  it('a type longer than 64 characters is BAD_REQUEST', async () => {
    expectError(await request(subject('pay-1'), envelope({ id: 'u-2', type: 'x'.repeat(65) })), 'BAD_REQUEST');
  });

  it('a refused message id is free for the fixed command: BAD_REQUEST and UNKNOWN_COMMAND are not recorded', async () => {
    expectError(await request(subject('pay-2'), envelope({ id: 'fix-1', type: 'Receive', payload: { qty: -1 } })), 'BAD_REQUEST');
    expectError(await request(subject('pay-2'), envelope({ id: 'fix-1', type: 'Recieve', payload: { qty: 1 } })), 'UNKNOWN_COMMAND');
    const fixed = await request(subject('pay-2'), envelope({ id: 'fix-1', type: 'Receive', payload: { qty: 1 } }));
    expect(fixed).toMatchObject({ ok: true, duplicate: false, seq: 1 });
  });

  it('a business-rule refusal is REJECTED with its reason', async () => {
    const reply = await request(subject('pay-3'), envelope({ id: 'rej-1', type: 'Reserve', payload: { reservationId: 'r1', qty: 1 } }));
    expect(reply).toMatchObject({ ok: false, duplicate: false, error: { code: 'REJECTED', reason: 'INSUFFICIENT_STOCK' } });
  });

  it('leaves the actor it was aimed at intact', async () => {
    await expectNodeServes('pay-1');
    const events = await db.query("SELECT type, data FROM ppos_events WHERE actor_id = 'pay-1'");
    expect(events.rows).toEqual([{ type: 'Received', data: { qty: 1 } }]);
  });
});

describe('subjects', () => {
  const body = (id: string): string => envelope({ id, type: 'Receive', payload: { qty: 1 } });

  it.each([
    ['a dot in the id (five tokens)', 'ppos.cmd.inventory.a.b'],
    ['a dot and more tokens', 'ppos.cmd.inventory.a.b.c.d'],
    ['an unknown kind', 'ppos.cmd.widget.w1'],
    ['an id of 129 characters', `ppos.cmd.inventory.${'a'.repeat(129)}`],
    ['an id with a colon', 'ppos.cmd.inventory.a:b'],
    ['an id with non-ASCII letters', 'ppos.cmd.inventory.lager-ö'],
    ['a literal * as the id', 'ppos.cmd.inventory.*'],
    ['a literal > as the id', 'ppos.cmd.inventory.>'],
    ['a * inside the id', 'ppos.cmd.inventory.a*b'],
    ['a > inside the id', 'ppos.cmd.inventory.a>b'],
    ['a wildcard kind', 'ppos.cmd.*.a'],
    ['a NUL byte in the id', 'ppos.cmd.inventory.a\u0000b'],
    ['a no-break space in the id', 'ppos.cmd.inventory.a\u00a0b'],
  ])('%s reaches the node and is BAD_REQUEST', async (_what, to) => {
    // The NATS client publishes literal wildcard tokens; the server delivers them to the
    // node's ppos.cmd.> subscription like any other token.
    expectError(await request(to, body('s-1')), 'BAD_REQUEST');
  });

  it.each([
    ['a space', 'ppos.cmd.inventory.a b'],
    ['a tab', 'ppos.cmd.inventory.a\tb'],
    ['a trailing space', 'ppos.cmd.inventory.a '],
  ])('an id with %s is refused by the NATS client before it is sent', async (_what, to) => {
    await expect(nc.request(to, body('s-2'), { timeout: 2_000 })).rejects.toThrow(/illegal subject|invalid subject/i);
  });

  it('a plain publish (no reply subject) is ignored and harms nothing', async () => {
    nc.publish(subject('pub-1'), body('pub-m1'));
    nc.publish(subject('pub-1'), 'not json');
    await nc.flush();
    await expectNodeServes('pub-1');
    const events = await db.query<{ message_id: string }>("SELECT message_id FROM ppos_events WHERE actor_id = 'pub-1'");
    expect(events.rows.map((r) => r.message_id)).not.toContain('pub-m1');
  });

  it('no bad subject created an actor or a journal row', async () => {
    const actors = await db.query<{ actor_id: string }>('SELECT DISTINCT actor_id FROM ppos_events UNION SELECT DISTINCT actor_id FROM ppos_dedupe');
    for (const { actor_id: id } of actors.rows) expect(id).toMatch(/^[A-Za-z0-9_-]{1,128}$/);
    expect(actors.rows.map((r) => r.actor_id)).not.toContain('a');
  });
});

describe('after all of it', () => {
  it('the node still answers normal commands, on new and old actors', async () => {
    await expectNodeServes('after-1');
    await expectNodeServes('pay-1');
    const get = await request(subject('pay-1'), envelope({ id: 'after-get', type: 'Get' }));
    expect(get).toMatchObject({ ok: true, state: { onHand: 2, reserved: 0 } });
  });

  it('every journal still replays cleanly', async () => {
    const { verifyJournals } = await import('../../runtime/verify.js');
    const { actorKinds } = await import('../../actors/index.js');
    const record = await verifyJournals({ journal: node.journal, kinds: actorKinds });
    expect(record.reconciliation_failures).toEqual([]);
    expect(record.confidence_status).toBe('trusted');
  });
});
