// The append statement runs on a generic plan, made once per connection instead of planned
// for every batch: planning that statement (a dozen CTEs over six tables) cost PostgreSQL
// about 1.5 ms per commit, a quarter of its CPU per command (pg_stat_statements, bench at 1000
// actors). A generic plan is as good as a per-batch one for the same statistics (the batch's
// values tell the planner nothing: its rows come from json_to_recordset), and PostgreSQL itself
// drops it whenever a table it reads is analyzed or vacuumed. What it does not drop it for is
// growth in between: a plan made on a new journal, before autovacuum has looked (a minute or
// more), scanned the dedupe table whole once it held 100k rows (a 32-row append took 12 ms
// instead of 3). So the plan is also remade whenever a table it reads has doubled or halved in
// size since: the cost of the plan that runs stays within a factor of two of the planner's
// choice for the tables as they are, for a few replans per doubling of the journal.
import type pg from 'pg';

/** The tables the append statement reads or writes (their indexes grow with them). */
const APPEND_TABLES = ['ppos_events', 'ppos_dedupe', 'ppos_event_facts', 'ppos_timers', 'ppos_shard_leases', 'ppos_cluster'];

/** How often sizes are looked at, at most (only while appends run). */
const CHECK_EVERY_MS = 2_000;

export class PlanFreshness {
  /** Bumped whenever a table's size class (its size in pages, to a power of two) changed. */
  private generation = 0;
  private sizeClasses = '';
  private lastCheck = 0;
  private checking = false;
  private readonly planned = new WeakMap<pg.PoolClient, number>();

  /** The look at the sizes under way or last made (settles once it has come back; tests wait for it). */
  lastLook: Promise<void> = Promise.resolve();

  /** `sizes`: where to read table sizes from (any pool of the same database). */
  constructor(
    private readonly sizes: pg.Pool,
    private readonly checkEveryMs = CHECK_EVERY_MS,
  ) {}

  /**
   * Before an append on `client`: drops its cached plans if they were made in an earlier
   * generation (the next execution plans again), and now and then looks at the sizes in the
   * background. Sizes are read lazily, so an idle journal costs nothing.
   */
  async prepare(client: pg.PoolClient): Promise<void> {
    this.maybeCheck();
    const planned = this.planned.get(client);
    if (planned === this.generation) return;
    // A connection new to us has no plan yet: nothing to drop.
    if (planned !== undefined) await client.query('DISCARD PLANS');
    this.planned.set(client, this.generation);
  }

  private maybeCheck(): void {
    const now = Date.now();
    if (this.checking || now - this.lastCheck < this.checkEveryMs) return;
    this.checking = true;
    this.lastCheck = now;
    this.lastLook = this.sizes
      .query(
        `SELECT string_agg(c.relname || ':' || floor(log(2, greatest(pg_relation_size(c.oid) / 8192, 1)::numeric))::text, ',' ORDER BY c.relname) AS classes
         FROM pg_class c WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r' AND pg_table_is_visible(c.oid)`,
        [APPEND_TABLES],
      )
      .then(
        (result) => {
          const classes = (result.rows[0]?.classes as string | null) ?? '';
          if (classes !== this.sizeClasses) {
            // The first look also counts: plans made before it were made blind.
            this.sizeClasses = classes;
            this.generation += 1;
          }
        },
        // The database is away: the append says so; sizes are looked at again later.
        () => undefined,
      )
      .finally(() => {
        this.checking = false;
      });
  }
}
