// The dashboard's server: the built page (dist/dashboard, made by Vite in `npm run build`), a
// read-only JSON API, and a server-sent event stream fed by ppos.events.>.
// It only reads: inspections come from nodes' committed in-memory state over NATS, history and
// time travel from the journal through its own small pool. Nothing it does waits on an actor,
// and a slow browser only loses batches (then resyncs); it never holds anything up.
// Off the loopback every request needs a token (see `admitted`); event streams are capped, and
// every response carries a strict Content-Security-Policy and its companion headers.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { BlockList, isIP, type AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { ACTOR_ID_PATTERN } from '../../actors/schema.js';
import type { ActorKind } from '../../actors/kind.js';
import type { ActorRef, Journal, JournaledEvent } from '../../persistence/journal.js';
import { diffOver, diffStates } from '../../runtime/diff.js';
import { loadState } from '../../runtime/recovery.js';
import { persistState } from '../../actors/state.js';
import { EVENTS_SUBJECT_PREFIX } from '../../runtime/subjects.js';
import { describeMachine, type StateChart } from '../../runtime/statechart.js';
import { NoAnswerError, type PposClient } from '../client.js';
import type { ProjectionReport } from '../../runtime/projection-status.js';
import { LagHistory } from './lag-history.js';
import { traceIdOf } from '../../runtime/tracing.js';

export interface DashboardOptions {
  readonly client: PposClient;
  readonly journal: Journal;
  readonly kinds: ReadonlyMap<string, ActorKind>;
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  /** Defaults to the Vite build output next to the compiled server. */
  readonly assetsDir?: string;
  /** How often connected pages get the node and actor listing (default 1000 ms). */
  readonly clusterEveryMs?: number;
  /** Asked of every request when set; a host that is not loopback must have one. */
  readonly token?: string | undefined;
  /** Open event streams at most (default 32); beyond that 503 with Retry-After. */
  readonly maxStreams?: number | undefined;
  /** Open event streams at most from one client address (default 8). */
  readonly maxStreamsPerClient?: number | undefined;
  /** The projections' lag now; sampled every `lagEveryMs` (default 2000) for the lag chart. */
  readonly projections?: () => Promise<readonly ProjectionReport[]>;
  readonly lagEveryMs?: number;
}

export interface Dashboard {
  readonly url: string;
  close(): Promise<void>;
}

const here = fileURLToPath(import.meta.url);
/** dist/src/dashboard/server.js → dist/dashboard; from the TypeScript source → the build's. */
export const DEFAULT_ASSETS_DIR = here.endsWith('.ts')
  ? path.resolve(path.dirname(here), '..', '..', 'dist', 'dashboard')
  : path.resolve(path.dirname(here), '..', '..', 'dashboard');

const ACTORS_PER_NODE = 200;
const EVENTS_PAGE_MAX = 500;
/** Journal events reach the page in batches: a busy cluster cannot flood a browser. */
const BATCH_MS = 200;
const BATCH_MAX_EVENTS = 200;
/** A page whose socket has this much unsent is skipped, then told to resync. */
const MAX_BUFFERED_BYTES = 1 << 20;

const DEFAULT_MAX_STREAMS = 32;
const DEFAULT_MAX_STREAMS_PER_CLIENT = 8;
const STREAM_RETRY_AFTER_SECONDS = 5;

/** The built page is one module script and one stylesheet from ./assets: nothing inline is needed. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/** On every response; the page's own assets override cache-control (they are content-hashed). */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

/** A token travels in a URL query and a cookie: only characters that need escaping in neither. */
export const ACCESS_TOKEN_PATTERN = /^[A-Za-z0-9._~-]{16,256}$/;

/** 256 random bits, base64url: for a dashboard bound off the loopback when no token is given. */
export function newAccessToken(): string {
  return randomBytes(32).toString('base64url');
}

const LOOPBACK_ADDRESSES = new BlockList();
LOOPBACK_ADDRESSES.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK_ADDRESSES.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 (also bracketed, as in a Host header) and `localhost`: reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (name === 'localhost') return true;
  const family = isIP(name);
  return family !== 0 && LOOPBACK_ADDRESSES.check(name, family === 6 ? 'ipv6' : 'ipv4');
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Whether a presented token is the dashboard's, in time that tells nothing about either. */
function tokenMatcher(token: string): (candidate: string) => boolean {
  const expected = sha256(token);
  // Hashing first gives timingSafeEqual the equal lengths it needs, and hides the token's length.
  return (candidate) => timingSafeEqual(sha256(candidate), expected);
}

/** The cookie's name carries the port: cookies ignore ports, and two dashboards on one host must not clobber each other's. */
const cookieName = (req: IncomingMessage): string => `ppos_dashboard_${req.socket.localPort ?? 0}`;

