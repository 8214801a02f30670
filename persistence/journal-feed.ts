// The journal in commit order, for readers that follow it (projections, the export): every
// committed event exactly once, none skipped. Positions are taken at insert while several
// commits are in flight, so a later position can commit first; reading in (transaction id,
// position) order, and only below the oldest transaction still running, a reader never passes
// a row that could still appear behind it. (The PostgreSQL event stores read the same way.)
import type pg from 'pg';
import { withVersion } from '../actors/event-version.js';
import type { DomainEvent } from '../actors/kind.js';

/** A place in the read order; `tx` is an xid8 as decimal text (it outgrows 2^53). */
export interface FeedPosition {
  readonly tx: string;
  readonly position: number;
}

export const FEED_START: FeedPosition = { tx: '0', position: 0 };

export interface FedEvent extends FeedPosition {
  readonly kind: string;
  readonly id: string;
  readonly seq: number;
  readonly event: DomainEvent;
  readonly messageId: string;
  readonly correlationId: string | null;
  readonly causationId: string | null;
  readonly traceparent: string | null;
  readonly recordedAt: Date;
}

export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

/** Up to `limit` committed events after `after`, in read order, from below the horizon. */
export async function readCommitted(db: Queryable, after: FeedPosition, limit: number, through?: FeedPosition): Promise<FedEvent[]> {
  const result = await db.query<FeedRow>({
    // `e.tx`, qualified: a bare `tx` in ORDER BY names the text column of the output, and
    // '1000' sorts before '999'.
    text: `SELECT e.tx::text AS tx, e.position, e.kind, e.actor_id, e.seq, e.type, e.data, e.event_version, e.message_id, e.correlation_id, e.causation_id, e.traceparent,
            -- as milliseconds: a Date from a number costs a fraction of parsing its text
            (extract(epoch FROM e.recorded_at) * 1000)::float8 AS recorded_ms
     FROM ppos_events e
     WHERE (e.tx, e.position) > ($1::xid8, $2::bigint)
       AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
       AND ($4::xid8 IS NULL OR (e.tx, e.position) <= ($4::xid8, $5::bigint))
     ORDER BY e.tx, e.position
     LIMIT $3`,
    values: [after.tx, after.position, limit, through?.tx ?? null, through?.position ?? 0],
    // Rows as arrays: a batch is hundreds of rows, and an object per row, keyed by column name,
    // was a good part of what reading cost the node (its garbage above all).
    rowMode: 'array',
  });
  return result.rows.map(([tx, position, kind, id, seq, type, data, version, messageId, correlationId, causationId, traceparent, recordedMs]) => {
    // The data was parsed for this read alone: the event is made of it in place, not copied.
    data.type = type;
    return {
      tx,
      position: Number(position),
      kind,
      id,
      seq: Number(seq),
      event: withVersion(data as DomainEvent, version),
      messageId,
      correlationId: correlationId ?? null,
      causationId: causationId ?? null,
      traceparent: traceparent ?? null,
      recordedAt: new Date(recordedMs),
    };
  });
}

/** A row of readCommitted's query, as an array in its column order. */
type FeedRow = [
  tx: string,
  position: string | number,
  kind: string,
  id: string,
  seq: string | number,
  type: string,
  data: Record<string, unknown>,
  version: number | null,
  messageId: string,
  correlationId: string | null,
  causationId: string | null,
  traceparent: string | null,
  recordedMs: number,
];

/** Whether `a` comes after `b` in read order. */
export function isAfter(a: FeedPosition, b: FeedPosition): boolean {
  const ta = BigInt(a.tx);
  const tb = BigInt(b.tx);
  return ta > tb || (ta === tb && a.position > b.position);
}

/**
 * How far a reader at `at` is behind the journal: about the age of the oldest committed event it
 * has not read, and how many there are (counted up to `countUpTo`). Sampled often (every
 * follower, every second; dashboards and benches more), so it reads little whatever the lag: the
 * age from the first 64 unread events in read order (an event received earlier but committed in a
 * later transaction can be a few milliseconds older and is missed: small against budgets of
 * seconds), the count from the read-order index alone.
 */
export async function lagBehind(db: Queryable, at: FeedPosition, countUpTo = 100_000): Promise<{ lagMs: number; lagEvents: number }> {
  const result = await db.query(
    `SELECT (SELECT greatest(0, extract(epoch FROM now() - min(recorded_at)) * 1000)
               FROM (SELECT recorded_at FROM ppos_events WHERE (tx, position) > ($1::xid8, $2::bigint) ORDER BY tx, position LIMIT 64) first_unread)::float8 AS lag_ms,
            (SELECT count(*) FROM (SELECT 1 FROM ppos_events WHERE (tx, position) > ($1::xid8, $2::bigint) ORDER BY tx, position LIMIT $3) unread)::int AS lag_events`,
    [at.tx, at.position, countUpTo],
  );
  const row = result.rows[0] as { lag_ms: number | null; lag_events: number };
  return { lagMs: Math.round(row.lag_ms ?? 0), lagEvents: row.lag_events };
}

/**
 * Why this server cannot extend the journal's read order, or null when it can. The order is by
 * the writing transaction's id; a journal restored onto another PostgreSQL server (pg_dump and
 * pg_restore) holds ids that server has not reached yet, so its new events would sort before
 * events already read, and every follower (projections, the export, read-your-writes tokens)
 * would skip them silently. Checked before a node starts; the cure is in docs/backups.md.
 */
export async function readOrderProblem(db: Queryable): Promise<string | null> {
  const result = await db.query(
    // The next id this server will assign, read without taking one.
    `SELECT (SELECT tx FROM ppos_events ORDER BY tx DESC LIMIT 1)::text AS newest, pg_snapshot_xmax(pg_current_snapshot())::text AS next`,
  );
  const { newest, next } = result.rows[0] as { newest: string | null; next: string };
  if (newest === null || BigInt(newest) < BigInt(next)) return null;
  return (
    `the journal holds events written by transaction ${newest}, but this PostgreSQL server's next transaction id is ${next}: ` +
    'the journal was restored onto another server. New events would sort before old ones and the projections and the export would skip them. ' +
    'Move the server\'s transaction counter past the journal\'s first (pg_resetwal --epoch; docs/backups.md, "A restore on another server")'
  );
}
