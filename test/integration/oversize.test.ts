// Replies stay bounded whatever an actor holds (CONTRACT.md 3 and 4.8): here the NATS server's
// max_payload is 8 KiB and one SKU holds 440 open reservations (a state of about 15 KiB). Every
// command is answered with the summary and the reservation it named; Get and inspection page;
// `ppos state` reads the whole state from the journal; verify compares memory by its hash.
// (Before, such replies carried the whole state and had to be cut to fit.)
import type { AnyMachineSnapshot } from 'xstate';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useSuite } from '../helpers/suite.js';

const suite = useSuite({ natsConfig: 'max_payload: 8192' });
const SKU = 'big-1';
const RESERVATIONS = 400;

describe('replies of an actor whose state outgrew one NATS message', () => {
  it('carry the summary and the named reservation, whatever the state holds', async () => {
    const received = await suite.client.send('inventory', SKU, 'Receive', { qty: 100_000 }, { messageId: 'big-receive' });
    expect(received.ok).toBe(true);
    const replies = [];
    for (let i = 0; i < RESERVATIONS; i += 1) {
      replies.push(await suite.client.send('inventory', SKU, 'Reserve', { reservationId: `reservation-number-${i}`, qty: 1 }, { messageId: `big-r-${i}` }));
    }
    expect(replies.map((r) => (r.ok ? r.seq : -1))).toEqual(replies.map((_, i) => i + 2));
    const last = replies.at(-1)!;
    expect(last).toEqual({
      ok: true,
      duplicate: false,
      seq: RESERVATIONS + 1,
      events: [{ type: 'Reserved', reservationId: `reservation-number-${RESERVATIONS - 1}`, qty: 1 }],
      state: { onHand: 100_000, reserved: RESERVATIONS, available: 100_000 - RESERVATIONS, openReservations: RESERVATIONS, reservation: { qty: 1 } },
      token: expect.any(String),
    });
    expect(Math.max(...replies.map((r) => JSON.stringify(r).length))).toBeLessThan(2_048);
  });

  it('answers a whole batch of concurrent commands, none lost, each with its own reservation', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `big-batch-${i}`);
    const replies = await Promise.all(ids.map((id) => suite.client.send('inventory', SKU, 'Reserve', { reservationId: id, qty: 1 }, { messageId: id, timeoutMs: 5_000 })));
    expect(replies.filter((r) => r.ok)).toHaveLength(ids.length);
    const seqs = replies.map((r) => (r.ok ? r.seq : 0)).sort((a, b) => a - b);
    expect(seqs).toEqual(ids.map((_, i) => RESERVATIONS + 2 + i));
    for (const reply of replies) expect(reply.ok && reply.state.reservation).toEqual({ qty: 1 });
    const again = await suite.client.send('inventory', SKU, 'Reserve', { reservationId: ids[0], qty: 1 }, { messageId: ids[0] });
    expect(again).toEqual({ ...replies[0], duplicate: true });
  });

  it('pages Get and inspection through every open reservation, in id order', async () => {
    const ids: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page += 1) {
      const got = await suite.client.send('inventory', SKU, 'Get', { reservations: { ...(after ? { after } : {}), limit: 100 } });
      if (!got.ok) throw new Error(JSON.stringify(got));
      expect(got.state).toMatchObject({ openReservations: RESERVATIONS + 40, reserved: RESERVATIONS + 40 });
      ids.push(...(got.state.reservations as { id: string }[]).map((r) => r.id));
      after = got.state.next as string | undefined;
      if (after === undefined) break;
    }
    expect(ids).toHaveLength(RESERVATIONS + 40);
    expect(ids).toEqual([...ids].sort((a, b) => (a < b ? -1 : 1)));
    expect(new Set(ids).size).toBe(ids.length);
    const view = await suite.client.inspect('inventory', SKU, 5_000, { page: { reservations: { after: ids[99], limit: 50 } } });
    expect(view).toMatchObject({ status: 'active', seq: RESERVATIONS + 41, context: { openReservations: RESERVATIONS + 40, next: ids[149] } });
    expect((view.context as { reservations: { id: string }[] }).reservations.map((r) => r.id)).toEqual(ids.slice(100, 150));
  });

  it('`ppos state` reads the whole state from the journal', async () => {
    const result = await runCli(['state', 'inventory', SKU, '--json'], { PPOS_DATABASE_URL: suite.db.url });
    expect(result.code).toBe(0);
    const state = JSON.parse(result.stdout) as { seq: number; context: { reservations: { ids: string }; reserved: number } };
    expect(state.seq).toBe(RESERVATIONS + 41);
    // As snapshots store it: the ids one per line.
    expect(state.context.reservations.ids.split('\n')).toHaveLength(RESERVATIONS + 40);
    expect(state.context.reserved).toBe(RESERVATIONS + 40);
  });

  it('`ppos verify` compares the live actor by the hash of its whole state, and catches planted memory', async () => {
    const verify = async (): Promise<{ code: number | null; record: { confidence_status: string; reconciliation_failures: unknown[]; checks: string[] } }> => {
      const result = await runCli(['verify', 'inventory', SKU], { PPOS_DATABASE_URL: suite.db.url, PPOS_NATS_URL: suite.nats.url });
      return { code: result.code, record: JSON.parse(result.stdout) as never };
    };
    const clean = await verify();
    expect(clean.record).toMatchObject({ confidence_status: 'trusted', reconciliation_failures: [] });
    expect(clean.record.checks).toContain('live_state_matches_replay');
    expect(clean.code).toBe(0);

    // A bug planted in the live actor's memory: only the hash of the whole state shows it.
    const internals = suite.node!.registry.activeHost({ kind: 'inventory', id: SKU })!.host as unknown as { state: AnyMachineSnapshot };
    const honest = internals.state;
    internals.state = { ...honest, context: { ...(honest.context as object), onHand: (honest.context as { onHand: number }).onHand + 1 } } as AnyMachineSnapshot;
    try {
      const planted = await verify();
      expect(planted.record.confidence_status).toBe('suspect');
      expect(planted.record.reconciliation_failures).toEqual([expect.objectContaining({ check: 'live_state_matches_replay', actor: `inventory/${SKU}` })]);
      expect(planted.code).toBe(1);
    } finally {
      internals.state = honest;
    }
  });
});
