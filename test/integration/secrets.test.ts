// No secret in any log or command line (CONTRACT.md section 1): a node and the demo run with a
// password in both URLs (NATS and PostgreSQL), are made to log connection trouble, and then
// every line they wrote, and the command line of every process they started, is searched.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PposClient } from '../../src/client.js';
import { PrivateNatsServer } from '../../src/nats-server.js';
import { natsSettings } from '../../src/nats.js';
import { CLI_PATH, NodeProcess } from '../../src/spawn.js';
import { createTestDatabase, type TestDatabase } from '../helpers/services.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { sleep, waitFor } from '../helpers/wait.js';

const natsPassword = `nats-${randomBytes(9).toString('hex')}`;
const pgPassword = `pg-${randomBytes(9).toString('hex')}`;
const shipped = readFileSync(new URL('../../deploy/nats/nats-server.conf', import.meta.url), 'utf8');

let db: TestDatabase;
let nats: PrivateNatsServer;
let proxy: TcpProxy;

const natsUrl = (): string => `nats://ppos-node:${natsPassword}@${nats.url.replace('nats://', '')}`;
/** The test database through the proxy, with a password (the machine's PostgreSQL trusts any). */
const databaseUrl = (): string => {
  const url = new URL(proxy.urlFor(db.url));
  url.username = 'postgres';
  url.password = pgPassword;
  return url.toString();
};

/** Command lines of every process whose command line mentions the built CLI. */
function cliCommandLines(): string[] {
  const lines: string[] = [];
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmdline.includes(CLI_PATH)) lines.push(cmdline);
    } catch {
      // the process ended meanwhile
    }
  }
  return lines;
}

const leaks = (text: string): string[] => [natsPassword, pgPassword].filter((secret) => text.includes(secret));

beforeAll(async () => {
  db = await createTestDatabase();
  const target = new URL(db.url);
  proxy = await TcpProxy.start(target.hostname, Number(target.port || 5432));
  nats = await PrivateNatsServer.start({
    config: shipped,
    env: { PPOS_NODE_PASSWORD: natsPassword, PPOS_OPERATOR_PASSWORD: natsPassword, PPOS_CLIENT_PASSWORD: natsPassword },
  });
});

afterAll(async () => {
  proxy?.restore();
  await proxy?.close();
  await nats?.stop();
  await db?.drop();
});

describe('secrets', () => {
  it('a node keeps both passwords out of its logs and its command line, through NATS and PostgreSQL trouble', async () => {
    const logs: string[] = [];
    const node = new NodeProcess({
      nats: natsSettings({ nats: natsUrl() }, {}),
      databaseUrl: databaseUrl(),
      nodeId: 'secret-node',
      args: ['--lease-ms', '1500'],
      env: { PPOS_LOG_LEVEL: 'debug' },
      onLog: (line) => logs.push(line),
    });
    try {
      await node.ready;
      const commandLines = cliCommandLines();
      expect(commandLines.some((line) => line.includes('secret-node'))).toBe(true);
      expect(commandLines.flatMap(leaks)).toEqual([]);

      const client = await PposClient.connect(natsSettings({ nats: natsUrl() }, {}));
      expect(await client.sendWithRetry('inventory', 'secret-1', 'Receive', { qty: 1 })).toMatchObject({ ok: true });
      // PostgreSQL goes away under the node (its lease cycle and appends fail, and say so) ...
      proxy.cut();
      await client.send('inventory', 'secret-1', 'Receive', { qty: 1 }, { timeoutMs: 1_000 }).catch(() => undefined);
      await waitFor('the node to log the outage', () => logs.some((line) => /lease cycle failed|journal unavailable|commit outcome unknown/.test(line)));
      proxy.restore();
      // ... and so does NATS (it logs the disconnect and the reconnect).
      await nats.restart(300);
      await waitFor('the node to log the reconnect', () => logs.some((line) => line.includes('NATS reconnect')), 30_000);
      expect(await client.sendWithRetry('inventory', 'secret-1', 'Receive', { qty: 1 }, { deadlineMs: 30_000 })).toMatchObject({ ok: true });
      await client.close();
    } finally {
      await node.stop();
    }
    expect(logs.length).toBeGreaterThan(5);
    expect(logs.flatMap(leaks)).toEqual([]);
  });

  it('the demo passes URLs to its node through the environment, and prints neither password', async () => {
    const child = spawn(process.execPath, [CLI_PATH, 'demo', '--skus', '20', '--commands', '200', '--work-orders', '3'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PPOS_DATABASE_URL: databaseUrl(), PPOS_NATS_URL: natsUrl(), PPOS_LOG_LEVEL: 'info' },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const exited = once(child, 'close');
    const seen = new Set<string>();
    // The demo's own node process is a child of the demo: look at every command line while it runs.
    let running = true;
    void exited.finally(() => (running = false));
    while (running) {
      for (const line of cliCommandLines()) seen.add(line);
      await sleep(50);
    }
    const [code] = (await exited) as [number | null];
    expect(code, output).toBe(0);
    expect(output).toContain('result: OK');
    expect([...seen].some((line) => line.includes(' start '))).toBe(true);
    expect([...seen].flatMap(leaks)).toEqual([]);
    expect(leaks(output)).toEqual([]);
  });

  it('a command refused by PostgreSQL or NATS names the trouble, not the password', async () => {
    const run = async (env: Record<string, string>, args: string[]): Promise<string> => {
      const child = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      await once(child, 'close');
      return output;
    };
    const unreachable = new URL(databaseUrl());
    unreachable.port = '1';
    const pgOutput = await run({ PPOS_DATABASE_URL: unreachable.toString() }, ['history', 'inventory', 'secret-1']);
    expect(pgOutput).toMatch(/cannot reach the journal database/);
    const natsOutput = await run({ PPOS_NATS_URL: natsUrl().replace(natsPassword, `${natsPassword}x`) }, ['get', 'inventory', 'secret-1']);
    expect(natsOutput).toMatch(/authentication failed/);
    expect([...leaks(pgOutput), ...leaks(natsOutput)]).toEqual([]);
  });
});
