// An actor whose state outgrew one NATS message (here the server's max_payload is 8 KiB; by
// default it is 1 MiB, some ten thousand open reservations) still answers every command:
// applied and journaled once, with the state left out of the reply and the reason named.
// Before, publishing the reply threw: the replies after it in the batch were never sent, and
// an inspection of such an actor took the node down.
import type { AnyMachineSnapshot } from 'xstate';
import { describe, expect, it } from 'vitest';
import { inventory } from '../../actors/inventory.js';
import { restoreState } from '../../actors/state.js';
import { runCli } from '../helpers/cli.js';
import { useSuite } from '../helpers/suite.js';

const suite = useSuite({ natsConfig: 'max_payload: 8192' });
const SKU = 'big-1';
/** Open reservations enough for a state of about 12 KiB. */
const RESERVATIONS = 400;

describe('replies larger than the NATS max_payload', () => {
  it('answers every command, journals each once, and names what it left out', async () => {
    const received = await suite.client.send('inventory', SKU, 'Receive', { qty: 100_000 }, { messageId: 'big-receive' });
    expect(received.ok).toBe(true);
    const replies = [];
    for (let i = 0; i < RESERVATIONS; i += 1) {
      replies.push(await suite.client.send('inventory', SKU, 'Reserve', { reservationId: `reservation-number-${i}`, qty: 1 }, { messageId: `big-r-${i}` }));
    }
    expect(replies.map((r) => r.ok)).toEqual(replies.map(() => true));
    expect(replies.map((r) => (r.ok ? r.seq : -1))).toEqual(replies.map((_, i) => i + 2));
    const first = replies[0]!;
    const last = replies.at(-1)!;
    // Small states still come whole; the large one is left out, with the reason.
    expect(first.ok && first.state).toMatchObject({ onHand: 100_000, reserved: 1 });
    expect(last.ok && last.state).toEqual({ omitted: expect.stringContaining('max_payload') });
    expect(last.ok && last.events).toEqual([{ type: 'Reserved', reservationId: `reservation-number-${RESERVATIONS - 1}`, qty: 1 }]);
  });

  it('answers a whole batch of concurrent commands on the oversized actor, none lost', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `big-batch-${i}`);
    const replies = await Promise.all(ids.map((id) => suite.client.send('inventory', SKU, 'Reserve', { reservationId: id, qty: 1 }, { messageId: id, timeoutMs: 5_000 })));
    expect(replies.filter((r) => r.ok)).toHaveLength(ids.length);
    const seqs = replies.map((r) => (r.ok ? r.seq : 0)).sort((a, b) => a - b);
    expect(seqs).toEqual(ids.map((_, i) => RESERVATIONS + 2 + i));
    // A repeat gets the recorded first reply, also cut to fit.
    const again = await suite.client.send('inventory', SKU, 'Reserve', { reservationId: ids[0], qty: 1 }, { messageId: ids[0] });
    expect(again).toMatchObject({ ok: true, duplicate: true, seq: replies[0]!.ok ? replies[0]!.seq : -1 });
    const rows = await suite.db.query<{ n: number; distinct_ids: number; max: number }>(
      'SELECT count(*)::int AS n, count(DISTINCT message_id)::int AS distinct_ids, max(seq)::int AS max FROM ppos_events WHERE actor_id = $1',
      [SKU],
    );
    expect(rows.rows[0]).toEqual({ n: RESERVATIONS + 41, distinct_ids: RESERVATIONS + 41, max: RESERVATIONS + 41 });
  });

  it('answers Get and inspection with what fits, and the node stays up', async () => {
    const got = await suite.client.send('inventory', SKU, 'Get', {});
    expect(got).toMatchObject({ ok: true, seq: RESERVATIONS + 41, state: { omitted: expect.stringContaining('ppos state') } });
    const view = await suite.client.inspect('inventory', SKU);
    expect(view).toMatchObject({ kind: 'inventory', id: SKU, status: 'active', seq: RESERVATIONS + 41, context: { omitted: expect.stringContaining('max_payload') } });
    const small = await suite.client.send('inventory', 'small-1', 'Receive', { qty: 1 });
    expect(small).toMatchObject({ ok: true, state: { onHand: 1 } });
  });

  it('`ppos state` reads the whole state from the journal', async () => {
    const result = await runCli(['state', 'inventory', SKU, '--json'], { PPOS_DATABASE_URL: suite.db.url });
    expect(result.code).toBe(0);
    const state = JSON.parse(result.stdout) as { seq: number; context: { reservations: Record<string, unknown>; reserved: number } };
    expect(state.seq).toBe(RESERVATIONS + 41);
    expect(Object.keys(state.context.reservations)).toHaveLength(RESERVATIONS + 40);
    expect(state.context.reserved).toBe(RESERVATIONS + 40);
  });

  it('`ppos verify` compares the oversized live actor by the hash its inspection sends, and catches planted memory', async () => {
    const verify = async (): Promise<{ code: number | null; record: { confidence_status: string; reconciliation_failures: unknown[]; checks: string[] } }> => {
      const result = await runCli(['verify', 'inventory', SKU], { PPOS_DATABASE_URL: suite.db.url, PPOS_NATS_URL: suite.nats.url });
      return { code: result.code, record: JSON.parse(result.stdout) as never };
    };
    const clean = await verify();
    expect(clean.record).toMatchObject({ confidence_status: 'trusted', reconciliation_failures: [] });
    expect(clean.record.checks).toContain('live_state_matches_replay');
    expect(clean.code).toBe(0);

    // A bug planted in the live actor's memory: only the hash in the cut-down inspection shows it.
    const internals = suite.node!.registry.activeHost({ kind: 'inventory', id: SKU })!.host as unknown as { state: AnyMachineSnapshot };
    const context = internals.state.context as { onHand: number };
    internals.state = restoreState(inventory, { value: internals.state.value, context: { ...context, onHand: context.onHand + 1 } });
    try {
      const planted = await verify();
      expect(planted.record.confidence_status).toBe('suspect');
      expect(planted.record.reconciliation_failures).toEqual([expect.objectContaining({ check: 'live_state_matches_replay', actor: `inventory/${SKU}` })]);
      expect(planted.code).toBe(1);
    } finally {
      internals.state = restoreState(inventory, { value: internals.state.value, context });
    }
  });
});
