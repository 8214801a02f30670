// Consumed reservations do not live in an inventory actor's memory (CONTRACT.md 4.8): a Consumed
// event establishes the fact `consumed:<id>`, indexed by the journal in the same statement; a
// decision that needs it is answered from the journal, after a restart as before it, and a
// decision that took it to be absent is refused by the journal and made again. `verify` checks
// the index against the events.
import { describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import { verifyJournals } from '../../runtime/verify.js';
import { useSuite } from '../helpers/suite.js';

const suite = useSuite();
const send = (id: string, type: string, payload?: Record<string, unknown>, messageId?: string) =>
  suite.client.send('inventory', id, type, payload, messageId === undefined ? {} : { messageId });

describe('consumed reservations as facts of the journal', () => {
  it('answers "already consumed" from the journal, after a restart too, and holds no consumed id in memory', async () => {
    await send('fact-1', 'Receive', { qty: 10 });
    await send('fact-1', 'Reserve', { reservationId: 'r1', qty: 3 });
    expect(await send('fact-1', 'Consume', { reservationId: 'r1' })).toMatchObject({ ok: true, events: [{ type: 'Consumed' }] });
    const facts = await suite.db.query("SELECT key, seq FROM ppos_event_facts WHERE actor_id = 'fact-1'");
    expect(facts.rows).toEqual([{ key: 'consumed:r1', seq: 3 }]);

    await suite.restartNode();
    // A new message, not a repeat: decided again, on the fact the journal holds.
    expect(await send('fact-1', 'Consume', { reservationId: 'r1' })).toMatchObject({ ok: true, events: [], state: { onHand: 7, reserved: 0 } });
    expect(await send('fact-1', 'Reserve', { reservationId: 'r1', qty: 1 })).toMatchObject({
      ok: false,
      error: { code: 'REJECTED', reason: 'RESERVATION_CONSUMED' },
    });
    const state = suite.node!.registry.activeHost({ kind: 'inventory', id: 'fact-1' })!.host.current.context;
    expect(Object.keys(state as object).sort()).toEqual(['onHand', 'reservations', 'reserved']);
  });

  it('refuses a Reserve of an id a Consume just before it consumed, in one batch or not', async () => {
    await send('fact-2', 'Receive', { qty: 10 });
    await send('fact-2', 'Reserve', { reservationId: 'b1', qty: 2 });
    // Sent together (often decided together ahead of one commit): the Reserve sees the Consume's fact.
    const [consume, reserve] = await Promise.all([send('fact-2', 'Consume', { reservationId: 'b1' }), send('fact-2', 'Reserve', { reservationId: 'b1', qty: 1 })]);
    expect(consume).toMatchObject({ ok: true, events: [{ type: 'Consumed' }] });
    expect(reserve).toMatchObject({ ok: false, error: { reason: 'RESERVATION_CONSUMED' } });
  });

  it('a decision that took a fact to be absent is refused by the journal, and made again knowing it', async () => {
    await send('fact-3', 'Receive', { qty: 10 });
    await send('fact-3', 'Reserve', { reservationId: 'x1', qty: 2 });
    await send('fact-3', 'Consume', { reservationId: 'x1' });
    // A new node learns nothing of x1 until asked: its first decision takes the fact as absent.
    await suite.restartNode();
    const reserved = await send('fact-3', 'Reserve', { reservationId: 'x1', qty: 1 }, 'fact-3-again');
    expect(reserved).toMatchObject({ ok: false, error: { reason: 'RESERVATION_CONSUMED' } });
    const events = await suite.db.query("SELECT type FROM ppos_events WHERE actor_id = 'fact-3' ORDER BY seq");
    expect(events.rows.map((r) => r.type)).toEqual(['Received', 'Reserved', 'Consumed']);
    // The rejection is what was recorded for the message id.
    const record = await suite.db.query("SELECT reply FROM ppos_dedupe WHERE message_id = 'fact-3-again'");
    expect(record.rows[0]).toMatchObject({ reply: { ok: false, error: { reason: 'RESERVATION_CONSUMED' } } });
  });

  it('verify checks the index of facts against the events, and catches one deleted or forged', async () => {
    const trusted = await verifyJournals({ journal: suite.node!.journal, kinds: actorKinds, actors: [{ kind: 'inventory', id: 'fact-1' }] });
    expect(trusted.checks).toContain('facts_match_events');
    expect(trusted.confidence_status).toBe('trusted');

    await suite.db.query("DELETE FROM ppos_event_facts WHERE actor_id = 'fact-1' AND key = 'consumed:r1'");
    await suite.db.query("INSERT INTO ppos_event_facts (kind, actor_id, key, seq) VALUES ('inventory', 'fact-1', 'consumed:never', 1)");
    const suspect = await verifyJournals({ journal: suite.node!.journal, kinds: actorKinds, actors: [{ kind: 'inventory', id: 'fact-1' }] });
    expect(suspect.confidence_status).toBe('suspect');
    expect(suspect.reconciliation_failures).toEqual([
      expect.objectContaining({ check: 'facts_match_events', detail: expect.stringContaining('consumed:r1') }),
      expect.objectContaining({ check: 'facts_match_events', detail: expect.stringContaining('consumed:never') }),
    ]);
  });
});
