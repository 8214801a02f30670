// Connecting to NATS (CONTRACT.md section 1): servers, credentials and TLS from flags or the
// environment, checked once; retried at start while a broker boots, and reconnecting for ever
// afterwards so a broker restart never takes a node down. What can never work by retrying (bad
// credentials, a permission or TLS mismatch) ends the attempt at once, named.
//
// Secrets stay out of everything printable: the servers kept here have their userinfo removed,
// and credentials live only in their own fields, which nothing logs.
import { readFile } from 'node:fs/promises';
import { connect, credsAuthenticator, nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { redactUrl } from './redact.js';

export interface NatsTls {
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
}

export interface NatsSettings {
  /** Server URLs with any userinfo removed: safe to print. */
  readonly servers: readonly string[];
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /** A `.creds` file: a user JWT and its NKEY seed. */
  readonly credsFile?: string;
  /** A file holding an NKEY user seed. */
  readonly nkeyFile?: string;
  /** Set: TLS is required (a `tls://` URL or any TLS option), never plain text. */
  readonly tls?: NatsTls;
  /** Reply subjects of this process begin with it (default `_INBOX`). */
  readonly inboxPrefix?: string;
}

/** The NATS flags every command that talks to NATS takes (strings as commander gives them). */
export interface NatsFlags {
  readonly nats?: string | undefined;
  readonly natsCreds?: string | undefined;
  readonly natsNkey?: string | undefined;
  readonly natsTlsCa?: string | undefined;
  readonly natsTlsCert?: string | undefined;
  readonly natsTlsKey?: string | undefined;
  readonly natsInboxPrefix?: string | undefined;
}

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/** A NATS setting that cannot work: bad usage (exit 2). */
export class NatsSettingsError extends Error {}

const INBOX_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** Flags win over the environment (CONTRACT.md section 1); credentials in the URL win over PPOS_NATS_USER/PASS/TOKEN. */
export function natsSettings(flags: NatsFlags, env: NodeJS.ProcessEnv = process.env): NatsSettings {
  const url = flags.nats ?? env.PPOS_NATS_URL ?? DEFAULT_NATS_URL;
  const parsed = url.split(',').map((s) => s.trim()).filter((s) => s !== '').map(parseServer);
  if (parsed.length === 0) throw new NatsSettingsError('the NATS URL names no server');
  const inUrl = parsed.find((p) => p.user !== undefined || p.token !== undefined);
  const user = inUrl?.user ?? nonEmpty(env.PPOS_NATS_USER);
  const pass = inUrl ? inUrl.pass : nonEmpty(env.PPOS_NATS_PASS);
  const token = inUrl ? inUrl.token : nonEmpty(env.PPOS_NATS_TOKEN);
  const credsFile = nonEmpty(flags.natsCreds ?? env.PPOS_NATS_CREDS);
  const nkeyFile = nonEmpty(flags.natsNkey ?? env.PPOS_NATS_NKEY);
  const tls = {
    ...optional('caFile', nonEmpty(flags.natsTlsCa ?? env.PPOS_NATS_TLS_CA)),
    ...optional('certFile', nonEmpty(flags.natsTlsCert ?? env.PPOS_NATS_TLS_CERT)),
    ...optional('keyFile', nonEmpty(flags.natsTlsKey ?? env.PPOS_NATS_TLS_KEY)),
  };
  const tlsRequired = parsed.some((p) => p.tls) || Object.keys(tls).length > 0;
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new NatsSettingsError('a TLS client certificate needs both --nats-tls-cert and --nats-tls-key');
  }
  const methods = [user !== undefined ? 'user/password' : null, token !== undefined ? 'token' : null, credsFile ? '--nats-creds' : null, nkeyFile ? '--nats-nkey' : null].filter(
    (m): m is string => m !== null,
  );
  if (methods.length > 1) throw new NatsSettingsError(`give one NATS authentication, not several: ${methods.join(', ')}`);
  if (user !== undefined && pass === undefined) throw new NatsSettingsError('a NATS user needs a password (nats://user:pass@host, or PPOS_NATS_PASS)');
  const inboxPrefix = nonEmpty(flags.natsInboxPrefix ?? env.PPOS_NATS_INBOX_PREFIX);
  if (inboxPrefix !== undefined && !INBOX_PREFIX.test(inboxPrefix)) {
    throw new NatsSettingsError(`--nats-inbox-prefix ${JSON.stringify(inboxPrefix)} must be subject tokens like _INBOX.alice`);
  }
  return {
    servers: parsed.map((p) => p.server),
    ...optional('user', user),
    ...optional('pass', pass),
    ...optional('token', token),
    ...optional('credsFile', credsFile),
    ...optional('nkeyFile', nkeyFile),
    ...(tlsRequired ? { tls } : {}),
    ...optional('inboxPrefix', inboxPrefix),
  };
}

/** The servers, for logs and messages. */
export const describeServers = (settings: NatsSettings): string => settings.servers.join(',');

/** The environment a child process needs to connect as this one does: secrets never go on a command line. */
export function natsEnvironment(settings: NatsSettings): Record<string, string> {
  return {
    PPOS_NATS_URL: describeServers(settings),
    ...optional('PPOS_NATS_USER', settings.user),
    ...optional('PPOS_NATS_PASS', settings.pass),
    ...optional('PPOS_NATS_TOKEN', settings.token),
    ...optional('PPOS_NATS_CREDS', settings.credsFile),
    ...optional('PPOS_NATS_NKEY', settings.nkeyFile),
    ...optional('PPOS_NATS_TLS_CA', settings.tls?.caFile),
    ...optional('PPOS_NATS_TLS_CERT', settings.tls?.certFile),
    ...optional('PPOS_NATS_TLS_KEY', settings.tls?.keyFile),
    ...optional('PPOS_NATS_INBOX_PREFIX', settings.inboxPrefix),
  };
}

