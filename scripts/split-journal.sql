-- Moving a journal from one database to several (docs/several-databases.md), offline: run once
-- in each database after the whole journal was copied into every new one, with every node
-- stopped:
--   psql -v ON_ERROR_STOP=1 -v databases=D -v shards=S -v index=I -f scripts/split-journal.sql <url of database I+1>
-- `index` is the database's place in the new --db list, from 0. It keeps the rows of the actors
-- and shards that live in that database (database = floor(shard × databases / shards)) and
-- deletes the rest, in one transaction. The first database keeps membership, the followers'
-- rows and the read models, and gets a checkpoint per new database equal to the follower's
-- current one: each database holds a subset of the old journal with the same transaction ids
-- and positions, so what the read models and the stream hold is what lies before it in each.
\set ON_ERROR_STOP 1
BEGIN;
SELECT set_config('ppos.split_databases', :'databases', true), set_config('ppos.split_shards', :'shards', true), set_config('ppos.split_index', :'index', true);

CREATE FUNCTION pg_temp.elsewhere(kind text, actor_id text) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT floor(ppos_shard_of(kind, actor_id, current_setting('ppos.split_shards')::int)::bigint
               * current_setting('ppos.split_databases')::int / current_setting('ppos.split_shards')::int)
         <> current_setting('ppos.split_index')::int
$$;

-- Events are append-only (a trigger refuses deletes): lifted for the move only.
ALTER TABLE ppos_events DISABLE TRIGGER ppos_events_append_only;
DELETE FROM ppos_events WHERE pg_temp.elsewhere(kind, actor_id);
ALTER TABLE ppos_events ENABLE TRIGGER ppos_events_append_only;
DELETE FROM ppos_dedupe WHERE pg_temp.elsewhere(kind, actor_id);
DELETE FROM ppos_event_facts WHERE pg_temp.elsewhere(kind, actor_id);
DELETE FROM ppos_timers WHERE pg_temp.elsewhere(kind, actor_id);
DELETE FROM ppos_snapshots WHERE pg_temp.elsewhere(kind, actor_id);
DELETE FROM ppos_shard_leases
  WHERE floor(shard::bigint * current_setting('ppos.split_databases')::int / current_setting('ppos.split_shards')::int) <> current_setting('ppos.split_index')::int;
-- The journal's shard count must be the one given: the split is by it.
DO $$ BEGIN
  IF (SELECT value FROM ppos_cluster WHERE key = 'shards') IS DISTINCT FROM current_setting('ppos.split_shards') THEN
    RAISE EXCEPTION 'this journal has % shards, not %', (SELECT value FROM ppos_cluster WHERE key = 'shards'), current_setting('ppos.split_shards');
  END IF;
END $$;
-- Every copy carries the old database's id, which stays the first database's: the others
-- record it as the journal they belong to, and get ids of their own at the next start, when the
-- first records every database's.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM ppos_cluster WHERE key = 'database_id') THEN
    RAISE EXCEPTION 'this journal has no database id yet: start a ppos node on the old database once (it records it), stop it, and copy again';
  END IF;
END $$;
INSERT INTO ppos_cluster (key, value)
  SELECT 'layout', (json_build_object('index', current_setting('ppos.split_index')::int, 'databases', current_setting('ppos.split_databases')::int,
                                     'shards', current_setting('ppos.split_shards')::int)::jsonb
                   || CASE WHEN current_setting('ppos.split_index')::int > 0 THEN jsonb_build_object('journal', value) ELSE '{}'::jsonb END)::text
  FROM ppos_cluster WHERE key = 'database_id'
  ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
DELETE FROM ppos_cluster WHERE key = 'database_id' AND current_setting('ppos.split_index')::int > 0;

-- What lives in the first database only.
DELETE FROM ppos_nodes WHERE current_setting('ppos.split_index')::int > 0;
DELETE FROM ppos_projections WHERE current_setting('ppos.split_index')::int > 0;
DELETE FROM ppos_proj_stock WHERE current_setting('ppos.split_index')::int > 0;
DELETE FROM ppos_proj_stock_reservations WHERE current_setting('ppos.split_index')::int > 0;
DELETE FROM ppos_proj_workorders WHERE current_setting('ppos.split_index')::int > 0;
INSERT INTO ppos_projections (name, tx, position, budget_ms)
  SELECT p.name || '@' || n, p.tx, p.position, p.budget_ms
  FROM ppos_projections p, generate_series(2, current_setting('ppos.split_databases')::int) n
  WHERE current_setting('ppos.split_index')::int = 0 AND p.name NOT LIKE '%@%'
  ON CONFLICT (name) DO NOTHING;
COMMIT;
