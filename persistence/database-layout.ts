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

/** `items` grouped by the database of their shard, in their order within each group. */
export function groupByDatabase<T>(items: readonly T[], layout: DatabaseLayout, shardOf: (item: T) => number): Map<number, T[]> {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const index = databaseOfShard(shardOf(item), layout);
    const group = groups.get(index);
    if (group) group.push(item);
    else groups.set(index, [item]);
  }
  return groups;
}

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

/** A database's place in a journal, as recorded in it. */
interface PlaceRecord extends DatabaseLayout {
  readonly index: number;
  /** In the first database: every database's id, in order (once a node has started on the list). */
  readonly members?: readonly string[];
  /** In the others: the first database's id, the journal they belong to. */
  readonly journal?: string;
}

/** What one database says about itself: its own id, and the layout it was first used under. */
interface Recorded {
  /** Made the first time ppos opens the database: tells two databases (or one given twice) apart. */
  readonly databaseId: string | null;
  /** Absent: never used by a node. A journal from before layouts counts as one database. */
  readonly layout: PlaceRecord | null;
}

async function readRecorded(db: pg.Pool | pg.PoolClient): Promise<Recorded> {
  const rows = await db.query(`SELECT key, value FROM ppos_cluster WHERE key IN ('database_id', 'layout', 'shards')`);
  const stored = new Map(rows.rows.map((row) => [row.key as string, row.value as string]));
  const layoutText = stored.get('layout');
  const shardsText = stored.get('shards');
  return {
    databaseId: stored.get('database_id') ?? null,
    layout: layoutText ? (JSON.parse(layoutText) as PlaceRecord) : shardsText ? { index: 0, databases: 1, shards: Number(shardsText) } : null,
  };
}

const describe = (layout: DatabaseLayout & { readonly index: number }): string =>
  layout.databases === 1
    ? `a journal of one database with ${layout.shards} shards`
    : `database ${layout.index + 1} of ${layout.databases} of a journal with ${layout.shards} shards`;

const ORDER_ADVICE = 'give every node the database URLs the journal was started with, in that order (moving shards between databases is offline: docs/several-databases.md)';

/**
 * Checks that `pools` are the journal's databases in its order and with its shard count, and
 * returns the recorded shard count (null: nothing recorded yet). Each database knows its place
 * and the others know the first database's id; the first lists every database's id. So a list
 * in another order, with one left out or given twice, with another database in any place (a
 * fresh one, or one of another journal), or with another --shards, is refused.
 */
export async function checkLayout(pools: readonly pg.Pool[], shards?: number): Promise<number | null> {
  return layoutOf(await Promise.all(pools.map((pool) => readRecorded(pool))), shards);
}

function layoutOf(recorded: readonly Recorded[], shards: number | undefined): number | null {
  const ids = recorded.map((r) => r.databaseId);
  const twice = ids.findIndex((id, i) => id !== null && ids.indexOf(id) !== i);
  if (twice >= 0) throw new LayoutError(`database ${twice + 1} is database ${ids.indexOf(ids[twice]!) + 1} given again: give each database of the journal once`);
  const first = recorded[0]!;
  let recordedShards: number | null = null;
  for (const [index, { layout }] of recorded.entries()) {
    if (!layout) continue;
    const wanted = { index, databases: recorded.length, shards: shards ?? layout.shards };
    if (layout.index !== wanted.index || layout.databases !== wanted.databases || layout.shards !== wanted.shards) {
      const advice =
        layout.shards !== wanted.shards && layout.databases === wanted.databases && layout.index === wanted.index ? `start every node with --shards ${layout.shards}` : ORDER_ADVICE;
      throw new LayoutError(`database ${index + 1} given is ${describe(layout)}, not ${describe(wanted)}: ${advice}`);
    }
    // Another database's place in this journal names the first database: it must be this one.
    if (index > 0 && layout.journal !== undefined && layout.journal !== first.databaseId) {
      throw new LayoutError(`database ${index + 1} given belongs to a journal whose first database is not the first given: ${ORDER_ADVICE}`);
    }
    recordedShards = layout.shards;
  }
  const members = first.layout?.members;
  if (members) {
    const stranger = ids.findIndex((id, index) => id !== members[index]);
    if (stranger >= 0) throw new LayoutError(`database ${stranger + 1} given is not database ${stranger + 1} of this journal (another database, or one of another journal): ${ORDER_ADVICE}`);
  }
  if (recorded.length > 1 && recorded.some((r) => r.layout !== null)) {
    // Part of a journal already: a database without a place in it (a fresh one) does not belong,
    // unless the journal names it: the first database's member list, or (the first itself) the
    // others' record of it. A start that stopped between the writes left it so; it is finished now.
    const named = (index: number): boolean =>
      index === 0 ? recorded.slice(1).some((r) => r.layout?.journal === ids[0] && ids[0] !== null) : members !== undefined && ids[index] === members[index];
    const unplaced = recorded.findIndex((r, index) => r.layout === null && !named(index));
    if (unplaced >= 0) throw new LayoutError(`database ${unplaced + 1} given has no record of this journal: ${ORDER_ADVICE}`);
  }
  return recordedShards;
}

