// What a projection is to the runner: a name, the tables it writes (so a rebuild can build
// shadows of them), a function that applies committed events in read order inside the
// runner's transaction (the checkpoint moves in the same one), and its query. Handlers are
// plain functions over events and a transaction; they never see NATS, leases or checkpoints.
import type { z } from 'zod';
import type { FedEvent, Queryable } from '../journal-feed.js';

/** The live table names, or a rebuild's shadows of them, by the name the handler knows them by. */
export type Tables = Readonly<Record<string, string>>;

export interface QueryPage {
  readonly rows: readonly Record<string, unknown>[];
  /** The cursor of the next page, when there is one. */
  readonly next?: string;
}

export interface ProjectionHandler {
  readonly name: string;
  /** Its tables by role, as named in the live database. */
  readonly tables: Tables;
  apply(events: readonly FedEvent[], db: Queryable, tables: Tables): Promise<void>;
  /** `where` was checked by `parseWhere`. */
  query(db: Queryable, where: Record<string, unknown>, limit: number, cursor: string | undefined): Promise<QueryPage>;
  /** The query's filter, or why it is not one (BAD_REQUEST). */
  parseWhere(where: unknown): Record<string, unknown> | string;
  /** Every row of the read model as comparable text, by key: what verify and rebuild compare. */
  rowsByKey(db: Queryable, tables: Tables): Promise<Map<string, string>>;
}

export const encodeCursor = (key: string): string => Buffer.from(key, 'utf8').toString('base64url');
export const decodeCursor = (cursor: string): string => Buffer.from(cursor, 'base64url').toString('utf8');

/** A handler's `parseWhere` from its zod schema: the parsed filter, or what is wrong with it. */
export const whereParser =
  (schema: z.ZodType<Record<string, unknown>>) =>
  (where: unknown): Record<string, unknown> | string => {
    const parsed = schema.safeParse(where ?? {});
    return parsed.success ? parsed.data : `where: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'where'}: ${i.message}`).join('; ')}`;
  };
