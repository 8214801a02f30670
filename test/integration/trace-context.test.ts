// Trace context end to end (CONTRACT.md section 9): a `traceparent` header on a request is
// carried into the journal row, the reply, every saga step and its answer, and the events the
// saga journals; with an OpenTelemetry SDK installed the runtime's spans form one tree per
// request. The SDK here is the in-memory exporter, installed by this test, never by ppos.
import { trace, type Span } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { headers } from '@nats-io/transport-node';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { commandSubject } from '../../runtime/subjects.js';
import { runCli } from '../helpers/cli.js';
import { useSuite } from '../helpers/suite.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const suite = useSuite();
afterAll(() => trace.disable());

const traceparentOfSpan = (span: Span): string => {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return `00-${traceId}-${spanId}-0${traceFlags.toString(16)}`;
};

/** One raw request, so the test sees the reply's headers as a client would. */
async function rawRequest(kind: string, id: string, body: Record<string, unknown>, traceparent?: string) {
  const h = headers();
  if (traceparent !== undefined) h.set('traceparent', traceparent);
  const msg = await suite.client.nc.request(commandSubject(kind, id), JSON.stringify(body), { timeout: 10_000, headers: h });
  return { reply: msg.json<Record<string, unknown>>(), traceparent: msg.headers?.get('traceparent') || undefined };
}

const rowsOf = (actorId: string) =>
  suite.db.query<{ seq: string; type: string; message_id: string; correlation_id: string | null; causation_id: string | null; traceparent: string | null }>(
    'SELECT seq, type, message_id, correlation_id, causation_id, traceparent FROM ppos_events WHERE actor_id = $1 ORDER BY seq',
    [actorId],
  );

