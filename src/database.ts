// Opening the journal a command needs: the configured PostgreSQL databases (one, or several
// that the shards are spread over), or the embedded default (one).
import path from 'node:path';
import type { Logger } from 'pino';
import { checkLayout, layoutProblem, parseDatabaseUrls } from '../persistence/database-layout.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../persistence/embedded.js';
import { migrate } from '../persistence/migrations.js';
import { PgJournal, type PgJournalOptions } from '../persistence/pg-journal.js';
import { ShardedJournal } from '../persistence/sharded-journal.js';
import { DEFAULT_SHARD_COUNT, type NodeConfig } from './config.js';

export interface OpenedJournal {
  /** Routes each actor's calls to its shard's database. */
  readonly journal: ShardedJournal;
  readonly embedded: EmbeddedPostgres | undefined;
  /** Closes the pool, and stops an embedded server this process started. */
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function openJournal(
  config: Pick<NodeConfig, 'databaseUrl' | 'dataDir'> & { readonly shardCount?: number },
  logger: Logger,
  options: { waitForDatabaseMs?: number; poolSize?: number; groupCommit?: PgJournalOptions['groupCommit'] } = {},
): Promise<OpenedJournal> {
  let embedded: EmbeddedPostgres | undefined;
  let urls: string[];
  if (config.databaseUrl === undefined) {
    embedded = await startEmbeddedPostgres({
      dataDir: path.resolve(config.dataDir, 'pgdata'),
      log: (message) => logger.info(message),
    });
    urls = [embedded.url];
  } else {
    const parsed = parseDatabaseUrls(config.databaseUrl);
    if ('error' in parsed) throw new Error(parsed.error);
    urls = parsed.urls;
  }
  const parts = urls.map(
    (url, index) =>
      new PgJournal({
        connectionString: url,
        poolSize: options.poolSize ?? 8,
        ...(options.groupCommit ? { groupCommit: options.groupCommit } : {}),
        onPoolError: (error) => logger.warn({ err: error.message, ...(urls.length > 1 ? { database: index + 1 } : {}) }, 'idle database connection lost'),
      }),
  );
  const closeAll = async (): Promise<void> => {
    await Promise.all(parts.map((part) => part.close().catch(() => undefined)));
    if (embedded?.startedHere) await embedded.stop();
  };
  try {
    for (const [index, part] of parts.entries()) await migrated(part, logger, options.waitForDatabaseMs ?? 30_000, urls.length > 1 ? index + 1 : undefined);
    const shards = await recordedShards(parts, config.shardCount ?? DEFAULT_SHARD_COUNT);
    return { journal: new ShardedJournal(parts, shards), embedded, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** Migrates one database, waiting for it a while: a node started before it (compose ordering). */
async function migrated(part: PgJournal, logger: Logger, waitMs: number, database: number | undefined): Promise<void> {
  const deadline = Date.now() + waitMs;
  const which = database === undefined ? 'the journal database' : `journal database ${database}`;
  for (let attempt = 1; ; attempt += 1) {
    try {
      const applied = await migrate(part.pool);
      if (applied.length > 0) logger.info({ applied, ...(database === undefined ? {} : { database }) }, 'journal schema migrated');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`cannot reach ${which}: ${(error as Error).message}`, { cause: error });
      if (attempt === 1) logger.warn({ err: (error as Error).message }, `${which} not reachable yet; retrying`);
      await sleep(Math.min(2_000, 100 * attempt));
    }
  }
}

/**
 * The shard count to route by: the one the databases recorded (inspection tools need not be
 * given --shards), else the configured one. Refuses databases that are not the journal's, in its order.
 */
async function recordedShards(parts: readonly PgJournal[], configured: number): Promise<number> {
  const layout = { databases: parts.length, shards: (await checkLayout(parts.map((part) => part.pool))) ?? configured };
  const problem = layoutProblem(layout);
  if (problem) throw new Error(problem);
  return layout.shards;
}
