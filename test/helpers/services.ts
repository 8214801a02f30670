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
      await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await dropper.end();
    },
  };
}

/** `config`: extra lines for the server's configuration file, e.g. `max_payload: 8192`. */
export async function startNats(config?: string): Promise<PrivateNatsServer> {
  return PrivateNatsServer.start(config === undefined ? {} : { config });
}
