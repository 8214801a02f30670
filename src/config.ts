// Runtime configuration: a flag wins over its environment variable, which wins over the
// default (CONTRACT.md section 1). Every value is checked here, once, with a clear error.
import { parseListen } from '../runtime/http-endpoint.js';
import { monotonicFactory } from 'ulid';
import { natsSettings, NatsSettingsError, type NatsFlags, type NatsSettings } from './nats.js';
import { DEFAULT_LAG_BUDGETS } from '../persistence/projections/index.js';
import { parseDatabaseUrls } from '../persistence/database-layout.js';

export const newId = monotonicFactory();

/** `--shards` when not given. */
export const DEFAULT_SHARD_COUNT = 256;

export interface NodeConfig {
  /** Servers (userinfo removed), credentials and TLS. */
  readonly nats: NatsSettings;
  /** One URL, or several separated by commas (the shards spread over them); unset: the embedded PostgreSQL under `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly nodeId: string;
  readonly snapshotEvery: number;
  readonly mailboxCapacity: number;
  readonly passivateAfterMs: number;
  readonly maxActiveActors: number;
  /** Unset: dedupe records are kept for ever (the default). */
  readonly dedupeRetentionHours: number | undefined;
  readonly requestTimeoutMs: number;
  /** Shards actor ids hash into; fixed for the life of a journal. */
  readonly shardCount: number;
  /** Shard lease length; renewed every third of it. */
  readonly leaseMs: number;
  /** How often a node looks for sagas left open (by a crash, or by a node that died). */
  readonly sagaResumeIntervalMs: number;
  /** How often a node looks for due timers on its shards. */
  readonly timerPollMs: number;
  /** Group commit: most appends in one journal statement and commit. */
  readonly commitBatch: number;
  /** Group commit: extra wait to collect appends before a commit (0: only what is already queued). */
  readonly commitLingerMs: number;
  /** Group commit: most commits in flight at once, each on its own connection. */
  readonly commitInFlight: number;
  /** The journal's followers this node may run: projections by name, and `export` (JetStream). */
  readonly followers: readonly string[];
  /** Lag each follower may have (ms), by name. */
  readonly lagBudgets: ReadonlyMap<string, number>;
  /** Where to serve /metrics, /healthz and /readyz; unset: no HTTP port (the default). */
  readonly http: { readonly host: string; readonly port: number } | undefined;
}

export class UsageError extends Error {}

export interface RawOptions extends NatsFlags {
  readonly db?: string | undefined;
  readonly dataDir?: string | undefined;
  readonly node?: string | undefined;
  readonly snapshotEvery?: string | undefined;
  readonly mailboxSize?: string | undefined;
  readonly passivateAfterMs?: string | undefined;
  readonly maxActive?: string | undefined;
  readonly dedupeRetentionHours?: string | undefined;
  readonly timeout?: string | undefined;
  readonly shards?: string | undefined;
  readonly leaseMs?: string | undefined;
  readonly commitBatch?: string | undefined;
  readonly commitLingerMs?: string | undefined;
  readonly commitInFlight?: string | undefined;
  /** `stock,workorders,export` (default), a subset, or `none`. */
  readonly followers?: string | undefined;
  /** `NAME=MS`, repeated (or comma-separated). */
  readonly lagBudget?: readonly string[] | string | undefined;
  /** `HOST:PORT` or `PORT` (loopback). */
  readonly http?: string | undefined;
}

const FOLLOWERS = [...DEFAULT_LAG_BUDGETS.keys()];

function httpListen(value: string | undefined): { host: string; port: number } | undefined {
  if (value === undefined || value === '') return undefined;
  const listen = parseListen(value);
  if (typeof listen === 'string') throw new UsageError(`--http ${listen}`);
  return listen;
}

function followerList(value: string | undefined): string[] {
  if (value === undefined || value === '') return FOLLOWERS;
  if (value === 'none') return [];
  const names = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const name of names) if (!FOLLOWERS.includes(name)) throw new UsageError(`--followers: no follower ${JSON.stringify(name)}; known: ${FOLLOWERS.join(', ')}, or none`);
  return names;
}

