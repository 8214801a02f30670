// Schema migrations: numbered, each applied once in its own transaction under an advisory
// lock, so several nodes starting together cannot race or apply one twice.
import type pg from 'pg';

interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'journal, snapshots, dedupe',
    sql: `
      CREATE TABLE ppos_events (
        kind            text        NOT NULL,
        actor_id        text        NOT NULL,
        seq             bigint      NOT NULL CHECK (seq > 0),
        type            text        NOT NULL,
        data            jsonb       NOT NULL,
        message_id      text        NOT NULL,
        correlation_id  text,
        causation_id    text,
        machine_version integer     NOT NULL,
        epoch           bigint      NOT NULL DEFAULT 0,
        recorded_at     timestamptz NOT NULL,
        position        bigint      GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (kind, actor_id, seq)
      );
      -- One command appends at most one event, so a message id names at most one row:
      -- the database itself refuses to apply a message twice.
      CREATE UNIQUE INDEX ppos_events_message_id ON ppos_events (kind, actor_id, message_id);
      CREATE UNIQUE INDEX ppos_events_position ON ppos_events (position);

      CREATE FUNCTION ppos_refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'ppos_events is append-only: % refused', TG_OP
          USING ERRCODE = 'insufficient_privilege';
      END $$;
      CREATE TRIGGER ppos_events_append_only BEFORE UPDATE OR DELETE ON ppos_events
        FOR EACH ROW EXECUTE FUNCTION ppos_refuse_event_change();
      CREATE TRIGGER ppos_events_no_truncate BEFORE TRUNCATE ON ppos_events
        FOR EACH STATEMENT EXECUTE FUNCTION ppos_refuse_event_change();

      CREATE TABLE ppos_snapshots (
        kind            text        NOT NULL,
        actor_id        text        NOT NULL,
        seq             bigint      NOT NULL CHECK (seq > 0),
        machine_version integer     NOT NULL,
        state           jsonb       NOT NULL,
        hash            text        NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kind, actor_id, machine_version, seq)
      );

      CREATE TABLE ppos_dedupe (
        kind        text        NOT NULL,
        actor_id    text        NOT NULL,
        message_id  text        NOT NULL,
        fingerprint text        NOT NULL,
        reply       json        NOT NULL, -- json, not jsonb: a repeat gets the first reply byte for byte
        seq         bigint      NOT NULL,
        recorded_at timestamptz NOT NULL,
        -- Repeat deliveries answered from this record (best effort: counted after replying).
        duplicates  integer     NOT NULL DEFAULT 0,
        PRIMARY KEY (kind, actor_id, message_id)
      );
      CREATE INDEX ppos_dedupe_recorded_at ON ppos_dedupe (recorded_at);
    `,
  },
  {
    version: 2,
    name: 'index of open sagas',
    sql: `
      -- A saga's starting command keeps a pending dedupe record until the saga settles: this
      -- finds the sagas a restarted node must resume without scanning every record.
      CREATE INDEX ppos_dedupe_pending ON ppos_dedupe (kind, actor_id) WHERE (reply->>'pending') = 'true';
    `,
  },
  {
    version: 3,
    name: 'shard leases and node membership',
    sql: `
      CREATE TABLE ppos_cluster (key text PRIMARY KEY, value text NOT NULL);
      -- One row per shard. epoch only grows: it is the fencing token every append carries.
      CREATE TABLE ppos_shard_leases (
        shard      integer     PRIMARY KEY,
        owner      text,
        epoch      bigint      NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE ppos_nodes (
        node_id      text        PRIMARY KEY,
        started_at   timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now(),
        draining     boolean     NOT NULL DEFAULT false
      );
      ALTER TABLE ppos_events ADD COLUMN shard integer;
    `,
  },
  {
    version: 4,
    name: 'process incarnations, dedupe horizon by message id time',
    sql: `
      -- One incarnation per process: two processes started with the same node id are told
      -- apart, and only the newest may hold (and be sent) what belongs to that id.
      ALTER TABLE ppos_nodes ADD COLUMN incarnation text;
      ALTER TABLE ppos_shard_leases ADD COLUMN owner_incarnation text;
      -- The time a message id carries (a ULID's), null for ids without one. Dedupe retention
      -- prunes by it, and refuses a repeat from before what it pruned (pg-journal.ts).
      ALTER TABLE ppos_dedupe ADD COLUMN id_time timestamptz;
      DROP INDEX ppos_dedupe_recorded_at;
      CREATE INDEX ppos_dedupe_id_time ON ppos_dedupe (id_time) WHERE id_time IS NOT NULL;
    `,
  },
  {
    version: 5,
    name: 'facts established by events',
    sql: `
      -- What an actor must know about its past without holding it in memory (an inventory's
      -- consumed reservation ids): one row per fact, written in the append that journals the
      -- event establishing it, looked up by key.
      CREATE TABLE ppos_event_facts (
        kind     text   NOT NULL,
        actor_id text   NOT NULL,
        key      text   NOT NULL,
        seq      bigint NOT NULL,
        PRIMARY KEY (kind, actor_id, key)
      );
      -- The inventory kind's facts from before this table: every Consumed event's reservation.
      INSERT INTO ppos_event_facts (kind, actor_id, key, seq)
      SELECT kind, actor_id, 'consumed:' || (data->>'reservationId'), seq FROM ppos_events
      WHERE kind = 'inventory' AND type = 'Consumed'
      ON CONFLICT DO NOTHING;
    `,
  },
  {
    version: 6,
    name: 'read order of committed events, projections',
    sql: `
      -- The transaction that wrote each event. Positions are taken at insert while several
      -- commits are in flight, so they commit out of order: a reader that follows positions
      -- alone can pass a row that commits later. Read in (tx, position) order below the oldest
      -- transaction still running (pg_snapshot_xmin), no committed row is ever skipped.
      ALTER TABLE ppos_events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
      CREATE INDEX ppos_events_read_order ON ppos_events (tx, position);

      -- One row per projection (and the journal export): its checkpoint, moved in the same
      -- transaction as what it applied, and its owner, fenced by an epoch like a shard.
      CREATE TABLE ppos_projections (
        name              text        PRIMARY KEY,
        tx                xid8        NOT NULL DEFAULT '0',
        position          bigint      NOT NULL DEFAULT 0,
        applied_events    bigint      NOT NULL DEFAULT 0,
        owner             text,
        owner_incarnation text,
        epoch             bigint      NOT NULL DEFAULT 0,
        expires_at        timestamptz NOT NULL DEFAULT now(),
        rebuilding        boolean     NOT NULL DEFAULT false,
        -- The lag the nodes are configured to tolerate, for tools to show against the lag.
        budget_ms         integer     NOT NULL DEFAULT 2000,
        updated_at        timestamptz NOT NULL DEFAULT now()
      );

      -- The built-in projections' read models (CONTRACT.md section 8).
      CREATE TABLE ppos_proj_stock (
        id                text        PRIMARY KEY,
        on_hand           bigint      NOT NULL,
        reserved          bigint      NOT NULL,
        available         bigint      NOT NULL,
        open_reservations integer     NOT NULL,
        updated_at        timestamptz NOT NULL
      );
      CREATE INDEX ppos_proj_stock_available ON ppos_proj_stock (available, id);
      CREATE TABLE ppos_proj_stock_reservations (
        id             text   NOT NULL,
        reservation_id text   NOT NULL,
        qty            bigint NOT NULL,
        PRIMARY KEY (id, reservation_id)
      );
      CREATE TABLE ppos_proj_workorders (
        id         text        PRIMARY KEY,
        status     text        NOT NULL,
        stage      text,
        lines      jsonb       NOT NULL,
        state      jsonb       NOT NULL,
        updated_at timestamptz NOT NULL
      );
      CREATE INDEX ppos_proj_workorders_status ON ppos_proj_workorders (status, id);
    `,
  },
  {
    version: 7,
    name: 'event versions',
    sql: `
      -- The version of its type an event was written at, null for version 1: kinds evolve
      -- their events and upcast old ones when they read them (actors/event-version.ts). Null
      -- by default, so the rows written before stay exactly as they were.
      ALTER TABLE ppos_events ADD COLUMN event_version smallint;
    `,
  },
  {
    version: 8,
    name: 'durable timers',
    sql: `
      -- An actor's pending timers (a hold's deadline): written and removed in the same commit as
      -- the events that set them and make them moot; the owner of the shard fires the due ones,
      -- found by (shard, due_at), never loaded all at once.
      CREATE TABLE ppos_timers (
        kind      text        NOT NULL,
        actor_id  text        NOT NULL,
        key       text        NOT NULL,
        shard     integer     NOT NULL,
        -- The seq of the event that set it: part of the firing's id, and what its removal matches.
        set_seq   bigint      NOT NULL,
        due_at    timestamptz NOT NULL,
        command   jsonb       NOT NULL,
        PRIMARY KEY (kind, actor_id, key)
      );
      CREATE INDEX ppos_timers_due ON ppos_timers (shard, due_at);
    `,
  },
  {
    version: 9,
    name: 'trace context',
    sql: `
      -- The W3C traceparent of the span that wrote the event (CONTRACT.md section 9): one client
      -- request followed across actors. Nullable, no default: adding it rewrites nothing.
      ALTER TABLE ppos_events ADD COLUMN traceparent text;
      -- \`ppos trace <trace id>\`: only traced rows are indexed, so untraced commands pay nothing.
      CREATE INDEX ppos_events_trace ON ppos_events (substr(traceparent, 4, 32)) WHERE traceparent IS NOT NULL;
    `,
  },
  {
    version: 10,
    name: 'shard of an actor in SQL',
    sql: `
      -- An actor's shard as the runtime computes it (runtime/sharding.ts: FNV-1a of
      -- '<kind>/<id>', 32 bits, modulo the shard count), for operators in plain SQL: which
      -- database of several an actor's rows belong in (docs/several-databases.md), audits.
      -- Ids and kinds are ASCII (CONTRACT.md), so bytes and the runtime's UTF-16 units agree.
      CREATE FUNCTION ppos_shard_of(kind text, actor_id text, shards integer) RETURNS integer
      LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
      DECLARE
        hash bigint := 2166136261;
        bytes bytea := convert_to(kind || '/' || actor_id, 'UTF8');
      BEGIN
        FOR i IN 0 .. length(bytes) - 1 LOOP
          hash := ((hash # get_byte(bytes, i)) * 16777619) % 4294967296;
        END LOOP;
        RETURN hash % shards;
      END
      $fn$;
    `,
  },
];

/** An arbitrary constant naming ppos's migration lock among the database's advisory locks. */
const MIGRATION_LOCK_KEY = 0x7070_6f73;

export async function migrate(pool: pg.Pool): Promise<number[]> {
  const client = await pool.connect();
  const applied: number[] = [];
  // Checked out, the client has no pool listener: a connection reset would be an unhandled
  // 'error' event (a crash) instead of the rejected query the caller retries.
  const ignore = (): void => undefined;
  client.on('error', ignore);
  try {
    for (const migration of MIGRATIONS) {
      await client.query('BEGIN');
      try {
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
        await client.query(
          'CREATE TABLE IF NOT EXISTS ppos_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
        );
        const done = await client.query('SELECT 1 FROM ppos_schema_migrations WHERE version = $1', [migration.version]);
        if (done.rowCount === 0) {
          await client.query(migration.sql);
          await client.query('INSERT INTO ppos_schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
          applied.push(migration.version);
        }
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    }
  } finally {
    client.off('error', ignore);
    client.release();
  }
  return applied;
}
