// Saga steps cannot be squatted. Their message ids are predictable, so they live in a namespace
// no client may use (`ppos:`), and travel on a subject clients are not given. If a step's id is
// ever taken anyway (a journal written before this rule, a hand-edited table), the saga raises
// an alarm instead of reading ID_REUSED as a shortage or a refusal. And a Complete whose
// consumes the inventory refused is not a plain success.
import { afterEach, describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import type { Reply } from '../../runtime/envelope.js';
import { verifyJournals } from '../../runtime/verify.js';
import { NoAnswerError } from '../../src/client.js';
import { blockAppend, releaseAllBlockers } from '../helpers/blocker.js';
import { useSuite } from '../helpers/suite.js';
import { waitFor } from '../helpers/wait.js';

const suite = useSuite();
afterEach(releaseAllBlockers);

const send = (kind: string, id: string, type: string, payload?: Record<string, unknown>, messageId?: string): Promise<Reply> =>
  suite.client.sendWithRetry(kind, id, type, payload, { timeoutMs: 5_000, deadlineMs: 20_000, ...(messageId ? { messageId } : {}) });

describe("the runtime's reserved message ids", () => {
  it('refuses a client command whose id begins with ppos:, with BAD_REQUEST, recording nothing', async () => {
    await send('inventory', 'squat-sku', 'Receive', { qty: 10 });
    for (const messageId of ['ppos:wo:WO-9:release1:reserve:0', 'ppos:wo:WO-9:release1:reserve:0:answer', 'ppos:timer:x', 'ppos:']) {
      const reply = await suite.client.send('inventory', 'squat-sku', 'Release', { reservationId: 'WO-9:0' }, { messageId });
      expect(reply, messageId).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST', message: expect.stringContaining('ppos:') } });
      const workorder = await suite.client.send('workorder', 'WO-9', 'Get', undefined, { messageId });
      expect(workorder, messageId).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    }
    const recorded = await suite.db.query("SELECT 1 FROM ppos_dedupe WHERE message_id LIKE 'ppos:%'");
    expect(recorded.rowCount).toBe(0);
  });

  it("gives saga steps ids in the reserved namespace", async () => {
    await send('inventory', 'ns-sku', 'Receive', { qty: 5 });
    await send('workorder', 'WO-NS', 'Create', { bom: [{ sku: 'ns-sku', qty: 2 }], stages: ['cut'] });
    expect(await send('workorder', 'WO-NS', 'Release', {})).toMatchObject({ ok: true, state: { status: 'released' } });
    const steps = await suite.db.query<{ message_id: string }>("SELECT message_id FROM ppos_dedupe WHERE actor_id = 'ns-sku' AND message_id LIKE 'ppos:%'");
    expect(steps.rows.map((r) => r.message_id)).toEqual(['ppos:wo:WO-NS:release1:reserve:0']);
  });
});

describe('a saga step whose id is taken', () => {
  it('is an alarm: the order stays releasing (never SHORTAGE), inspect names the step, verify reports it', async () => {
    await send('inventory', 'taken-sku', 'Receive', { qty: 10 });
    await send('workorder', 'WO-T', 'Create', { bom: [{ sku: 'taken-sku', qty: 3 }], stages: ['cut'] });
    // As a squatter could before ids were reserved: the step's id recorded for another command.
    const step = 'ppos:wo:WO-T:release1:reserve:0';
    await suite.db.query(
      `INSERT INTO ppos_dedupe (kind, actor_id, message_id, fingerprint, reply, seq, recorded_at) VALUES ('inventory', 'taken-sku', $1, 'another-command', '{"ok": true, "seq": 1, "events": []}', 1, now())`,
      [step],
    );
    const release = suite.client.send('workorder', 'WO-T', 'Release', {}, { messageId: 'release-wo-t', timeoutMs: 2_000 }).catch((error: Error) => error);

    const inspection = await waitFor('the alarm on the inspection', async () => {
      const view = await suite.client.inspect('workorder', 'WO-T');
      return Array.isArray(view.sagaAlarms) && view.sagaAlarms.length > 0 ? view : undefined;
    });
    expect(inspection.sagaAlarms).toEqual([
      expect.objectContaining({ step, target: 'inventory/taken-sku', code: 'ID_REUSED' }),
    ]);
    expect(inspection).toMatchObject({ state: { status: 'releasing' } });
    // No reply saying SHORTAGE (or anything else false) ever came.
    expect(await release).toBeInstanceOf(Error);
    const stock = await send('inventory', 'taken-sku', 'Get');
    expect(stock).toMatchObject({ ok: true, state: { reserved: 0, available: 10 } });

    const evidence = await verifyJournals({ journal: suite.node!.journal, kinds: actorKinds });
    expect(evidence.confidence_status).toBe('suspect');
    expect(evidence.reconciliation_failures).toEqual([
      expect.objectContaining({ check: 'saga_steps_unobstructed', actor: 'workorder/WO-T', detail: expect.stringContaining(step) }),
    ]);

    // Cleared, the step goes through on the next resume: the alarm was never turned into an answer.
    await suite.db.query('DELETE FROM ppos_dedupe WHERE message_id = $1', [step]);
    await suite.restartNode();
    const settled = await waitFor('the release to settle', async () => {
      const reply = await suite.client.send('workorder', 'WO-T', 'Get', undefined);
      return reply.ok && reply.state.status === 'released' ? reply : undefined;
    });
    expect(settled.ok).toBe(true);
  });
});

describe('a Complete whose consume the inventory refused', () => {
  it('completes the order but answers REJECTED / CONSUME_REFUSED, naming the line, not a plain success', async () => {
    await send('inventory', 'gone-sku', 'Receive', { qty: 10 });
    await send('inventory', 'kept-sku', 'Receive', { qty: 10 });
    await send('workorder', 'WO-C', 'Create', { bom: [{ sku: 'gone-sku', qty: 2 }, { sku: 'kept-sku', qty: 3 }], stages: ['cut'] });
    expect(await send('workorder', 'WO-C', 'Release', {})).toMatchObject({ ok: true });
    expect(await send('workorder', 'WO-C', 'Start', {})).toMatchObject({ ok: true });
    // Someone releases the order's reservation behind its back.
    expect(await send('inventory', 'gone-sku', 'Release', { reservationId: 'WO-C:0' })).toMatchObject({ ok: true, events: [{ type: 'Released' }] });

    const completed = await send('workorder', 'WO-C', 'Complete', {}, 'complete-wo-c');
    expect(completed).toMatchObject({
      ok: false,
      error: { code: 'REJECTED', reason: 'CONSUME_REFUSED', refusedLines: [{ line: 0, sku: 'gone-sku', reason: 'UNKNOWN_RESERVATION' }] },
    });
    expect(await send('workorder', 'WO-C', 'Get')).toMatchObject({ ok: true, state: { status: 'completed' } });
    expect(await send('inventory', 'kept-sku', 'Get')).toMatchObject({ ok: true, state: { onHand: 7, reserved: 0 } });
    expect(await send('workorder', 'WO-C', 'Complete', {}, 'complete-wo-c')).toEqual({ ...completed, duplicate: true });
  });
});

describe('a client waiting for a saga when its actor is dropped from memory', () => {
  it('is never told UNAVAILABLE (the command was applied): it gets no answer, and its retry gets the settled reply', async () => {
    await send('inventory', 'drop-sku', 'Receive', { qty: 5 });
    await send('workorder', 'WO-D', 'Create', { bom: [{ sku: 'drop-sku', qty: 2 }], stages: ['cut'] });
    // The saga's Reserve waits inside PostgreSQL, so the Release stays open.
    const blocker = await blockAppend(suite.db, 'inventory', 'drop-sku', 'ppos:wo:WO-D:release1:reserve:0');
    const release = suite.client.send('workorder', 'WO-D', 'Release', {}, { messageId: 'release-wo-d', timeoutMs: 3_000 });
    await blocker.waiting();
    // The work order's memory goes (as on a handoff, or after a journal failure).
    await suite.node!.registry.unloadWhere((ref) => ref.kind === 'workorder' && ref.id === 'WO-D');
    await expect(release).rejects.toBeInstanceOf(NoAnswerError);
    await blocker.release();
    const settled = await suite.client.sendWithRetry('workorder', 'WO-D', 'Release', {}, { messageId: 'release-wo-d', timeoutMs: 3_000, deadlineMs: 30_000 });
    expect(settled).toMatchObject({ ok: true, state: { status: 'released' } });
  });
});
