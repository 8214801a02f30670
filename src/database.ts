// Opening the journal a command needs: the configured PostgreSQL, or the embedded default.
import path from 'node:path';
import type { Logger } from 'pino';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../persistence/embedded.js';
import { migrate } from '../persistence/migrations.js';
import { PgJournal, type PgJournalOptions } from '../persistence/pg-journal.js';
import type { NodeConfig } from './config.js';

export interface OpenedJournal {
  readonly journal: PgJournal;
  readonly embedded: EmbeddedPostgres | undefined;
  /** Closes the pool, and stops an embedded server this process started. */
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function openJournal(
  config: Pick<NodeConfig, 'databaseUrl' | 'dataDir'>,
  logger: Logger,
  options: { waitForDatabaseMs?: number; poolSize?: number; groupCommit?: PgJournalOptions['groupCommit'] } = {},
): Promise<OpenedJournal> {
  let embedded: EmbeddedPostgres | undefined;
  let url = config.databaseUrl;
  if (url === undefined) {
    embedded = await startEmbeddedPostgres({
      dataDir: path.resolve(config.dataDir, 'pgdata'),
      log: (message) => logger.info(message),
    });
    url = embedded.url;
  }
  const journal = new PgJournal({
    connectionString: url,
    poolSize: options.poolSize ?? 8,
    ...(options.groupCommit ? { groupCommit: options.groupCommit } : {}),
    onPoolError: (error) => logger.warn({ err: error.message }, 'idle database connection lost'),
  });
  // Migrations need the database; a node started before it (compose ordering) waits a while.
  const deadline = Date.now() + (options.waitForDatabaseMs ?? 30_000);
  for (let attempt = 1; ; attempt += 1) {
    try {
      const applied = await migrate(journal.pool);
      if (applied.length > 0) logger.info({ applied }, 'journal schema migrated');
      break;
    } catch (error) {
      if (Date.now() > deadline) {
        await journal.close().catch(() => undefined);
        throw new Error(`cannot reach the journal database: ${(error as Error).message}`, { cause: error });
      }
      if (attempt === 1) logger.warn({ err: (error as Error).message }, 'journal database not reachable yet; retrying');
      await sleep(Math.min(2_000, 100 * attempt));
    }
  }
  return {
    journal,
    embedded,
    async close() {
      await journal.close().catch(() => undefined);
      if (embedded?.startedHere) await embedded.stop();
    },
  };
}
