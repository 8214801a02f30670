// The dashboard in real headless Chromium (Debian's, driven by playwright-core): `ppos dashboard`
// runs as a process against a real node; the page lists actors, opens one, travels in time
// with the slider, shows a work order's saga lines, and follows a new command live.
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { actorKinds } from '../../actors/index.js';
import { inventory } from '../../actors/inventory.js';
import type { AnyMachineSnapshot } from 'xstate';
import { PposClient } from '../../src/client.js';
import { DEFAULT_ASSETS_DIR } from '../../src/dashboard/server.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { CliProcess, type CliTarget } from './cli.js';
import { journalRows, replayPrefixes } from './journal-replay.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const OUTPUT_DIR = path.resolve('test-output');
const SKU = 'dash-sku';
const WORK_ORDER = 'wo-2';

let db: TestDatabase;
let nats: PrivateNatsServer;
let node: RunningNode;
let client: PposClient;
let dashboard: CliProcess;
let browser: Browser;
let page: Page;
let url: string;

async function send(kind: string, id: string, type: string, payload?: Record<string, unknown>): Promise<void> {
  const reply = await client.send(kind, id, type, payload, { timeoutMs: 10_000 });
  if (!reply.ok) throw new Error(`${type} on ${kind}/${id} refused: ${JSON.stringify(reply.error)}`);
}

/** The context as the page shows it: an inventory's bounded inspection view (a page of reservations). */
const asShown = (state: AnyMachineSnapshot): unknown => inventory.inspectContext!(state, {});

async function contextShown(): Promise<unknown> {
  return JSON.parse((await page.getByTestId('context').textContent()) ?? 'null');
}

/** Why the browser cannot run here, if it cannot: every test then fails with it (never skips). */
function missingPrerequisite(): string | null {
  if (!existsSync(CHROMIUM)) return `the dashboard tests drive Debian's Chromium at ${CHROMIUM}, which is missing: apt-get update && apt-get install -y chromium`;
  if (!existsSync(path.join(DEFAULT_ASSETS_DIR, 'index.html'))) return `the dashboard page is not built (${DEFAULT_ASSETS_DIR}): run npm run build (npm test does)`;
  return null;
}

beforeAll(async () => {
  if (missingPrerequisite()) return;
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  node = await startTestNode(nats.url, db.url, { snapshotEvery: 5 });
  client = await PposClient.connect(nats.url);

  await send('inventory', SKU, 'Receive', { qty: 100 });
  for (let i = 0; i < 5; i += 1) await send('inventory', SKU, 'Reserve', { reservationId: `r${i}`, qty: 5 + i });
  await send('inventory', SKU, 'Release', { reservationId: 'r1' });
  await send('inventory', SKU, 'Consume', { reservationId: 'r2' });
  await send('inventory', SKU, 'Receive', { qty: 20 });
  await send('inventory', 'dash-bolt', 'Receive', { qty: 50 });
  await send('inventory', 'dash-plate', 'Receive', { qty: 30 });
  await send('inventory', 'dash-paint', 'Receive', { qty: 6 });
  const stages = ['cut', 'weld', 'paint'];
  const bom = [
    { sku: SKU, qty: 4 },
    { sku: 'dash-bolt', qty: 8 },
    { sku: 'dash-plate', qty: 2 },
  ];
  // Work orders in several states: released, in progress, completed, cancelled, and one short.
  await send('workorder', 'wo-1', 'Create', { bom, stages });
  await send('workorder', 'wo-1', 'Release', {});
  await send('workorder', WORK_ORDER, 'Create', { bom: [...bom, { sku: 'dash-paint', qty: 1 }], stages });
  await send('workorder', WORK_ORDER, 'Release', {});
  await send('workorder', WORK_ORDER, 'Start', {});
  await send('workorder', WORK_ORDER, 'AdvanceStage', { to: 'weld' });
  await send('workorder', 'wo-3', 'Create', { bom, stages: ['assemble'] });
  await send('workorder', 'wo-3', 'Release', {});
  await send('workorder', 'wo-3', 'Start', {});
  await send('workorder', 'wo-3', 'Complete', {});
  await send('workorder', 'wo-4', 'Create', { bom, stages });
  await send('workorder', 'wo-4', 'Release', {});
  await send('workorder', 'wo-4', 'Cancel', {});
  await send('workorder', 'wo-5', 'Create', { bom: [{ sku: 'dash-paint', qty: 50 }], stages });
  const short = await client.send('workorder', 'wo-5', 'Release', {}, { timeoutMs: 10_000 });
  expect(!short.ok && short.error.reason).toBe('SHORTAGE');

  const target: CliTarget = { natsUrl: nats.url, databaseUrl: db.url };
  dashboard = new CliProcess(target, ['dashboard', '--port', '0']);
  await dashboard.waitFor('the dashboard to listen', () => dashboard.stdoutLines.some((l) => l.startsWith('ppos dashboard: http://127.0.0.1:')));
  url = dashboard.stdoutLines.find((l) => l.startsWith('ppos dashboard: '))!.slice('ppos dashboard: '.length);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  page.setDefaultTimeout(15_000);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await dashboard?.stop('SIGTERM');
  await client?.close();
  await node?.stop();
  await nats?.stop();
  await db?.drop();
});

