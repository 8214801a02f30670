// Fails the run at once, with the fix, when a service the tests need is missing: no test
// is ever skipped silently because PostgreSQL or nats-server is not there.
import pg from 'pg';
import { findNatsServer } from '../src/nats-server.js';
import { existsSync } from 'node:fs';
import { CLI_PATH } from '../src/spawn.js';

export const TEST_PG_URL = process.env.PPOS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export default async function setup(): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_PG_URL, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    throw new Error(
      `the tests need PostgreSQL at ${TEST_PG_URL} (set PPOS_TEST_PG_URL to use another): ${(error as Error).message}. ` +
        'Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
    );
  } finally {
    await client.end().catch(() => undefined);
  }
  if (!findNatsServer()) {
    throw new Error('the tests need nats-server on PATH (apt-get install nats-server): each test file runs its own on a free port');
  }
  if (!existsSync(CLI_PATH)) throw new Error(`the tests spawn the built CLI at ${CLI_PATH}: run \`npm run build\` first (npm test does)`);
}
