// Queries of the projections (CONTRACT.md section 8): a request on ppos.query.<projection> with
// {where, after?, timeoutMs?, limit?, cursor?}. With `after` (a commit token from a command's
// reply) the query first waits until the projection includes that commit, up to the timeout,
// else answers STALE with how far behind it is: read-your-writes on the eventual side.
import type pg from 'pg';
import { z } from 'zod';
import { describeIssues } from '../actors/schema.js';
import { FEED_START, isAfter, lagBehind, type FeedPosition } from '../persistence/journal-feed.js';
import { parseCommitToken } from '../persistence/pg-journal.js';
import type { FeedSources, ProjectionStore } from '../persistence/projection-store.js';
import type { ProjectionHandler } from '../persistence/projections/projection.js';
import { askEach } from '../persistence/time-limit.js';
import { Limiter } from './limiter.js';

export const DEFAULT_QUERY_LIMIT = 100;
export const MAX_QUERY_LIMIT = 1_000;
export const DEFAULT_WAIT_MS = 5_000;
export const MAX_WAIT_MS = 60_000;
/** How long a query's lag waits for each database: one that does not answer is left out of it. */
const LAG_ANSWER_MS = 1_000;

const requestSchema = z
  .object({
    where: z.unknown().optional(),
    after: z.string().max(200).optional(),
    timeoutMs: z.number().int().min(0).max(MAX_WAIT_MS).optional(),
    limit: z.number().int().min(1).max(MAX_QUERY_LIMIT).optional(),
    cursor: z.string().max(1_000).optional(),
  })
  .strict();

export type QueryReply =
  | { readonly ok: true; readonly rows: readonly Record<string, unknown>[]; readonly next?: string; readonly lagMs: number }
  | { readonly ok: false; readonly error: { readonly code: 'BAD_REQUEST' | 'STALE' | 'UNAVAILABLE'; readonly message: string; readonly lagMs?: number } };

const bad = (message: string): QueryReply => ({ ok: false, error: { code: 'BAD_REQUEST', message } });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class QueryService {
  /** Queries read the node's pool: a few at a time, so a flood of them cannot starve appends. */
  private readonly reads = new Limiter(4, 1_000);

  private readonly sources: FeedSources;

  /** `sources`: the journal's databases in layout order (default: `pool`'s alone). */
  constructor(
    private readonly pool: pg.Pool,
    private readonly store: ProjectionStore,
    private readonly projections: ReadonlyMap<string, ProjectionHandler>,
    sources?: FeedSources,
  ) {
    this.sources = sources ?? [pool];
  }

  async answer(name: string, body: Uint8Array): Promise<QueryReply> {
    const handler = this.projections.get(name);
    if (!handler) return bad(`no projection ${JSON.stringify(name)}; known: ${[...this.projections.keys()].join(', ')}`);
    let raw: unknown;
    try {
      raw = body.length === 0 ? {} : JSON.parse(Buffer.from(body).toString('utf8'));
    } catch (error) {
      return bad(`request body is not JSON: ${(error as Error).message}`);
    }
    const parsed = requestSchema.safeParse(raw);
    if (!parsed.success) return bad(`bad query: ${describeIssues(parsed.error)}`);
    const request = parsed.data;
    const where = handler.parseWhere(request.where);
    if (typeof where === 'string') return bad(where);
    const token = request.after === undefined ? null : parseCommitToken(request.after);
    if (request.after !== undefined && !token) return bad('after: not a commit token (use the `token` of a command reply)');
    if (token && token.database >= this.sources.length) return bad(`after: the token names journal database ${token.database + 1}; this journal has ${this.sources.length}`);
    try {
      // Waiting holds no read slot: it only looks at the checkpoint now and then.
      if (token) {
        const reached = await this.waitFor(name, token.database, { tx: token.tx.toString(), position: token.position }, request.timeoutMs ?? DEFAULT_WAIT_MS);
        if (!reached.ok) {
          return { ok: false, error: { code: 'STALE', message: `projection ${name} has not reached that commit within ${request.timeoutMs ?? DEFAULT_WAIT_MS} ms`, lagMs: reached.lagMs } };
        }
      }
    } catch (error) {
      return { ok: false, error: { code: 'UNAVAILABLE', message: `query failed: ${(error as Error).message}` } };
    }
    const run = this.reads.tryRun(async (): Promise<QueryReply> => {
      const page = await handler.query(this.pool, where, request.limit ?? DEFAULT_QUERY_LIMIT, request.cursor);
      const lagMs = await this.lagOf(name);
      return { ok: true, rows: page.rows, ...(page.next !== undefined ? { next: page.next } : {}), lagMs };
    });
    if (!run) return { ok: false, error: { code: 'UNAVAILABLE', message: 'too many queries at once; retry' } };
    try {
      return await run;
    } catch (error) {
      return { ok: false, error: { code: 'UNAVAILABLE', message: `query failed: ${(error as Error).message}` } };
    }
  }

  /**
   * How stale the projection is: the oldest unapplied event's age, over the databases that
   * answer (the read model is read from the first; a database that is away adds nothing new
   * for it to miss until it is back).
   */
  private async lagOf(name: string): Promise<number> {
    const lagIn = async (source: FeedSources[number], index: number): Promise<number> =>
      (await lagBehind(source, (await this.store.row(name, this.pool, index))?.checkpoint ?? FEED_START, 1)).lagMs;
    const lags = await askEach(this.sources, lagIn, this.sources.length > 1 ? LAG_ANSWER_MS : undefined);
    // The read model itself is in the first database: without it there is no answer.
    if (lags.failed.includes(0)) throw lags.firstError;
    return Math.max(0, ...lags.answers);
  }

  /** Waits until the projection's checkpoint in `source` is at or past `commit`. */
  private async waitFor(name: string, source: number, commit: FeedPosition, timeoutMs: number): Promise<{ ok: true } | { ok: false; lagMs: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const row = await this.store.row(name, this.pool, source);
      if (row && !isAfter(commit, row.checkpoint)) return { ok: true };
      if (Date.now() >= deadline) return { ok: false, lagMs: (await lagBehind(this.sources[source]!, row?.checkpoint ?? FEED_START, 1)).lagMs };
      await sleep(Math.min(25, Math.max(1, deadline - Date.now())));
    }
  }
}
