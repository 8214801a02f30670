// Holding one actor's next append inside PostgreSQL, deterministically: an open transaction
// inserts the dedupe row that append will try to insert, so the node's statement waits on
// the row lock until this transaction ends (rolled back: the append then goes through).
import pg from 'pg';
import type { TestDatabase } from './services.js';
import { waitFor } from './wait.js';

export interface AppendBlocker {
  /** Resolves, with its backend pid, once a ppos connection's append waits on this lock. */
  waiting(): Promise<number>;
  /** Rolls back: the held append proceeds as if nothing had happened. */
  release(): Promise<void>;
}

const unreleased = new Set<AppendBlocker>();

/** Releases every blocker still held (afterEach: a failed test must not leave a node stuck). */
export async function releaseAllBlockers(): Promise<void> {
  await Promise.all([...unreleased].map((blocker) => blocker.release()));
}

export async function blockAppend(db: TestDatabase, kind: string, actorId: string, messageId: string): Promise<AppendBlocker> {
  const client = new pg.Client({ connectionString: db.url, application_name: 'ppos-test-blocker' });
  await client.connect();
  const blockerPid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  await client.query('BEGIN');
  await client.query(
    `INSERT INTO ppos_dedupe (kind, actor_id, message_id, fingerprint, reply, seq, recorded_at) VALUES ($1, $2, $3, 'blocker', '{}', 0, now())`,
    [kind, actorId, messageId],
  );
  let released = false;
  const blocker: AppendBlocker = {
    async waiting() {
      // Waiting on this transaction directly: the append itself, not something queued behind it.
      return waitFor(`a ppos connection waiting on ${kind}/${actorId}'s append`, async () => {
        const result = await db.query<{ pid: number }>(
          "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'ppos' AND $2 = ANY(pg_blocking_pids(pid))",
          [db.name, blockerPid],
        );
        return result.rows[0]?.pid;
      });
    },
    async release() {
      if (released) return;
      released = true;
      unreleased.delete(blocker);
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
  unreleased.add(blocker);
  return blocker;
}