interface ParsedServer {
  readonly server: string;
  readonly tls: boolean;
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
}

function parseServer(text: string): ParsedServer {
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `nats://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new NatsSettingsError(`not a NATS URL: ${redactUrl(text)}`);
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (scheme !== 'nats' && scheme !== 'tls') throw new NatsSettingsError(`NATS URLs are nats:// or tls://, not ${scheme}://`);
  const username = url.username === '' ? undefined : decodeURIComponent(url.username);
  const password = url.password === '' ? undefined : decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  const server = url.toString().replace(/\/$/, '');
  // nats://secret@host is a token; nats://user:pass@host a user and password.
  if (username !== undefined && password === undefined) return { server, tls: scheme === 'tls', token: username };
  return { server, tls: scheme === 'tls', ...optional('user', username), ...optional('pass', password) };
}

const nonEmpty = (value: string | undefined): string | undefined => (value === undefined || value === '' ? undefined : value);
const optional = <K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } => (value === undefined ? {} : ({ [key]: value } as { [P in K]: V }));

/** Connection options for nats.js: credentials read from their files now, so a missing file is named at once. */
async function connectionOptions(settings: NatsSettings, name: string): Promise<ConnectionOptions> {
  const authenticator = settings.credsFile
    ? credsAuthenticator(await readSecretFile(settings.credsFile, '--nats-creds'))
    : settings.nkeyFile
      ? nkeyAuthenticator(new TextEncoder().encode((await readSecretFile(settings.nkeyFile, '--nats-nkey')).toString('utf8').trim()))
      : undefined;
  return {
    servers: [...settings.servers],
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
    // A TLS server that refuses our certificate (or our lack of one) after the handshake looks,
    // to the client, like a server that never answers: give up on that attempt sooner.
    ...(settings.tls ? { timeout: TLS_CONNECT_TIMEOUT_MS } : {}),
    ...(settings.user !== undefined ? { user: settings.user, pass: settings.pass ?? '' } : {}),
    ...(settings.token !== undefined ? { token: settings.token } : {}),
    ...(authenticator ? { authenticator } : {}),
    ...(settings.tls ? { tls: { ...settings.tls } } : {}),
    ...(settings.inboxPrefix ? { inboxPrefix: settings.inboxPrefix } : {}),
  };
}

async function readSecretFile(file: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new NatsConnectError(`${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** Connecting to NATS cannot succeed by waiting: bad credentials, no permission, a TLS mismatch. */
export class NatsConnectError extends Error {}

const TLS_CONNECT_TIMEOUT_MS = 5_000;

/** An error that retrying will not cure, named for people; null for one worth another try. */
function fatalReason(error: unknown, tls: boolean): string | null {
  const name = (error as Error | undefined)?.name ?? '';
  const message = (error as Error | undefined)?.message ?? String(error);
  const code = String((error as NodeJS.ErrnoException | undefined)?.code ?? (error as { cause?: NodeJS.ErrnoException }).cause?.code ?? '');
  if (name === 'AuthorizationError' || /authorization violation|authentication/i.test(message)) return `authentication failed (${message})`;
  if (name === 'UserAuthenticationExpiredError') return `the credentials have expired (${message})`;
  if (name === 'PermissionViolationError') return `permission denied (${message})`;
  if (/does not support 'tls'|tls.*not available/i.test(message)) return 'TLS is required (a tls:// URL or a --nats-tls-* option) but the server does not offer it';
  if (/^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_OSSL)/.test(code) || /certificate|handshake|alert/i.test(message)) {
    return `TLS handshake failed (${message})`;
  }
  if (tls && name === 'TimeoutError') {
    return 'TLS handshake failed: the server did not complete the connection (does it require a client certificate? give --nats-tls-cert and --nats-tls-key)';
  }
  return null;
}

export async function connectNats(settings: NatsSettings, name: string, logger: Logger | undefined, waitMs = 10_000): Promise<NatsConnection> {
  const options = await connectionOptions(settings, name);
  const where = describeServers(settings);
  const deadline = Date.now() + waitMs;
  for (let attempt = 1; ; attempt += 1) {
    try {
      const nc = await connect(options);
      if (logger) void watchStatus(nc, logger);
      return nc;
    } catch (error) {
      const fatal = fatalReason(error, settings.tls !== undefined);
      if (fatal) throw new NatsConnectError(`NATS at ${where}: ${fatal}`, { cause: error });
      if (Date.now() > deadline) {
        throw new Error(
          `cannot reach NATS at ${where} (${(error as Error).message}). Start one with ` +
            '`nats-server -js` (or `docker compose up -d nats`), or point --nats / PPOS_NATS_URL at yours',
          { cause: error },
        );
      }
      if (attempt === 1) logger?.warn({ nats: where }, 'NATS not reachable yet; retrying');
      await sleep(Math.min(1_000, 100 * attempt));
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function watchStatus(nc: NatsConnection, logger: Logger): Promise<void> {
  for await (const status of nc.status()) {
    if (status.type === 'disconnect' || status.type === 'reconnect' || status.type === 'error') {
      logger.warn({ nats: status.type, server: 'server' in status ? status.server : undefined, err: 'error' in status ? String(status.error) : undefined }, `NATS ${status.type}`);
    }
  }
}