function lagBudgets(raw: readonly string[] | string | undefined, env: string | undefined): Map<string, number> {
  const budgets = new Map(DEFAULT_LAG_BUDGETS);
  const given = [env ?? '', ...(raw === undefined ? [] : Array.isArray(raw) ? raw : [raw as string])].flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  for (const entry of given) {
    const match = /^([a-z]+)=(\d{1,9})$/.exec(entry);
    if (!match || !FOLLOWERS.includes(match[1]!)) throw new UsageError(`--lag-budget ${JSON.stringify(entry)} must be NAME=MS with NAME one of ${FOLLOWERS.join(', ')}`);
    budgets.set(match[1]!, Number(match[2]));
  }
  return budgets;
}

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${name} must be a positive whole number, got ${JSON.stringify(value)}`);
  return n;
}

function nonNegativeInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${name} must be zero or a positive whole number, got ${JSON.stringify(value)}`);
  return n;
}

function atMost(name: string, n: number, limit: number): number {
  if (n > limit) throw new UsageError(`${name} must be at most ${limit}, got ${n}`);
  return n;
}

export function resolveConfig(raw: RawOptions, env: NodeJS.ProcessEnv = process.env): NodeConfig {
  const nodeId = raw.node ?? env.PPOS_NODE_ID ?? newId();
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(nodeId)) throw new UsageError(`node id ${JSON.stringify(nodeId)} must match [A-Za-z0-9_-]{1,64}`);
  let nats: NatsSettings;
  try {
    nats = natsSettings(raw, env);
  } catch (error) {
    if (error instanceof NatsSettingsError) throw new UsageError(error.message);
    throw error;
  }
  const databaseUrl = raw.db ?? env.PPOS_DATABASE_URL ?? undefined;
  if (databaseUrl !== undefined && databaseUrl !== '') {
    const parsed = parseDatabaseUrls(databaseUrl);
    if ('error' in parsed) throw new UsageError(parsed.error);
  }
  const retention = raw.dedupeRetentionHours ?? env.PPOS_DEDUPE_RETENTION_HOURS;
  return {
    nats,
    databaseUrl: databaseUrl === '' ? undefined : databaseUrl,
    dataDir: raw.dataDir ?? env.PPOS_DATA_DIR ?? '.ppos',
    nodeId,
    snapshotEvery: positiveInt('--snapshot-every', raw.snapshotEvery ?? env.PPOS_SNAPSHOT_EVERY, 100),
    mailboxCapacity: positiveInt('--mailbox-size', raw.mailboxSize ?? env.PPOS_MAILBOX_SIZE, 1000),
    passivateAfterMs: positiveInt('--passivate-after-ms', raw.passivateAfterMs ?? env.PPOS_PASSIVATE_AFTER_MS, 120_000),
    maxActiveActors: positiveInt('--max-active', raw.maxActive ?? env.PPOS_MAX_ACTIVE, 100_000),
    dedupeRetentionHours: retention === undefined || retention === '' ? undefined : positiveInt('--dedupe-retention-hours', retention, 1),
    requestTimeoutMs: positiveInt('--timeout', raw.timeout ?? env.PPOS_TIMEOUT_MS, 5_000),
    shardCount: positiveInt('--shards', raw.shards ?? env.PPOS_SHARDS, DEFAULT_SHARD_COUNT),
    leaseMs: positiveInt('--lease-ms', raw.leaseMs ?? env.PPOS_LEASE_MS, 6_000),
    sagaResumeIntervalMs: positiveInt('PPOS_SAGA_RESUME_MS', env.PPOS_SAGA_RESUME_MS, 15_000),
    timerPollMs: positiveInt('PPOS_TIMER_POLL_MS', env.PPOS_TIMER_POLL_MS, 200),
    // Bounded: a batch is one statement parameter, and a linger adds to every command's latency.
    commitBatch: atMost('--commit-batch', positiveInt('--commit-batch', raw.commitBatch ?? env.PPOS_COMMIT_BATCH, 256), 4_096),
    commitLingerMs: atMost('--commit-linger-ms', nonNegativeInt('--commit-linger-ms', raw.commitLingerMs ?? env.PPOS_COMMIT_LINGER_MS, 0), 100),
    commitInFlight: atMost('--commit-in-flight', positiveInt('--commit-in-flight', raw.commitInFlight ?? env.PPOS_COMMIT_IN_FLIGHT, 4), 32),
    followers: followerList(raw.followers ?? env.PPOS_FOLLOWERS),
    lagBudgets: lagBudgets(raw.lagBudget, env.PPOS_LAG_BUDGETS),
    http: httpListen(raw.http ?? env.PPOS_HTTP),
  };
}