describe('ppos dashboard', () => {
  beforeEach(() => {
    const missing = missingPrerequisite();
    if (missing) throw new Error(missing);
  });

  it('lists the nodes and the active actors, sortable by mailbox depth and activity', async () => {
    await page.goto(url);
    await expect.poll(() => page.getByTestId('connection').textContent()).toBe('live');
    await page.getByTestId('node-row').first().waitFor();
    expect(await page.getByTestId('node-row').first().textContent()).toContain(node.nodeId);
    const row = page.locator(`[data-testid="actor-row"][data-actor="inventory/${SKU}"]`);
    await row.waitFor();
    const listed = await page.getByTestId('actor-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-actor')));
    expect(listed.sort()).toEqual(node.registry.list().map((a) => `${a.kind}/${a.id}`).sort());

    await page.getByTestId('sort-seq').click();
    const seqs = await page.getByTestId('actor-row').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-seq'))));
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    await page.getByTestId('sort-mailbox').click();
    await page.getByTestId('sort-activity').click();
    expect(await page.getByTestId('sort-activity').getAttribute('class')).toContain('sorted');
  });

  it('opens an actor at its latest state, with its state chart, context and timeline', async () => {
    const rows = await journalRows(db, 'inventory', SKU);
    const head = rows.length;
    await page.locator(`[data-testid="actor-row"][data-actor="inventory/${SKU}"]`).click();
    await page.locator(`[data-testid="state-seq"][data-seq="${head}"]`).waitFor();
    expect(await contextShown()).toEqual(asShown(replayPrefixes('inventory', rows)[head]!));
    expect(await page.getByTestId('inspect-status').textContent()).toBe('active');
    expect(await page.getByTestId('chart-state-active').getAttribute('data-active')).toBe('true');
    expect(await page.getByTestId('timeline-event').count()).toBe(head);
    expect(page.url()).toContain(`#/actor/inventory/${SKU}`);
  });

  it('shows, wherever the slider is moved, the state right after that event', async () => {
    const rows = await journalRows(db, 'inventory', SKU);
    const expected = replayPrefixes('inventory', rows);
    const slider = page.getByTestId('time-slider');
    for (const n of [3, 0, 7, 1, rows.length - 1]) {
      await slider.fill(String(n));
      await page.locator(`[data-testid="context"][data-seq="${n}"]`).waitFor();
      expect({ n, context: await contextShown() }).toEqual({ n, context: asShown(expected[n]!) });
      if (n > 0) {
        const current = page.locator('[data-testid="timeline-event"].current');
        expect(await current.getAttribute('data-seq')).toBe(String(n));
        expect(await page.getByTestId('event-changes').textContent()).toContain(rows[n - 1]!.type);
      }
    }
    await page.getByTestId('follow-live').click();
    await page.locator(`[data-testid="context"][data-seq="${rows.length}"]`).waitFor();
  });

  it("shows a work order's saga lines and its state on the chart, then and now", async () => {
    const rows = await journalRows(db, 'workorder', WORK_ORDER);
    const expected = replayPrefixes('workorder', rows);
    const live = expected[rows.length]!;
    expect(live.value).toBe('in_progress');
    await page.goto(`${url}#/actor/workorder/${WORK_ORDER}`);
    await page.locator(`[data-testid="context"][data-seq="${rows.length}"]`).waitFor();
    const lines = (live.context as { lines: { sku: string; status: string }[] }).lines;
    expect(lines.length).toBe(4);
    const shown = await page.getByTestId('saga-line').evaluateAll((trs) => trs.map((tr) => [tr.getAttribute('data-sku'), tr.getAttribute('data-status')]));
    expect(shown).toEqual(lines.map((l) => [l.sku, l.status]));
    expect(await page.getByTestId('state-value').textContent()).toBe('in_progress');
    expect(await page.getByTestId('chart-state-in_progress').getAttribute('data-active')).toBe('true');
    // Every state of the machine is on the chart, and only the current one is lit.
    const states = Object.keys(actorKinds.get('workorder')!.machine.root.states);
    const lit = await Promise.all(states.map(async (state) => [state, await page.getByTestId(`chart-state-${state}`).getAttribute('data-active')]));
    expect(lit).toEqual(states.map((state) => [state, state === 'in_progress' ? 'true' : 'false']));
    mkdirSync(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT_DIR, 'dashboard-workorder.png'), fullPage: true });

    // Back to the first event: a draft, and its lines not asked for yet.
    await page.getByTestId('time-slider').fill('1');
    await page.locator('[data-testid="context"][data-seq="1"]').waitFor();
    expect(await page.getByTestId('state-value').textContent()).toBe(String(expected[1]!.value));
    expect(await page.getByTestId(`chart-state-${String(expected[1]!.value)}`).getAttribute('data-active')).toBe('true');
    expect(await page.getByTestId('chart-state-in_progress').getAttribute('data-active')).toBe('false');
    const then = (expected[1]!.context as { lines: { status: string }[] }).lines.map((l) => l.status);
    expect(await page.getByTestId('saga-line').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-status')))).toEqual(then);
  });

  it('serves a read-only JSON API: diffs between seqs, and refuses writes and foreign Host names', async () => {
    const diff = (await (await fetch(`${url}api/actors/inventory/${SKU}/diff?from=1&to=3`)).json()) as { changes: unknown[]; events: { seq: number }[] };
    expect(diff.changes).toEqual([
      { path: 'reserved', change: 'changed', before: 0, after: 11, bySeqs: [2, 3] },
      { path: 'reservations.r0', change: 'added', after: { qty: 5 }, bySeqs: [2] },
      { path: 'reservations.r1', change: 'added', after: { qty: 6 }, bySeqs: [3] },
    ]);
    expect(diff.events.map((e) => e.seq)).toEqual([2, 3]);
    expect((await fetch(`${url}api/actors/inventory/${SKU}/state?at=9999`)).status).toBe(404);
    expect((await fetch(`${url}api/actors/nokind/x`)).status).toBe(404);
    expect((await fetch(`${url}api/cluster`, { method: 'POST' })).status).toBe(405);
    const { port } = new URL(url);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/api/cluster', headers: { host: `rebound.example:${port}` } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject);
    });
    expect(status).toBe(403);
  });

  it("shows each projection's lag against its budget, with a chart of the last minutes", async () => {
    await page.goto(url);
    const rows = page.getByTestId('projection-row');
    await expect.poll(async () => (await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-projection')))).sort()).toEqual(['export', 'stock', 'workorders']);
    // The node applied everything sent above: each is within its budget.
    await expect.poll(() => rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-status')))).toEqual(['ok', 'ok', 'ok']);
    const stock = page.locator('[data-testid="projection-row"][data-projection="stock"]');
    expect(await stock.locator('td').nth(4).textContent()).toBe('2000');
    await stock.getByTestId('lag-chart').waitFor();
    expect(await stock.locator('polyline').getAttribute('points')).toMatch(/^[\d.]+,[\d.]+( [\d.]+,[\d.]+)+$/);
  });

  it('reflects a new command live, without a reload', async () => {
    await page.goto(`${url}#/actor/inventory/${SKU}`);
    const head = (await journalRows(db, 'inventory', SKU)).length;
    await page.locator(`[data-testid="context"][data-seq="${head}"]`).waitFor();
    await expect.poll(() => page.getByTestId('connection').textContent()).toBe('live');
    const marker = await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
      return true;
    });
    expect(marker).toBe(true);

    const sentAt = Date.now();
    await send('inventory', SKU, 'Receive', { qty: 1 });
    await page.locator(`[data-testid="context"][data-seq="${head + 1}"]`).waitFor();
    const tookMs = Date.now() - sentAt;
    process.stderr.write(`dashboard showed the new event ${tookMs} ms after the command was sent\n`);
    const rows = await journalRows(db, 'inventory', SKU);
    expect(await contextShown()).toEqual(asShown(replayPrefixes('inventory', rows)[head + 1]!));
    expect(await page.locator(`[data-testid="timeline-event"][data-seq="${head + 1}"]`).textContent()).toContain('Received');
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);

    mkdirSync(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT_DIR, 'dashboard.png'), fullPage: true });
    expect(existsSync(path.join(OUTPUT_DIR, 'dashboard.png'))).toBe(true);
  });
});
