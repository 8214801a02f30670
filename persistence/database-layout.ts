// Where each shard's journal lives when the journal spans several PostgreSQL databases: a fixed
// rule, contiguous ranges of shards per database (Akka's R2DBC "data partitions" do the same with
// slices). Everything an append reads and writes is keyed by one actor, so by one shard: a
// shard's events, dedupe records, facts, timers, snapshots and its lease row all live in its
// database, and an append stays one statement in one database. The rule is recorded in every
// database, and a node started with another list, order or shard count is refused.
import type pg from 'pg';
import { ulid } from 'ulid';

export interface DatabaseLayout {
  /** How many databases the journal spans. */
  readonly databases: number;
  /** Shards actor ids hash into, over all of them. */
  readonly shards: number;
}

/** The database that holds `shard`: floor(shard × databases / shards), contiguous and as even as the counts allow. */
export const databaseOfShard = (shard: number, layout: DatabaseLayout): number => Math.floor((shard * layout.databases) / layout.shards);

/** The shards database `index` holds, in order. */
export function shardsOfDatabase(index: number, layout: DatabaseLayout): number[] {
  const shards: number[] = [];
  for (let shard = 0; shard < layout.shards; shard += 1) if (databaseOfShard(shard, layout) === index) shards.push(shard);
  return shards;
}

/**
 * The URLs of a `--db` / PPOS_DATABASE_URL value: one, or several separated by commas (a comma
 * inside a password must be percent-encoded, as in any URL). Null with what is wrong.
 */
export function parseDatabaseUrls(value: string): { urls: string[] } | { error: string } {
  const urls = value.split(',').map((url) => url.trim());
  if (urls.some((url) => !/^postgres(ql)?:\/\//.test(url))) return { error: 'each database URL must start with postgres:// or postgresql://' };
  return { urls };
}

/** Refuses a layout no journal can use: a database must hold at least one shard. */
export function layoutProblem(layout: DatabaseLayout): string | null {
  if (layout.databases > layout.shards) return `${layout.databases} databases need at least as many shards (--shards ${layout.shards})`;
  return null;
}

/** What one database says about itself: its own id, and the layout it was first used under. */
interface Recorded {
  /** Made the first time ppos opens the database: tells two databases (or one given twice) apart. */
  readonly databaseId: string | null;
  /** Absent: never used by a node. A journal from before layouts counts as one database. */
  readonly layout: (DatabaseLayout & { readonly index: number; readonly members?: readonly string[] }) | null;
}

async function readRecorded(db: pg.Pool | pg.PoolClient, lock = false): Promise<Recorded> {
  const rows = await db.query(`SELECT key, value FROM ppos_cluster WHERE key IN ('database_id', 'layout', 'shards')${lock ? ' FOR UPDATE' : ''}`);
  const stored = new Map(rows.rows.map((row) => [row.key as string, row.value as string]));
  const layoutText = stored.get('layout');
  const shardsText = stored.get('shards');
  return {
    databaseId: stored.get('database_id') ?? null,
    layout: layoutText ? JSON.parse(layoutText) : shardsText ? { index: 0, databases: 1, shards: Number(shardsText) } : null,
  };
}

const describe = (layout: DatabaseLayout & { readonly index: number }): string =>
  layout.databases === 1
    ? `a journal of one database with ${layout.shards} shards`
    : `database ${layout.index + 1} of ${layout.databases} of a journal with ${layout.shards} shards`;

/**
 * Checks that `pools` are the journal's databases in its order and with its shard count, and
 * returns the recorded shard count (null: nothing recorded yet). Each database knows its place;
 * the first also lists every database's id, so another database in a place (a fresh one, or one
 * of another journal) and one database given twice are refused too.
 */
export async function checkLayout(pools: readonly pg.Pool[], shards?: number): Promise<number | null> {
  const recorded = await Promise.all(pools.map((pool) => readRecorded(pool)));
  return layoutOf(recorded, shards);
}

function layoutOf(recorded: readonly Recorded[], shards: number | undefined): number | null {
  const ids = recorded.map((r) => r.databaseId);
  const twice = ids.findIndex((id, i) => id !== null && ids.indexOf(id) !== i);
  if (twice >= 0) throw new LayoutError(`database ${twice + 1} is database ${ids.indexOf(ids[twice]!) + 1} given again: give each database of the journal once`);
  const first = recorded[0]!.layout;
  let recordedShards: number | null = null;
  for (const [index, { layout }] of recorded.entries()) {
    if (!layout) continue;
    const wanted = { index, databases: recorded.length, shards: shards ?? layout.shards };
    if (layout.index !== wanted.index || layout.databases !== wanted.databases || layout.shards !== wanted.shards) {
      const advice =
        layout.shards !== wanted.shards && layout.databases === wanted.databases && layout.index === wanted.index
          ? `start every node with --shards ${layout.shards}`
          : 'give every node the database URLs of the journal in the order it was started with (moving shards between databases is offline: docs/several-databases.md)';
      throw new LayoutError(`database ${index + 1} given is ${describe(layout)}, not ${describe(wanted)}: ${advice}`);
    }
    recordedShards = layout.shards;
  }
  const members = first?.members;
  if (members) {
    for (const [index, id] of ids.entries()) {
      if (id !== members[index]) {
        throw new LayoutError(
          `database ${index + 1} given is not database ${index + 1} of this journal (another database, or one of another journal): give every node the database URLs the journal was started with, in that order`,
        );
      }
    }
  } else if (first && recorded.length > 1) {
    // Laid out by scripts/split-journal.sql, ids not recorded yet: every database must carry its place.
    const unplaced = recorded.findIndex((r) => r.layout === null);
    if (unplaced >= 0) {
      throw new LayoutError(`database ${unplaced + 1} given has no record of this journal: give every node the database URLs the journal was started with, in that order`);
    }
  }
  return recordedShards;
}

/**
 * Records the layout in every database the first time, and checks it every time after
 * (checkLayout). Refuses, before writing anything, a list that does not match.
 */
export async function recordLayout(pools: readonly pg.Pool[], shards: number): Promise<void> {
  // Each database's id first, each in its own statement: ids are what the layout is checked by.
  for (const pool of pools) {
    await pool.query(`INSERT INTO ppos_cluster (key, value) VALUES ('database_id', $1) ON CONFLICT (key) DO NOTHING`, [ulid()]);
  }
  const recorded = await Promise.all(pools.map((pool) => readRecorded(pool)));
  layoutOf(recorded, shards);
  const members = recorded.map((r) => r.databaseId!);
  for (const [index, pool] of pools.entries()) {
    if (recorded[index]!.layout?.databases === pools.length && (index > 0 || recorded[0]!.layout?.members)) continue;
    const layout = { index, databases: pools.length, shards, ...(index === 0 ? { members } : {}) };
    await pool.query(
      `INSERT INTO ppos_cluster (key, value) VALUES ('layout', $1), ('shards', $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
      [JSON.stringify(layout), String(shards)],
    );
  }
}

/** A database list that is not the journal's (another order, another database, another shard count): the node must not start. */
export class LayoutError extends Error {}
