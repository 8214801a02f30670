// `ppos dashboard` hardened: off the loopback it asks a token (generated and printed once when none
// is given), traded for an HttpOnly SameSite=Strict cookie; live event streams are capped overall
// and per client address; every response carries a strict CSP and its companion headers, and the
// built page runs under that CSP in real headless Chromium without a single violation.
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PposClient } from '../../src/client.js';
import { DEFAULT_ASSETS_DIR } from '../../src/dashboard/server.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { CliProcess, runCli, type CliTarget } from './cli.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const GIVEN_TOKEN = 'given-token-0123456789abcdef';
const MAX_STREAMS = 10;
const MAX_STREAMS_PER_CLIENT = 8;
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

interface OpenStream {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  close(): void;
}

interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly localAddress?: string;
}

let db: TestDatabase;
let nats: PrivateNatsServer;
let node: RunningNode;
let client: PposClient;
let target: CliTarget;
/** Bound to 0.0.0.0 with no token given: it made one. */
let exposed: CliProcess;
let exposedPort: number;
let generatedToken: string;
/** On the loopback, with PPOS_DASHBOARD_TOKEN set and --max-streams. */
let guarded: CliProcess;
let guardedPort: number;
let browser: Browser;
const streams: OpenStream[] = [];

/** Why the browser cannot run here, if it cannot: every test then fails with it (never skips). */
function missingPrerequisite(): string | null {
  if (!existsSync(CHROMIUM)) return `the dashboard tests drive Debian's Chromium at ${CHROMIUM}, which is missing: apt-get update && apt-get install -y chromium`;
  if (!existsSync(path.join(DEFAULT_ASSETS_DIR, 'index.html'))) return `the dashboard page is not built (${DEFAULT_ASSETS_DIR}): run npm run build (npm test does)`;
  return null;
}

/** CliProcess hands this process's environment on: set the token variable for this one spawn only. */
function spawnDashboard(args: readonly string[], envToken: string | undefined): CliProcess {
  const saved = process.env.PPOS_DASHBOARD_TOKEN;
  if (envToken === undefined) delete process.env.PPOS_DASHBOARD_TOKEN;
  else process.env.PPOS_DASHBOARD_TOKEN = envToken;
  try {
    return new CliProcess(target, ['dashboard', '--port', '0', ...args]);
  } finally {
    if (saved === undefined) delete process.env.PPOS_DASHBOARD_TOKEN;
    else process.env.PPOS_DASHBOARD_TOKEN = saved;
  }
}

async function listeningUrl(dashboard: CliProcess): Promise<URL> {
  const prefix = 'ppos dashboard: ';
  await dashboard.waitFor('the dashboard to listen', () => dashboard.stdoutLines.some((l) => l.startsWith(prefix)));
  return new URL(dashboard.stdoutLines.find((l) => l.startsWith(prefix))!.slice(prefix.length));
}

function request(port: number, target: string, options: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method: options.method ?? 'GET', headers: options.headers, localAddress: options.localAddress, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens /api/stream from `localAddress` (any 127.x address is this machine) and keeps it open. */
function openStream(localAddress: string): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port: guardedPort, path: '/api/stream', localAddress, agent: false, headers: { authorization: `Bearer ${GIVEN_TOKEN}` } },
      (res) => {
        res.resume();
        const stream = { status: res.statusCode!, headers: res.headers, close: () => req.destroy() };
        if (stream.status === 200) streams.push(stream);
        resolve(stream);
      },
    );
    req.on('error', reject);
  });
}

async function openStreams(localAddress: string, count: number): Promise<number[]> {
  const opened: OpenStream[] = [];
  for (let i = 0; i < count; i += 1) opened.push(await openStream(localAddress));
  return opened.map((s) => s.status);
}

/** A slot is freed when the server sees the socket close, a moment after the client closes it. */
async function openStreamOnceFree(localAddress: string): Promise<OpenStream> {
  let stream = await openStream(localAddress);
  for (const deadline = Date.now() + 5_000; stream.status !== 200 && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    stream = await openStream(localAddress);
  }
  return stream;
}

function closeStreams(): void {
  for (const stream of streams.splice(0)) stream.close();
}

function expectSecurityHeaders(answer: { headers: http.IncomingHttpHeaders }, what: string): void {
  const { headers } = answer;
  expect({ what, csp: headers['content-security-policy'] }).toEqual({ what, csp: CSP });
  expect({ what, nosniff: headers['x-content-type-options'], referrer: headers['referrer-policy'], frame: headers['x-frame-options'] }).toEqual({
    what,
    nosniff: 'nosniff',
    referrer: 'no-referrer',
    frame: 'DENY',
  });
}

