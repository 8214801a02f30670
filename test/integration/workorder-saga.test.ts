import { describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import { crossActorChecks } from '../../runtime/cross-checks.js';
import type { Reply } from '../../runtime/envelope.js';
import { verifyJournals } from '../../runtime/verify.js';
import { useSuite } from '../helpers/suite.js';

const suite = useSuite();

const send = (kind: string, id: string, type: string, payload?: Record<string, unknown>, messageId?: string): Promise<Reply> =>
  suite.client.sendWithRetry(kind, id, type, payload, { timeoutMs: 10_000, deadlineMs: 30_000, ...(messageId ? { messageId } : {}) });

async function inventoryState(sku: string): Promise<Record<string, unknown>> {
  const reply = await send('inventory', sku, 'Get');
  if (!reply.ok) throw new Error(JSON.stringify(reply));
  return reply.state;
}

async function evidence() {
  return verifyJournals({ journal: suite.node!.journal, kinds: actorKinds, crossChecks: crossActorChecks(actorKinds) });
}

describe('work order sagas over NATS', () => {
  it('releases when every line is in stock, holding a reservation per line', async () => {
    await send('inventory', 'steel', 'Receive', { qty: 10 });
    await send('inventory', 'bolts', 'Receive', { qty: 100 });
    await send('workorder', 'wo-1', 'Create', { bom: [{ sku: 'steel', qty: 4 }, { sku: 'bolts', qty: 20 }], stages: ['cut', 'weld', 'paint'] });
    const released = await send('workorder', 'wo-1', 'Release', {});
    expect(released.ok).toBe(true);
    if (!released.ok) return;
    expect(released.state.status).toBe('released');
    expect(released.events.map((e) => e.type)).toEqual(['ReleaseStarted', 'LineReserved', 'LineReserved']);
    expect(await inventoryState('steel')).toMatchObject({ onHand: 10, reserved: 4, reservations: [{ id: 'wo-1:0', qty: 4, workOrderId: 'wo-1' }] });
    expect(await inventoryState('bolts')).toMatchObject({ reserved: 20, reservations: [{ id: 'wo-1:1', qty: 20, workOrderId: 'wo-1' }] });
  });

  it('answers a repeated Release with the settled first reply', async () => {
    await send('workorder', 'wo-r', 'Create', { bom: [{ sku: 'bolts', qty: 1 }], stages: ['s'] });
    const first = await send('workorder', 'wo-r', 'Release', {}, 'release-wo-r');
    const again = await send('workorder', 'wo-r', 'Release', {}, 'release-wo-r');
    expect(again).toEqual({ ...first, duplicate: true });
  });

  it('compensates a shortage: releases the held lines, returns to draft with SHORTAGE and the short SKUs', async () => {
    await send('inventory', 'a1', 'Receive', { qty: 5 });
    await send('inventory', 'a2', 'Receive', { qty: 5 });
    await send('inventory', 'a3', 'Receive', { qty: 1 });
    const before = await Promise.all(['a1', 'a2', 'a3'].map(inventoryState));
    await send('workorder', 'wo-short', 'Create', { bom: [{ sku: 'a1', qty: 2 }, { sku: 'a2', qty: 3 }, { sku: 'a3', qty: 2 }], stages: ['x'] });
    const reply = await send('workorder', 'wo-short', 'Release', {});
    expect(reply.ok).toBe(false);
    if (reply.ok) return;
    expect(reply.error).toMatchObject({ code: 'REJECTED', reason: 'SHORTAGE', shortSkus: ['a3'] });
    const after = await Promise.all(['a1', 'a2', 'a3'].map(inventoryState));
    expect(after).toEqual(before);
    const wo = await send('workorder', 'wo-short', 'Get');
    expect(wo.ok && wo.state.status).toBe('draft');
  });

  it('completes: consumes every reservation; AdvanceStage is idempotent and refuses skips', async () => {
    await send('inventory', 'c1', 'Receive', { qty: 10 });
    await send('workorder', 'wo-c', 'Create', { bom: [{ sku: 'c1', qty: 3 }], stages: ['one', 'two', 'three'] });
    expect((await send('workorder', 'wo-c', 'Release', {})).ok).toBe(true);
    expect((await send('workorder', 'wo-c', 'Start', {})).ok).toBe(true);
    const skip = await send('workorder', 'wo-c', 'AdvanceStage', { to: 'three' });
    expect(!skip.ok && skip.error).toMatchObject({ code: 'REJECTED', reason: 'STAGE_SKIPPED' });
    expect((await send('workorder', 'wo-c', 'AdvanceStage', { to: 'two' })).ok).toBe(true);
    const same = await send('workorder', 'wo-c', 'AdvanceStage', { to: 'two' });
    expect(same.ok && same.events).toEqual([]);
    const early = await send('workorder', 'wo-c', 'Complete', {});
    expect(!early.ok && early.error.reason).toBe('NOT_AT_LAST_STAGE');
    expect((await send('workorder', 'wo-c', 'AdvanceStage', { to: 'three' })).ok).toBe(true);
    const done = await send('workorder', 'wo-c', 'Complete', {});
    expect(done.ok && done.state.status).toBe('completed');
    expect(await inventoryState('c1')).toMatchObject({ onHand: 7, reserved: 0, reservations: [] });
  });

  it('cancels after release: every reservation is released', async () => {
    await send('inventory', 'd1', 'Receive', { qty: 10 });
    await send('workorder', 'wo-x', 'Create', { bom: [{ sku: 'd1', qty: 6 }], stages: ['s'] });
    await send('workorder', 'wo-x', 'Release', {});
    expect((await inventoryState('d1')).reserved).toBe(6);
    const cancelled = await send('workorder', 'wo-x', 'Cancel', {});
    expect(cancelled.ok && cancelled.state.status).toBe('cancelled');
    expect(await inventoryState('d1')).toMatchObject({ onHand: 10, reserved: 0 });
    const evidenceRecord = await evidence();
    expect(evidenceRecord.reconciliation_failures).toEqual([]);
  });

  it('50 work orders racing for stock enough for 20: exactly 20 released, 30 short, nothing negative', async () => {
    await send('inventory', 'last-cabin', 'Receive', { qty: 20 });
    const ids = Array.from({ length: 50 }, (_, i) => `race-${i}`);
    await Promise.all(ids.map((id) => send('workorder', id, 'Create', { bom: [{ sku: 'last-cabin', qty: 1 }], stages: ['s'] })));
    const replies = await Promise.all(ids.map((id) => send('workorder', id, 'Release', {})));
    const released = replies.filter((r) => r.ok).length;
    const short = replies.filter((r) => !r.ok && r.error.reason === 'SHORTAGE').length;
    expect({ released, short }).toEqual({ released: 20, short: 30 });
    const stock = await inventoryState('last-cabin');
    expect(stock).toMatchObject({ onHand: 20, reserved: 20, available: 0 });
    expect(Object.keys(stock.reservations as object)).toHaveLength(20);
    const record = await evidence();
    expect(record.confidence_status).toBe('trusted');
  });

  it('refuses answers sent from outside: @Answer is internal only', async () => {
    const reply = await suite.client.send('workorder', 'wo-1', '@Answer', { tag: { step: 'reserve', line: 0, attempt: 1 }, ok: true });
    expect(!reply.ok && reply.error.code).toBe('UNKNOWN_COMMAND');
  });
});