/** An arbitrary constant naming the layout's advisory lock in each database. */
const LAYOUT_LOCK_KEY = 0x7070_6f74;

/**
 * Records the layout in every database the first time, and checks it every time after
 * (checkLayout); refuses a list that does not match before writing any layout. Nodes starting
 * at once with different lists take the databases' locks one at a time: the first to hold all
 * of them records its list, the other then finds it and is refused.
 */
export async function recordLayout(pools: readonly pg.Pool[], shards: number): Promise<void> {
  // Each database's id first (made once, whoever comes first): ids are what the layout is
  // checked by, and a database given twice is refused by them before its lock is asked twice.
  for (const pool of pools) {
    await pool.query(`INSERT INTO ppos_cluster (key, value) VALUES ('database_id', $1) ON CONFLICT (key) DO NOTHING`, [ulid()]);
  }
  layoutOf(await Promise.all(pools.map((pool) => readRecorded(pool))), shards);
  const clients = await lockAll(pools);
  try {
    const recorded = await Promise.all(clients.map((client) => readRecorded(client)));
    layoutOf(recorded, shards);
    const ids = recorded.map((r) => r.databaseId!);
    for (const [index, client] of clients.entries()) {
      const place = recorded[index]!.layout;
      const complete = place?.databases === pools.length && (index === 0 ? place.members !== undefined || pools.length === 1 : place.journal !== undefined);
      if (complete) continue;
      const layout: PlaceRecord = { index, databases: pools.length, shards, ...(index === 0 ? (pools.length > 1 ? { members: ids } : {}) : { journal: ids[0]! }) };
      await client.query(
        `INSERT INTO ppos_cluster (key, value) VALUES ('layout', $1), ('shards', $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
        [JSON.stringify(layout), String(shards)],
      );
    }
  } finally {
    await unlockAll(clients);
  }
}

/**
 * A connection to each database holding its layout lock. Lists may name the same databases in
 * different orders (and locks of different servers cannot see each other's deadlocks): a lock
 * not free at once lets go of all, and tries again a moment later.
 */
async function lockAll(pools: readonly pg.Pool[]): Promise<pg.PoolClient[]> {
  for (let attempt = 0; ; attempt += 1) {
    const clients: pg.PoolClient[] = [];
    let all = true;
    try {
      for (const pool of pools) {
        const client = await pool.connect();
        clients.push(client);
        const taken = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [LAYOUT_LOCK_KEY]);
        if (!taken.rows[0]!.ok) {
          all = false;
          break;
        }
      }
    } catch (error) {
      await unlockAll(clients);
      throw error;
    }
    if (all) return clients;
    await unlockAll(clients);
    if (attempt >= 200) throw new LayoutError('another node kept the journal layout locked for half a minute; start again');
    await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 250));
  }
}

/** Lets go of the locks; a connection that could not is closed (the server frees its locks), never pooled still holding one. */
async function unlockAll(clients: readonly pg.PoolClient[]): Promise<void> {
  await Promise.all(
    clients.map(async (client) => {
      const unlocked = await client.query('SELECT pg_advisory_unlock_all()').then(
        () => true,
        () => false,
      );
      client.release(!unlocked);
    }),
  );
}

/** A database list that is not the journal's (another order, another database, another shard count): the node must not start. */
export class LayoutError extends Error {}