// First: once an SDK is installed, the tracers the API handed out keep delegating to it (the
// API's ProxyTracer), as in a real process that installs its SDK at start.
describe('without an SDK (the default)', () => {

  it('passes the incoming traceparent through unchanged: journal row, reply, saga steps', async () => {
    const given = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    for (const sku of ['pt-a']) await suite.client.sendWithRetry('inventory', sku, 'Receive', { qty: 10 });
    await suite.client.sendWithRetry('workorder', 'WO-PT', 'Create', { bom: [{ sku: 'pt-a', qty: 1 }], stages: ['cut'] });
    const { reply, traceparent } = await rawRequest('workorder', 'WO-PT', { id: 'release-pt', type: 'Release', payload: {} }, given);
    expect(reply).toMatchObject({ ok: true, traceparent: given });
    expect(traceparent).toBe(given);
    const rows = [...(await rowsOf('WO-PT')).rows.filter((r) => Number(r.seq) > 1), ...(await rowsOf('pt-a')).rows.filter((r) => r.type === 'Reserved')];
    expect(rows.length).toBeGreaterThanOrEqual(3);
    for (const row of rows) expect(row.traceparent, row.type).toBe(given);
    // No correlation id given: the steps correlate by the id of the command that started them.
    expect(rows.filter((r) => r.type === 'Reserved').map((r) => r.correlation_id)).toEqual(['release-pt']);
  });

  it('ignores a malformed traceparent (never stored, never echoed) and still applies the command', async () => {
    for (const [n, bad] of [
      'not-a-traceparent',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    ].entries()) {
      const { reply, traceparent } = await rawRequest('inventory', 'tr-bad', { id: `bad-${n}`, type: 'Receive', payload: { qty: 1 } }, bad);
      expect(reply, bad).toMatchObject({ ok: true });
      expect(reply.traceparent, bad).toBeUndefined();
      expect(traceparent, bad).toBeUndefined();
    }
    const rows = (await rowsOf('tr-bad')).rows;
    expect(rows).toHaveLength(5);
    expect(rows.every((r) => r.traceparent === null)).toBe(true);
  });

  it('writes flags it does not know as unset: a header with flags ff is carried as a valid traceparent (never "-0ff")', async () => {
    const given = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff';
    const { reply, traceparent } = await rawRequest('inventory', 'tr-flags', { id: 'flags-1', type: 'Receive', payload: { qty: 1 } }, given);
    const carried = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect(reply).toMatchObject({ ok: true, traceparent: carried });
    expect(traceparent).toBe(carried);
    expect((await rowsOf('tr-flags')).rows.map((r) => r.traceparent)).toEqual([carried]);
  });

  it('ppos send --traceparent refuses a malformed one before sending anything', async () => {
    const result = await runCli(['send', 'inventory', 'tr-cli', 'Receive', '{"qty": 1}', '--traceparent', '00-xyz', '--nats', suite.nats.url, '--db', suite.db.url]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('not a W3C traceparent');
    expect((await rowsOf('tr-cli')).rows).toHaveLength(0);
  });
});

describe('with an OpenTelemetry SDK installed', () => {
  beforeEach(() => {
    trace.setGlobalTracerProvider(provider);
    exporter.reset();
  });

  it('a Release saga is one span tree: command, its steps, their commands on the inventories, their answers', async () => {
    for (const sku of ['tr-a', 'tr-b']) expect(await suite.client.sendWithRetry('inventory', sku, 'Receive', { qty: 10 })).toMatchObject({ ok: true });
    expect(
      await suite.client.sendWithRetry('workorder', 'WO-TR', 'Create', { bom: [{ sku: 'tr-a', qty: 2 }, { sku: 'tr-b', qty: 3 }], stages: ['cut'] }),
    ).toMatchObject({ ok: true });
    exporter.reset();

    const client = provider.getTracer('test-client').startSpan('client: release WO-TR');
    const clientTraceparent = traceparentOfSpan(client);
    const { traceId } = client.spanContext();
    const { reply, traceparent } = await rawRequest('workorder', 'WO-TR', { id: 'release-tr', type: 'Release', payload: {}, correlationId: 'order-77' }, clientTraceparent);
    client.end();
    expect(reply).toMatchObject({ ok: true, state: { status: 'released' } });
    // The reply names the runtime's span of the command, in the client's trace.
    expect(traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(traceparent).not.toBe(clientTraceparent);
    expect(reply.traceparent).toBe(traceparent);

    await provider.forceFlush();
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: ReadableSpan) => (s.parentSpanContext ? byId.get(s.parentSpanContext.spanId) : undefined);
    const childrenOf = (s: ReadableSpan) => spans.filter((c) => c.parentSpanContext?.spanId === s.spanContext().spanId);
    const named = (name: string) => spans.filter((s) => s.name === name);

    const [release] = named('ppos.command workorder Release');
    expect(release, spans.map((s) => s.name).join(', ')).toBeDefined();
    expect(parentOf(release!)?.name).toBe('client: release WO-TR');
    expect(release!.spanContext().spanId).toBe(traceparent!.split('-')[2]);
    expect(childrenOf(release!).map((s) => s.name).sort()).toEqual(
      ['ppos.decide', 'ppos.journal.commit', 'ppos.reply', 'ppos.saga.step Reserve', 'ppos.saga.step Reserve'].sort(),
    );
    const steps = named('ppos.saga.step Reserve');
    expect(steps).toHaveLength(2);
    for (const step of steps) {
      const below = childrenOf(step).map((s) => s.name).sort();
      expect(below).toEqual(['ppos.command inventory Reserve', 'ppos.saga.answer Reserve']);
      const onInventory = childrenOf(step).find((s) => s.name === 'ppos.command inventory Reserve')!;
      expect(childrenOf(onInventory).map((s) => s.name).sort()).toEqual(['ppos.decide', 'ppos.journal.commit', 'ppos.reply']);
      const answer = childrenOf(step).find((s) => s.name === 'ppos.saga.answer Reserve')!;
      // The answer is decided and journaled on the work order, inside the step's trace.
      expect(childrenOf(answer).map((s) => s.name)).toEqual(expect.arrayContaining(['ppos.decide', 'ppos.journal.commit']));
    }
    // Every span ended, and none is in another trace: the tree is whole.
    expect(spans.every((s) => s === byId.get(s.spanContext().spanId))).toBe(true);

    // The journal: every event the request caused carries its trace and its correlation.
    const workorder = (await rowsOf('WO-TR')).rows.filter((r) => Number(r.seq) > 1);
    const inventories = [...(await rowsOf('tr-a')).rows, ...(await rowsOf('tr-b')).rows].filter((r) => r.type === 'Reserved');
    expect(workorder.length).toBeGreaterThanOrEqual(3); // ReleaseRequested, two answers (and Released)
    expect(inventories).toHaveLength(2);
    for (const row of [...workorder, ...inventories]) {
      expect(row.traceparent, `${row.type} ${row.message_id}`).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
      expect(row.correlation_id, `${row.type} ${row.message_id}`).toBe('order-77');
    }
    // A step's causation is the command whose event owed it; an answer's is its step.
    for (const row of inventories) expect(row.causation_id).toBe('release-tr');
    const stepIds = inventories.map((r) => r.message_id);
    for (const row of workorder.filter((r) => r.message_id.endsWith(':answer'))) expect(stepIds).toContain(row.causation_id);
    // The step span on the inventory's row: its command's span is the step span's child.
    const stepSpanIds = new Set(steps.map((s) => s.spanContext().spanId));
    for (const row of inventories) {
      const span = byId.get(row.traceparent!.split('-')[2]!)!;
      expect(span.name).toBe('ppos.command inventory Reserve');
      expect(stepSpanIds.has(span.parentSpanContext!.spanId)).toBe(true);
    }

    // `ppos trace <id>` lists the request's events across the three actors.
    const listed = await runCli(['trace', traceId, '--db', suite.db.url, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const events = (JSON.parse(listed.stdout) as { events: { kind: string; id: string; messageId: string }[] }).events;
    expect(new Set(events.map((e) => `${e.kind}/${e.id}`))).toEqual(new Set(['workorder/WO-TR', 'inventory/tr-a', 'inventory/tr-b']));
    expect(events).toHaveLength(workorder.length + inventories.length);
  });

  it('a request without a traceparent starts a trace of its own', async () => {
    const { reply, traceparent } = await rawRequest('inventory', 'tr-root', { id: 'root-1', type: 'Receive', payload: { qty: 1 } });
    expect(reply).toMatchObject({ ok: true });
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const [row] = (await rowsOf('tr-root')).rows;
    expect(row!.traceparent).toBe(traceparent);
    await provider.forceFlush();
    const [span] = exporter.getFinishedSpans().filter((s) => s.name === 'ppos.command inventory Receive');
    expect(span!.parentSpanContext).toBeUndefined();
  });
});