/** Tokens a request presents: `Authorization: Bearer` for scripts, the cookie for the page. */
function presentedTokens(req: IncomingMessage): string[] {
  const tokens: string[] = [];
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (bearer) tokens.push(bearer[1]!);
  const name = cookieName(req);
  for (const pair of (req.headers.cookie ?? '').split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq).trim() === name) tokens.push(pair.slice(eq + 1).trim());
  }
  return tokens;
}

function unauthorized(res: ServerResponse): void {
  res.writeHead(401, { 'content-type': 'application/json; charset=utf-8', 'www-authenticate': 'Bearer' });
  res.end(JSON.stringify({ error: 'unauthorized' }));
}

/** Trades a valid `?token=` for the cookie, and sends the browser to the same URL without it (out of history and logs). */
function redirectWithCookie(req: IncomingMessage, res: ServerResponse, url: URL, token: string): void {
  const clean = new URL(url);
  clean.searchParams.delete('token');
  // One leading slash only: `//host` in Location would send the browser to another site.
  const location = `/${clean.pathname.replace(/^\/+/, '')}${clean.search}`;
  res.writeHead(303, {
    location,
    'set-cookie': `${cookieName(req)}=${token}; Path=/; HttpOnly; SameSite=Strict`,
  });
  res.end();
}

/** Open event streams, overall and per client address, so that a few clients cannot take them all. */
class StreamSlots {
  private total = 0;
  private readonly byClient = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly maxPerClient: number,
  ) {}

  /** Takes a slot for `client` and returns its release, or null when the server or the client is at its cap. */
  take(client: string): (() => void) | null {
    const held = this.byClient.get(client) ?? 0;
    if (this.total >= this.max || held >= this.maxPerClient) return null;
    this.total += 1;
    this.byClient.set(client, held + 1);
    return () => {
      this.total -= 1;
      const left = (this.byClient.get(client) ?? 1) - 1;
      if (left === 0) this.byClient.delete(client);
      else this.byClient.set(client, left);
    };
  }
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface FeedEvent {
  readonly node: string | null;
  readonly kind: string;
  readonly id: string;
  readonly seq: number;
  readonly event: { readonly type: string };
  readonly messageId: string;
  readonly recordedAt: string;
}

interface Page {
  readonly res: ServerResponse;
  resync: boolean;
}

