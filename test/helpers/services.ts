// Real services for one test file: a fresh PostgreSQL database and a private nats-server,
// so files never see each other's data or messages.
import pg from 'pg';
import { ulid } from 'ulid';
import { PrivateNatsServer } from '../../src/nats-server.js';

export const TEST_PG_URL = process.env.PPOS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `ppos_t_${ulid().toLowerCase()}`;
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  pool.on('error', () => undefined);
  return {
    url: url.toString(),
    name,
    query: (sql, values) => pool.query(sql, values),
    async drop() {
      await pool.end().catch(() => undefined);
      const dropper = new pg.Client({ connectionString: TEST_PG_URL });
      await dropper.connect();
      // A pool's end() resolves once it has asked its connections to close, not once they have:
      // dropped WITH (FORCE) at once, a connection still closing is terminated by the server, and
      // its FATAL error reaches a client nobody listens to any more (an uncaught exception in the
      // suite). So wait a moment for the file's own connections to go; FORCE is for leftovers.
      for (let waited = 0; waited < 3_000; waited += 20) {
        const open = await dropper.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]).catch(() => undefined);
        if (!open || open.rows[0].n === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await dropper.end();
    },
  };
}

/** `config`: extra lines for the server's configuration file, e.g. `max_payload: 8192`. */
export async function startNats(config?: string): Promise<PrivateNatsServer> {
  return PrivateNatsServer.start(config === undefined ? {} : { config });
}
