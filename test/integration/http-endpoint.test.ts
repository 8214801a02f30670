// A node's HTTP port (`--http`): /metrics scraped under load counts what was sent, by kind, type
// and outcome; /healthz answers while the process runs; /readyz goes 503 when PostgreSQL is cut
// and 200 when it returns, and 503 while the node drains. Over real NATS and PostgreSQL (the
// database behind a proxy the test can cut).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PposClient } from '../../src/client.js';
import { resolveConfig } from '../../src/config.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { startNode, type RunningNode } from '../../src/node.js';
import { silentLogger } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

let db: TestDatabase;
let nats: PrivateNatsServer;
let proxy: TcpProxy;
let node: RunningNode;
let client: PposClient;
let base: string;

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  const target = new URL(db.url);
  proxy = await TcpProxy.start(target.hostname, Number(target.port || 5432));
  node = await startNode(resolveConfig({ nats: nats.url, db: proxy.urlFor(db.url), node: 'http-node', http: '127.0.0.1:0', followers: 'none' }, {}), silentLogger);
  base = node.httpUrl!;
  client = await PposClient.connect(nats.url);
}, 60_000);

afterAll(async () => {
  await client?.close();
  proxy?.restore();
  await node?.stop();
  await proxy?.close();
  await nats?.stop();
  await db?.drop();
});

/** The value of one sample of `name` with these labels in a Prometheus text page, or 0. */
function sample(page: string, name: string, labels: Record<string, string>): number {
  for (const line of page.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([k, v]) => inner.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

describe('the HTTP port', () => {
  it('counts in /metrics exactly what was sent, by kind, type and outcome, under concurrent load', async () => {
    const before = await (await fetch(`${base}/metrics`)).text();
    const oks = 200;
    await client.sendWithRetry('inventory', 'sku-m', 'Receive', { qty: 1_000_000 });
    await Promise.all(Array.from({ length: oks }, (_, i) => client.sendWithRetry('inventory', `sku-m${i % 20}`, 'Receive', { qty: 1 })));
    // Rejected: more than is there.
    const rejected = await client.send('inventory', 'sku-empty', 'Reserve', { reservationId: 'r-1', qty: 5 });
    expect(rejected).toMatchObject({ ok: false, error: { code: 'REJECTED' } });
    // A made-up command type is counted, but not as a label of its own.
    await client.send('inventory', 'sku-m', 'Fly', {});
    const page = await (await fetch(`${base}/metrics`)).text();
    const delta = (labels: Record<string, string>) => sample(page, 'ppos_commands_total', labels) - sample(before, 'ppos_commands_total', labels);
    expect(delta({ kind: 'inventory', type: 'Receive', outcome: 'ok' })).toBe(oks + 1);
    expect(delta({ kind: 'inventory', type: 'Reserve', outcome: 'REJECTED' })).toBe(1);
    expect(delta({ kind: 'inventory', type: '_unknown', outcome: 'UNKNOWN_COMMAND' })).toBe(1);
    expect(page).not.toContain('type="Fly"');
    expect(page).toMatch(/ppos_command_duration_seconds_bucket\{[^}]*kind="inventory"/);
    expect(sample(page, 'ppos_journal_commit_batch_size_count', {})).toBeGreaterThan(0);
    expect(page).toMatch(/ppos_active_actors\{[^}]*node="http-node"[^}]*\} [1-9]/);
    expect(page).toContain('ppos_process_resident_memory_bytes');
    // No holds were set: no timer backlog (the count itself: test/integration/timer-backlog.test.ts).
    expect(page).toMatch(/^ppos_timers_overdue\{[^}]*node="http-node"[^}]*\} 0$/m);
  }, 60_000);

  it('is healthy while up, and ready only while PostgreSQL answers', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    proxy.cut();
    try {
      const notReady = await waitFor('readyz to fail', async () => {
        const res = await fetch(`${base}/readyz`);
        return res.status === 503 ? res.text() : null;
      });
      expect(notReady).toMatch(/PostgreSQL/);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    } finally {
      proxy.restore();
    }
    await waitFor('readyz to come back', async () => (await fetch(`${base}/readyz`)).status === 200);
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  }, 60_000);
});
