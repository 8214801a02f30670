// The journal over several PostgreSQL databases (database-layout.ts): each call about one actor
// goes to the database of the actor's shard, whole, so an append is still one statement in one
// database with its fencing read; calls about every actor ask every database and merge. Commit
// tokens name the database they come from. With one database it is a thin pass-through.
import type pg from 'pg';
import type { DomainEvent, TimerSpec } from '../actors/kind.js';
import { shardOf } from '../runtime/sharding.js';
import { databaseOfShard, groupByDatabase, type DatabaseLayout } from './database-layout.js';
import type {
  ActorRef,
  AppendRequest,
  AppendResult,
  AppendUnit,
  DedupeRecord,
  DueTimer,
  Journal,
  JournaledEvent,
  StoredSnapshot,
  UnitResult,
} from './journal.js';
import { tokenOfDatabase, type PgJournal } from './pg-journal.js';
import { askEach, someAnswered } from './time-limit.js';

/** How long a periodic scan waits for one database before going on with the others' answers. */
const SCAN_ANSWER_MS = 1_000;

export class ShardedJournal implements Journal {
  readonly layout: DatabaseLayout;

  /** `parts`: one journal per database, in layout order. */
  constructor(
    readonly parts: readonly PgJournal[],
    shards: number,
  ) {
    this.layout = { databases: parts.length, shards };
  }

  /** The first database: membership, the projections' checkpoints and read models live in it. */
  get first(): PgJournal {
    return this.parts[0]!;
  }

  /** Every database's pool, in layout order: what the followers of the journal read. */
  get sources(): pg.Pool[] {
    return this.parts.map((part) => part.pool);
  }

  /** The index of the database that holds `ref` (with one, no hashing on every call). */
  databaseOf(ref: ActorRef): number {
    return this.parts.length === 1 ? 0 : databaseOfShard(shardOf(ref, this.layout.shards), this.layout);
  }

  private partOf(ref: ActorRef): { part: PgJournal; index: number } {
    const index = this.databaseOf(ref);
    return { part: this.parts[index]!, index };
  }

  /** Shards grouped by their database. */
  private byDatabase(shards: readonly number[]): Map<number, number[]> {
    return groupByDatabase(shards, this.layout, (shard) => shard);
  }

  async append(request: AppendRequest): Promise<AppendResult> {
    const { part, index } = this.partOf(request.ref);
    const result = await part.append(request);
    if (result.status === 'duplicate') return { status: 'duplicate', record: recordOfDatabase(result.record, index) };
    return committedOfDatabase(result, index);
  }

  async appendUnit(unit: AppendUnit): Promise<UnitResult> {
    const { part, index } = this.partOf(unit.ref);
    const result = await part.appendUnit(unit);
    if (result.status === 'duplicate') return { status: 'duplicate', records: result.records.map((record) => recordOfDatabase(record, index)) };
    return committedOfDatabase(result, index);
  }

  readEvents(ref: ActorRef, afterSeq: number, toSeq?: number): Promise<JournaledEvent[]> {
    return this.partOf(ref).part.readEvents(ref, afterSeq, toSeq);
  }

  readEventsForReplay(ref: ActorRef, afterSeq: number, toSeq?: number): Promise<{ readonly seq: number; readonly event: DomainEvent }[]> {
    return this.partOf(ref).part.readEventsForReplay(ref, afterSeq, toSeq);
  }

  /** From every database, by the time each was recorded (append order within one database). */
  async eventsOfTrace(traceId: string, limit: number): Promise<(JournaledEvent & ActorRef)[]> {
    const parts = await Promise.all(this.parts.map((part) => part.eventsOfTrace(traceId, limit)));
    if (parts.length === 1) return parts[0]!;
    return mergeBy(parts, (event) => event.recordedAt.getTime()).slice(0, limit);
  }

  headSeq(ref: ActorRef): Promise<number> {
    return this.partOf(ref).part.headSeq(ref);
  }

  snapshots(ref: ActorRef, machineVersion: number, atOrBeforeSeq?: number, limit?: number): Promise<StoredSnapshot[]> {
    return this.partOf(ref).part.snapshots(ref, machineVersion, atOrBeforeSeq, limit);
  }

  saveSnapshot(ref: ActorRef, snapshot: StoredSnapshot): Promise<number> {
    return this.partOf(ref).part.saveSnapshot(ref, snapshot);
  }