export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const { client, journal, kinds, logger } = options;
  const loopback = isLoopbackHost(options.host);
  if (options.token !== undefined && !ACCESS_TOKEN_PATTERN.test(options.token)) throw new Error('the dashboard token must be 16 to 256 characters of A-Z a-z 0-9 . _ ~ -');
  if (!loopback && options.token === undefined) throw new Error(`the dashboard is bound to ${options.host}, beyond the loopback: it needs a token`);
  const tokenMatches = options.token === undefined ? null : tokenMatcher(options.token);
  const slots = new StreamSlots(options.maxStreams ?? DEFAULT_MAX_STREAMS, options.maxStreamsPerClient ?? DEFAULT_MAX_STREAMS_PER_CLIENT);
  const assetsDir = options.assetsDir ?? DEFAULT_ASSETS_DIR;
  const charts = new Map<string, StateChart>([...kinds].map(([name, kind]) => [name, describeMachine(kind.machine)]));
  const pages = new Set<Page>();
  const lags = new LagHistory();
  const sampleLags = (): void => {
    options.projections?.().then(
      (reports) => lags.record(reports),
      (error: Error) => logger.warn({ err: error.message }, 'could not read the projections\' lag'),
    );
  };
  sampleLags();
  const lagTimer = options.projections ? setInterval(sampleLags, options.lagEveryMs ?? 2_000) : undefined;
  lagTimer?.unref();
  let pending: FeedEvent[] = [];
  let pendingCounts = new Map<string, number>();
  let dropped = 0;

  const send = (page: Page, event: string, data: unknown): void => {
    if (page.res.destroyed || page.res.writableEnded) return;
    if (page.res.writableLength > MAX_BUFFERED_BYTES) {
      page.resync = true;
      return;
    }
    if (page.resync) {
      page.resync = false;
      page.res.write('event: resync\ndata: {}\n\n');
    }
    page.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const broadcast = (event: string, data: unknown): void => {
    for (const page of pages) send(page, event, data);
  };

  // The live feed: one subscription for all pages, batched.
  const feed: Subscription = client.nc.subscribe(`${EVENTS_SUBJECT_PREFIX}.>`, {
    callback: (error, msg) => {
      if (error || pages.size === 0) return;
      let parsed: FeedEvent;
      try {
        parsed = msg.json<FeedEvent>();
      } catch {
        return;
      }
      const key = `${parsed.kind}/${parsed.id}`;
      pendingCounts.set(key, (pendingCounts.get(key) ?? 0) + 1);
      if (pending.length < BATCH_MAX_EVENTS) pending.push(parsed);
      else dropped += 1;
    },
  });
  const batcher = setInterval(() => {
    if (pending.length === 0) return;
    broadcast('journal', { events: pending, counts: Object.fromEntries(pendingCounts), dropped });
    pending = [];
    pendingCounts = new Map();
    dropped = 0;
  }, BATCH_MS);

  let clusterBusy = false;
  const clusterTimer = setInterval(() => {
    if (pages.size === 0 || clusterBusy) return;
    clusterBusy = true;
    cluster()
      .then((view) => broadcast('cluster', view))
      .catch((error: Error) => logger.warn({ err: error.message }, 'cluster listing failed'))
      .finally(() => {
        clusterBusy = false;
      });
  }, options.clusterEveryMs ?? 1_000);
  const keepAlive = setInterval(() => {
    for (const page of pages) if (!page.res.destroyed) page.res.write(': keep-alive\n\n');
  }, 15_000);

  async function cluster(): Promise<Record<string, unknown>> {
    const [stats, listings] = await Promise.all([
      client.gather('stats', 300),
      client.gather('actors', 300, JSON.stringify({ order: 'busiest', limit: ACTORS_PER_NODE })),
    ]);
    const actors = listings.flatMap((listing) =>
      ((listing.actors as Record<string, unknown>[] | undefined) ?? []).map((actor) => ({ node: listing.node, ...actor })),
    );
    const totals = Object.fromEntries(listings.map((listing) => [String(listing.node), listing.total ?? null]));
    return { at: new Date().toISOString(), nodes: stats.sort((a, b) => String(a.node).localeCompare(String(b.node))), actors, totals };
  }

  function actorFrom(kindName: string, id: string): { ref: ActorRef; kind: ActorKind } {
    const kind = kinds.get(kindName);
    if (!kind) throw new HttpError(404, `unknown kind ${JSON.stringify(kindName)}; known: ${[...kinds.keys()].join(', ')}`);
    if (!ACTOR_ID_PATTERN.test(id)) throw new HttpError(400, `actor id ${JSON.stringify(id)} must match [A-Za-z0-9_-]{1,128}`);
    return { ref: { kind: kindName, id }, kind };
  }

  function seqParam(url: URL, name: string, fallback?: number): number {
    const raw = url.searchParams.get(name);
    if (raw === null || raw === '') {
      if (fallback === undefined) throw new HttpError(400, `query parameter ${name} is required`);
      return fallback;
    }
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0) throw new HttpError(400, `${name} must be a whole number >= 0`);
    return n;
  }

  const eventJson = (e: JournaledEvent): Record<string, unknown> => ({
    seq: e.seq,
    event: e.event,
    messageId: e.messageId,
    correlationId: e.correlationId,
    causationId: e.causationId,
    // The trace of the request that wrote it: `ppos trace <id>` lists every event of that request.
    traceId: traceIdOf(e.traceparent) ?? null,
    recordedAt: e.recordedAt.toISOString(),
  });

  async function api(url: URL): Promise<unknown> {
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent); // ['api', ...]
    if (parts.length === 2 && parts[1] === 'cluster') return cluster();
    if (parts.length === 2 && parts[1] === 'projections') return lags.view();
    if (parts.length === 2 && parts[1] === 'kinds') {
      return { kinds: Object.fromEntries([...charts].map(([name, chart]) => [name, { chart, commands: [...kinds.get(name)!.commands] }])) };
    }
    if (parts[1] !== 'actors' || parts.length < 4 || parts.length > 5) throw new HttpError(404, `no such endpoint ${url.pathname}`);
    const { ref, kind } = actorFrom(parts[2]!, parts[3]!);
    const view = parts[4];
    if (view === undefined) {
      const [inspection, head] = await Promise.all([
        client.inspect(ref.kind, ref.id, 2_000).catch((error: Error) => ({ unavailable: error instanceof NoAnswerError ? error.message : error.message })),
        journal.headSeq(ref),
      ]);
      return { kind: ref.kind, id: ref.id, head, inspection, chart: charts.get(ref.kind) };
    }
    if (view === 'events') {
      const head = await journal.headSeq(ref);
      const limit = Math.min(EVENTS_PAGE_MAX, Math.max(1, seqParam(url, 'limit', 100)));
      // Default page: the newest `limit` events.
      const from = Math.max(1, seqParam(url, 'from', Math.max(1, head - limit + 1)));
      const events = await journal.readEvents(ref, from - 1, Math.min(head, from - 1 + limit));
      return { kind: ref.kind, id: ref.id, head, from, events: events.map(eventJson) };
    }
    if (view === 'state') {
      const head = await journal.headSeq(ref);
      const at = seqParam(url, 'at', head);
      if (at > head) throw new HttpError(404, `${ref.kind}/${ref.id} has ${head} event(s); there is no event ${at}`);
      // The state just before `at`, then event `at` itself: the page shows what that event changed.
      const before = await loadState(journal, kind, ref, Math.max(0, at - 1));
      const { diff, state } = diffOver(kind, ref, before, await journal.readEvents(ref, before.seq, at));
      return {
        kind: ref.kind,
        id: ref.id,
        head,
        seq: diff.to,
        fromSnapshotSeq: before.snapshotSeq,
        value: state.value,
        context: kind.inspectContext ? kind.inspectContext(state, {}) : persistState(kind, state).context,
        state: kind.view(state),
        event: diff.events[0] ? eventJson(diff.events[0]) : null,
        changes: diff.changes,
        // Timers pending right after this event (at most 100, soonest first).
        timers: (kind.pendingTimers?.(state) ?? [])
          .sort((a, b) => a.dueAt - b.dueAt)
          .slice(0, 100)
          .map((t) => ({ dueAt: new Date(t.dueAt).toISOString(), key: t.key, command: t.command })),
      };
    }
    if (view === 'diff') {
      const head = await journal.headSeq(ref);
      const from = seqParam(url, 'from');
      const to = seqParam(url, 'to', head);
      if (from > to || to > head) throw new HttpError(400, `need 0 <= from <= to <= ${head}`);
      const diff = await diffStates(journal, kind, ref, from, to);
      return { ...diff, events: diff.events.map(eventJson) };
    }
    throw new HttpError(404, `no such endpoint ${url.pathname}`);
  }

  /** True when the request may go on; otherwise it has been answered (401, or the cookie exchange). */
  function admitted(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    if (tokenMatches === null) return true;
    const offered = url.searchParams.get('token');
    if (offered !== null) {
      if (tokenMatches(offered)) redirectWithCookie(req, res, url, offered);
      else unauthorized(res);
      return false;
    }
    if (presentedTokens(req).some(tokenMatches)) return true;
    unauthorized(res);
    return false;
  }

  function openStream(req: IncomingMessage, res: ServerResponse): void {
    const release = slots.take(req.socket.remoteAddress ?? 'unknown');
    if (release === null) {
      res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': String(STREAM_RETRY_AFTER_SECONDS) });
      res.end(JSON.stringify({ error: 'too many open event streams' }));
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 1000\n\n');
    const page: Page = { res, resync: false };
    pages.add(page);
    // The response's close, not the request's: it fires once, when the stream's socket is gone.
    res.on('close', () => {
      pages.delete(page);
      release();
    });
    // The first listing right away, so a fresh page does not wait for the timer.
    cluster()
      .then((view) => send(page, 'cluster', view))
      .catch(() => undefined);
  }

  function serveAsset(url: URL, res: ServerResponse): void {
    const index = path.join(assetsDir, 'index.html');
    if (!existsSync(index)) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`the dashboard page is not built (no ${index}): run \`npm run build\`\n`);
      return;
    }
    let wanted: string;
    try {
      wanted = path.normalize(path.join(assetsDir, decodeURIComponent(url.pathname)));
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad path\n');
      return;
    }
    let file = index;
    if (wanted.startsWith(assetsDir + path.sep) && existsSync(wanted) && statSync(wanted).isFile()) file = wanted;
    const immutable = file.includes(`${path.sep}assets${path.sep}`);
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    createReadStream(file).pipe(res);
  }

  const server = http.createServer((req, res) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    // Bound to loopback, refuse other Host names: a web page elsewhere cannot rebind DNS onto it.
    // Off the loopback any Host is taken (names, proxies): the token is the guard, and a rebound page has none.
    const hostName = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (loopback && !isLoopbackHost(hostName)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('read-only\n');
      return;
    }
    if (!admitted(req, res, url)) return;
    if (url.pathname === '/api/stream') return openStream(req, res);
    if (url.pathname.startsWith('/api/')) {
      api(url).then(
        (body) => {
          res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
          res.end(JSON.stringify(body));
        },
        (error: Error) => {
          const status = error instanceof HttpError ? error.status : 500;
          if (status === 500) logger.warn({ err: error.message, path: url.pathname }, 'dashboard request failed');
          res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
          res.end(JSON.stringify({ error: error.message }));
        },
      );
      return;
    }
    serveAsset(url, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${urlHost}:${address.port}/`,
    async close() {
      clearInterval(batcher);
      clearInterval(clusterTimer);
      clearInterval(keepAlive);
      clearInterval(lagTimer);
      feed.unsubscribe();
      for (const page of pages) page.res.end();
      pages.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