/** The built page's script and stylesheet, as index.html names them. */
function builtAssets(): string[] {
  const index = readFileSync(path.join(DEFAULT_ASSETS_DIR, 'index.html'), 'utf8');
  return [...index.matchAll(/(?:src|href)="\.\/(assets\/[^"]+)"/g)].map((m) => `/${m[1]!}`);
}

/** A page that records every CSP violation, both as the console reports it and as the DOM event. */
async function watchedPage(context: BrowserContext): Promise<{ page: Page; violations: string[] }> {
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const violations: string[] = [];
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(`console: ${message.text()}`);
  });
  await page.exposeFunction('reportViolation', (text: string) => violations.push(`event: ${text}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      void (window as unknown as { reportViolation(text: string): Promise<void> }).reportViolation(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return { page, violations };
}

beforeAll(async () => {
  if (missingPrerequisite()) return;
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  node = await startTestNode(nats.url, db.url);
  client = await PposClient.connect(nats.url);
  for (const sku of ['sec-bolt', 'sec-plate']) {
    const reply = await client.send('inventory', sku, 'Receive', { qty: 10 }, { timeoutMs: 10_000 });
    expect(reply.ok).toBe(true);
  }
  const created = await client.send('workorder', 'sec-wo', 'Create', { bom: [{ sku: 'sec-bolt', qty: 2 }], stages: ['cut', 'weld'] }, { timeoutMs: 10_000 });
  expect(created.ok).toBe(true);

  target = { natsUrl: nats.url, databaseUrl: db.url };
  exposed = spawnDashboard(['--host', '0.0.0.0'], undefined);
  guarded = spawnDashboard(['--max-streams', String(MAX_STREAMS)], GIVEN_TOKEN);
  const [exposedUrl, guardedUrl] = await Promise.all([listeningUrl(exposed), listeningUrl(guarded)]);
  exposedPort = Number(exposedUrl.port);
  generatedToken = exposedUrl.searchParams.get('token') ?? '';
  guardedPort = Number(guardedUrl.port);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}, 120_000);

afterAll(async () => {
  closeStreams();
  await browser?.close();
  await exposed?.stop('SIGTERM');
  await guarded?.stop('SIGTERM');
  await client?.close();
  await node?.stop();
  await nats?.stop();
  await db?.drop();
});

describe('ppos dashboard, hardened', () => {
  beforeEach(() => {
    const missing = missingPrerequisite();
    if (missing) throw new Error(missing);
  });

  it('bound beyond the loopback with no token given, generates one and prints it once, with the URL', () => {
    expect(exposed.stdoutLines.filter((l) => l.startsWith('ppos dashboard: '))).toEqual([`ppos dashboard: http://0.0.0.0:${exposedPort}/?token=${generatedToken}`]);
    // 32 random bytes in base64url: 256 bits.
    expect(generatedToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(exposed.stdoutLines.filter((l) => l.includes(generatedToken))).toHaveLength(1);
    expect(exposed.stderrLines.join('\n')).not.toContain(generatedToken);
  });

  it('answers 401 with a short JSON error to a request without the token, or with a wrong one of the same length', async () => {
    const paths = ['/', '/index.html', ...builtAssets(), '/api/cluster', '/api/kinds', '/api/stream', '/api/actors/inventory/sec-bolt/events', '/api/nope'];
    for (const target of paths) {
      const answer = await request(exposedPort, target);
      expect({ target, status: answer.status, body: answer.body }).toEqual({ target, status: 401, body: '{"error":"unauthorized"}' });
      expect(answer.headers['cache-control']).toBe('no-store');
    }
    const last = generatedToken.at(-1) === 'A' ? 'B' : 'A';
    const wrong = `${generatedToken.slice(0, -1)}${last}`;
    expect(wrong).toHaveLength(generatedToken.length);
    const byQuery = await request(exposedPort, `/?token=${wrong}`);
    expect(byQuery.status).toBe(401);
    expect(byQuery.headers['set-cookie']).toBeUndefined();
    expect((await request(exposedPort, '/api/cluster', { headers: { authorization: `Bearer ${wrong}` } })).status).toBe(401);
    expect((await request(exposedPort, '/api/cluster', { headers: { cookie: `ppos_dashboard_${exposedPort}=${wrong}` } })).status).toBe(401);
    // A cookie is only good on the dashboard (the port) that set it.
    expect((await request(exposedPort, '/api/cluster', { headers: { cookie: `ppos_dashboard_${guardedPort}=${generatedToken}` } })).status).toBe(401);
  });

  it('takes the token as a Bearer header for the JSON API, on whatever Host name it is reached by', async () => {
    const answer = await request(exposedPort, '/api/cluster', { headers: { authorization: `Bearer ${generatedToken}`, host: `dashboard.example:${exposedPort}` } });
    expect(answer.status).toBe(200);
    expect(answer.headers['cache-control']).toBe('no-store');
    const view = JSON.parse(answer.body) as { nodes: { node: string }[] };
    expect(view.nodes.map((n) => n.node)).toContain(node.nodeId);
  });

  it('trades ?token= for a cookie and sends the browser to the same URL without it, on this site only', async () => {
    const answer = await request(exposedPort, `/some/page?view=1&token=${generatedToken}`);
    expect(answer.status).toBe(303);
    expect(answer.headers.location).toBe('/some/page?view=1');
    expect(answer.headers['set-cookie']).toEqual([`ppos_dashboard_${exposedPort}=${generatedToken}; Path=/; HttpOnly; SameSite=Strict`]);
    // A path that normalises to `//other.site` must not become a redirect to another site.
    const sneaky = await request(exposedPort, `/x/..//evil.example/?token=${generatedToken}`);
    expect(sneaky.status).toBe(303);
    expect(sneaky.headers.location).toBe('/evil.example/');
  });

  it('loads in Chromium from the ?token= link: HttpOnly SameSite=Strict cookie, token gone from the URL, app live, no CSP violation', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const { page, violations } = await watchedPage(context);
      const origin = `http://127.0.0.1:${exposedPort}`;
      await page.goto(`${origin}/?token=${generatedToken}`);
      expect(page.url()).toBe(`${origin}/`);
      expect(await page.evaluate(() => performance.getEntriesByType('navigation').map((e) => e.name))).toEqual([`${origin}/`]);
      const cookies = await context.cookies(origin);
      expect(cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path }))).toEqual([
        { name: `ppos_dashboard_${exposedPort}`, httpOnly: true, sameSite: 'Strict', path: '/' },
      ]);
      expect(await page.evaluate(() => document.cookie)).toBe('');

      await expect.poll(() => page.getByTestId('connection').textContent()).toBe('live');
      await page.getByTestId('node-row').first().waitFor();
      expect(await page.getByTestId('node-row').first().textContent()).toContain(node.nodeId);
      await page.locator('[data-testid="actor-row"][data-actor="inventory/sec-bolt"]').waitFor();
      const listed = await page.getByTestId('actor-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-actor')));
      expect(listed.sort()).toEqual(node.registry.list().map((a) => `${a.kind}/${a.id}`).sort());

      // An actor's page draws its state chart (sized by a style property) and its timeline.
      await page.locator('[data-testid="actor-row"][data-actor="workorder/sec-wo"]').click();
      await page.locator('[data-testid="context"][data-seq="1"]').waitFor();
      expect(await page.getByTestId('chart-state-draft').getAttribute('data-active')).toBe('true');
      expect(page.url()).toBe(`${origin}/#/actor/workorder/sec-wo`);
      expect(violations).toEqual([]);

      // The watch itself works: an inline style, which the policy forbids, is reported.
      await page.evaluate(() => document.head.append(Object.assign(document.createElement('style'), { textContent: 'body { color: red }' })));
      await expect.poll(() => violations.length).toBeGreaterThan(0);
    } finally {
      await context.close();
    }
  });

  it('on the loopback with a token given, asks it too, keeps refusing foreign Host names, and never prints it', async () => {
    expect(guarded.stdoutLines.filter((l) => l.startsWith('ppos dashboard: '))).toEqual([`ppos dashboard: http://127.0.0.1:${guardedPort}/`]);
    expect([...guarded.stdoutLines, ...guarded.stderrLines].join('\n')).not.toContain(GIVEN_TOKEN);
    expect((await request(guardedPort, '/api/cluster')).status).toBe(401);
    const bearer = { authorization: `Bearer ${GIVEN_TOKEN}` };
    expect((await request(guardedPort, '/api/cluster', { headers: bearer })).status).toBe(200);
    expect((await request(guardedPort, '/api/cluster', { headers: { ...bearer, host: `rebound.example:${guardedPort}` } })).status).toBe(403);
  });

  it('caps open event streams per client address and overall (503 with Retry-After), and frees a slot when a client leaves', async () => {
    try {
      expect(await openStreams('127.0.0.1', MAX_STREAMS_PER_CLIENT)).toEqual(Array(MAX_STREAMS_PER_CLIENT).fill(200));
      const overClientCap = await openStream('127.0.0.1');
      expect(overClientCap.status).toBe(503);
      expect(overClientCap.headers['retry-after']).toBe('5');
      expectSecurityHeaders(overClientCap, 'a refused stream');

      // Two more from another address fill the server: the next one, the max + 1st, is refused.
      expect(await openStreams('127.0.0.2', MAX_STREAMS - MAX_STREAMS_PER_CLIENT)).toEqual([200, 200]);
      expect(streams).toHaveLength(MAX_STREAMS);
      const overServerCap = await openStream('127.0.0.3');
      expect(overServerCap.status).toBe(503);
      expect(overServerCap.headers['retry-after']).toBe('5');

      streams.pop()!.close();
      const afterOneLeft = await openStreamOnceFree('127.0.0.3');
      expect(afterOneLeft.status).toBe(200);
      expectSecurityHeaders(afterOneLeft, 'an event stream');
      expect(afterOneLeft.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(afterOneLeft.headers['cache-control']).toBe('no-store');

      // Every slot comes back when everyone leaves: the first client gets its full share again.
      closeStreams();
      for (let i = 0; i < MAX_STREAMS_PER_CLIENT; i += 1) expect((await openStreamOnceFree('127.0.0.1')).status).toBe(200);
      expect((await openStream('127.0.0.1')).status).toBe(503);
    } finally {
      closeStreams();
    }
  });

  it('a page refused at the stream cap shows itself disconnected, then goes live once a slot is free', async () => {
    const context = await browser.newContext();
    try {
      expect(await openStreams('127.0.0.2', MAX_STREAMS_PER_CLIENT)).toEqual(Array(MAX_STREAMS_PER_CLIENT).fill(200));
      expect(await openStreams('127.0.0.3', MAX_STREAMS - MAX_STREAMS_PER_CLIENT)).toEqual([200, 200]);
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${guardedPort}/?token=${GIVEN_TOKEN}`);
      await page.getByTestId('connection').waitFor();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(await page.getByTestId('connection').textContent()).toBe('disconnected');
      streams.pop()!.close();
      await expect.poll(() => page.getByTestId('connection').textContent(), { timeout: 15_000 }).toBe('live');
    } finally {
      closeStreams();
      await context.close();
    }
  });

  it('puts the CSP and the other security headers on every response: page, asset, API, 303, 401, 403, 404, 405', async () => {
    const bearer = { authorization: `Bearer ${GIVEN_TOKEN}` };
    const answers: [string, number, Answer][] = [
      ['page', 200, await request(guardedPort, '/', { headers: bearer })],
      ...(await Promise.all(builtAssets().map(async (asset): Promise<[string, number, Answer]> => [asset, 200, await request(guardedPort, asset, { headers: bearer })]))),
      ['api', 200, await request(guardedPort, '/api/kinds', { headers: bearer })],
      ['token exchange', 303, await request(guardedPort, `/?token=${GIVEN_TOKEN}`)],
      ['no token', 401, await request(guardedPort, '/api/kinds')],
      ['no token, exposed', 401, await request(exposedPort, '/')],
      ['foreign host', 403, await request(guardedPort, '/', { headers: { ...bearer, host: 'rebound.example' } })],
      ['unknown endpoint', 404, await request(guardedPort, '/api/nope', { headers: bearer })],
      ['unknown actor kind', 404, await request(guardedPort, '/api/actors/nokind/x', { headers: bearer })],
      ['write', 405, await request(guardedPort, '/api/kinds', { method: 'POST', headers: bearer })],
    ];
    for (const [what, status, answer] of answers) {
      expect({ what, status: answer.status }).toEqual({ what, status });
      expectSecurityHeaders(answer, what);
    }
    for (const [what, , answer] of answers.filter(([what]) => !what.startsWith('/assets/'))) {
      expect({ what, cache: answer.headers['cache-control'] }).toEqual({ what, cache: what === 'page' ? 'no-cache' : 'no-store' });
    }
  });

  it('refuses a short token as bad usage, and --max-streams 0', async () => {
    const short = await runCli(target, ['dashboard', '--port', '0', '--token', 'short']);
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('16 to 256 characters');
    expect(short.stderr).not.toContain('short');
    expect((await runCli(target, ['dashboard', '--port', '0', '--max-streams', '0'])).code).toBe(2);
  });

  it('never wrote a token to its logs, after all of the above', () => {
    expect(exposed.stderrLines.join('\n')).not.toContain(generatedToken);
    expect(exposed.stdoutLines.filter((l) => l.includes(generatedToken))).toHaveLength(1);
    expect(guarded.stderrLines.join('\n')).not.toContain(GIVEN_TOKEN);
  });
});