  async findDedupe(ref: ActorRef, messageId: string): Promise<DedupeRecord | null> {
    const { part, index } = this.partOf(ref);
    const record = await part.findDedupe(ref, messageId);
    return record && recordOfDatabase(record, index);
  }

  presentFacts(ref: ActorRef, keys: readonly string[]): Promise<string[]> {
    return this.partOf(ref).part.presentFacts(ref, keys);
  }

  factsOf(ref: ActorRef): Promise<Map<string, number>> {
    return this.partOf(ref).part.factsOf(ref);
  }

  async listActors(kind?: string): Promise<ActorRef[]> {
    const parts = await Promise.all(this.parts.map((part) => part.listActors(kind)));
    // Each database lists its actors by (kind, id); keep that order over all of them.
    return parts.flat().sort((a, b) => (a.kind === b.kind ? compare(a.id, b.id) : compare(a.kind, b.kind)));
  }

  noteDuplicate(ref: ActorRef, messageId: string): Promise<void> {
    return this.partOf(ref).part.noteDuplicate(ref, messageId);
  }

  async duplicatesAnswered(): Promise<number> {
    const counts = await Promise.all(this.parts.map((part) => part.duplicatesAnswered()));
    return counts.reduce((sum, n) => sum + n, 0);
  }

  async openSagas(): Promise<ActorRef[]> {
    return (await this.eachAnswering(this.parts, (part) => part.openSagas())).flat();
  }

  /** Each database prunes its own records and moves its own horizon (in the same transaction). */
  async pruneDedupe(olderThanHours: number): Promise<number> {
    const counts = await Promise.all(this.parts.map((part) => part.pruneDedupe(olderThanHours)));
    return counts.reduce((sum, n) => sum + n, 0);
  }

  /** Due timers of the databases that answered: one that does not must not hold up the others' timers. */
  async dueTimers(shards: readonly number[], nowMs: number, limit: number): Promise<DueTimer[]> {
    const groups = [...this.byDatabase(shards)];
    const parts = await this.eachAnswering(groups, ([index, group]) => this.parts[index]!.dueTimers(group, nowMs, limit));
    if (parts.length === 1) return parts[0]!;
    return mergeBy(parts, (timer) => timer.dueAt).slice(0, limit);
  }

  async overdueTimers(shards: readonly number[], nowMs: number, countUpTo: number): Promise<number> {
    const groups = [...this.byDatabase(shards)];
    const counts = await this.eachAnswering(groups, ([index, group]) => this.parts[index]!.overdueTimers(group, nowMs, countUpTo));
    return Math.min(countUpTo, counts.reduce((sum, n) => sum + n, 0));
  }

  dropFiredTimer(timer: DueTimer): Promise<void> {
    return this.partOf(timer.ref).part.dropFiredTimer(timer);
  }

  timersOf(ref: ActorRef, limit: number): Promise<TimerSpec[]> {
    return this.partOf(ref).part.timersOf(ref, limit);
  }

  async close(): Promise<void> {
    await Promise.all(this.parts.map((part) => part.close()));
  }

  /**
   * `work` over each item, the answers of those that answered within a second; throws only when
   * none did. For the periodic scans (timers, saga resumption, the overdue count) that run again
   * soon: a database that does not answer must not hold up the others'.
   */
  private async eachAnswering<T, R>(items: readonly T[], work: (item: T) => Promise<R>): Promise<R[]> {
    // One database alone holds up no other: it gets all the time it takes.
    return someAnswered(await askEach(items, work, this.parts.length > 1 ? SCAN_ANSWER_MS : undefined));
  }
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Lists each already ordered by `key`, merged into one in that order. */
function mergeBy<T>(lists: readonly (readonly T[])[], key: (item: T) => number): T[] {
  return lists.flat().sort((a, b) => key(a) - key(b));
}

/** A result whose commit tokens (if it committed) name `database`; any other result as it is. */
function committedOfDatabase<R extends { readonly status: string; readonly tokens?: ReadonlyMap<string, string> }>(result: R, database: number): R {
  if (database === 0 || result.status !== 'committed' || !result.tokens) return result;
  return { ...result, tokens: new Map([...result.tokens].map(([messageId, token]) => [messageId, tokenOfDatabase(token, database)])) };
}

function recordOfDatabase(record: DedupeRecord, database: number): DedupeRecord {
  return record.token === undefined || database === 0 ? record : { ...record, token: tokenOfDatabase(record.token, database) };
}
