// The eventual side under chaos: how far behind the projections and the export are while the
// faults land (sampled around the proxies, straight from PostgreSQL), and after the run the
// checks that they caught up, that each projection is the fold of the journal, and that the
// JetStream stream holds every committed event exactly once per Nats-Msg-Id.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type pg from 'pg';
import { lagBehind } from '../persistence/journal-feed.js';
import { ProjectionStore, type FeedSources } from '../persistence/projection-store.js';
import { JOURNAL_STREAM } from '../runtime/journal-export.js';
import { projectionReports } from '../runtime/projection-status.js';
import { rowsOfAll, type Invariant } from './checks.js';
import type { FaultRecord } from './faults.js';

/** A fault's effect on lag must be gone this long after it was lifted. */
export const LAG_RECOVERY_WINDOW_MS = 30_000;

interface LagSample {
  readonly at: number;
  /** Followers over their budget at that moment. */
  readonly over: readonly string[];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Samples every follower's lag against its budget until stopped. */
export class LagSampler {
  readonly samples: LagSample[] = [];
  private timer: NodeJS.Timeout | undefined;

  /** `pool`: the first database; `sources`: every database of the journal. */
  constructor(
    private readonly pool: pg.Pool,
    private readonly sources: FeedSources = [pool],
  ) {}

  start(everyMs = 500): void {
    const sample = (): void => {
      const at = performance.now();
      projectionReports(this.pool, undefined, this.sources).then(
        (reports) => {
          if (reports.length > 0) this.samples.push({ at, over: reports.filter((r) => r.lagMs > r.budgetMs).map((r) => r.name) });
        },
        () => undefined, // the database is what a fault took away: nothing to sample
      );
    };
    this.timer = setInterval(sample, everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** After each fault, some sample within the window shows every follower back within budget. */
  recoveredAfterEach(faults: readonly FaultRecord[]): Invariant {
    const late: string[] = [];
    faults.forEach((fault, index) => {
      if (fault.liftedAt === null) return;
      const window = this.samples.filter((s) => s.at >= fault.liftedAt! && s.at <= fault.liftedAt! + LAG_RECOVERY_WINDOW_MS);
      if (window.length === 0 || window.every((s) => s.over.length > 0)) {
        late.push(`fault ${index + 1} (${fault.kind} on ${fault.node}): ${window.length === 0 ? 'no sample' : `still over budget: ${window[window.length - 1]!.over.join(', ')}`}`);
      }
    });
    const overall = this.samples.filter((s) => s.over.length > 0).length;
    return {
      name: 'lag_back_under_budget_after_each_fault',
      ok: late.length === 0 && this.samples.length > 0,
      detail:
        late.length === 0
          ? `${faults.length} faults, lag back within budget within ${LAG_RECOVERY_WINDOW_MS / 1000} s of each (${overall} of ${this.samples.length} samples over budget)`
          : late.slice(0, 5).join('; '),
    };
  }
}

/** Waits until every follower has applied everything committed, in every database (`sources`, in layout order; the first holds the checkpoints). */
export async function waitForFollowers(sources: readonly pg.Pool[], deadlineMs: number): Promise<Invariant> {
  const store = new ProjectionStore(sources[0]!);
  const deadline = Date.now() + deadlineMs;
  let behind: string[] = [];
  while (Date.now() < deadline) {
    behind = [];
    for (const row of await store.rows()) {
      const { lagEvents } = await lagBehind(sources[row.source]!, row.checkpoint);
      if (lagEvents > 0) behind.push(`${row.name} ${lagEvents} events behind`);
    }
    if (behind.length === 0) {
      // Caught up, each has applied exactly as many events as its database holds (nothing here
      // rebuilds): one applied twice, or skipped, shows in the count even where the read model
      // or the stream's duplicate window would hide it.
      const journaled = await Promise.all(sources.map(async (pool) => Number((await pool.query('SELECT count(*) AS n FROM ppos_events')).rows[0].n)));
      const miscounted = (await store.rows())
        .filter((row) => row.appliedEvents !== journaled[row.source])
        .map((row) => `${row.name} applied ${row.appliedEvents} events, its database holds ${journaled[row.source]}`);
      if (miscounted.length > 0) return { name: 'followers_caught_up', ok: false, detail: miscounted.join(', ') };
      const total = journaled.reduce((sum, n) => sum + n, 0);
      return {
        name: 'followers_caught_up',
        ok: true,
        detail: `stock, workorders and the export applied every committed event once (${total}${sources.length > 1 ? ` over ${sources.length} databases: ${journaled.join(' + ')}` : ''})`,
      };
    }
    await sleep(250);
  }
  return { name: 'followers_caught_up', ok: false, detail: `after ${deadlineMs / 1000} s: ${behind.join(', ')}` };
}

/** The stream against the journal: each event once under its Nats-Msg-Id, in the journal's order. */
export async function checkStream(pools: readonly pg.Pool[], natsUrl: string): Promise<Invariant> {
  const journal = (await rowsOfAll<{ id: string }>(pools, "SELECT kind || '/' || actor_id || '/' || seq AS id FROM ppos_events ORDER BY tx, position")).map((r) => r.id);
  const nc = await connect({ servers: natsUrl });
  try {
    const total = (await (await jetstreamManager(nc)).streams.info(JOURNAL_STREAM)).state.messages;
    const ids: string[] = [];
    const consumer = await jetstream(nc).consumers.get(JOURNAL_STREAM);
    while (ids.length < total) {
      let got = 0;
      for await (const msg of await consumer.fetch({ max_messages: Math.min(1_000, total - ids.length), expires: 5_000 })) {
        got += 1;
        ids.push(msg.headers?.get('Nats-Msg-Id') ?? '');
      }
      if (got === 0) break;
    }
    const unique = new Set(ids);
    const failures: string[] = [];
    if (unique.size !== ids.length) failures.push(`${ids.length - unique.size} repeated message id(s)`);
    const inJournal = new Set(journal);
    const missing = journal.filter((id) => !unique.has(id));
    const extra = [...unique].filter((id) => !inJournal.has(id));
    if (missing.length > 0) failures.push(`${missing.length} event(s) missing, e.g. ${missing.slice(0, 3).join(', ')}`);
    if (extra.length > 0) failures.push(`${extra.length} message(s) not in the journal, e.g. ${extra.slice(0, 3).join(', ')}`);
    // Per actor, in seq order (the stream keeps the order the relay published in).
    const lastSeq = new Map<string, number>();
    let disordered = 0;
    for (const id of ids) {
      const cut = id.lastIndexOf('/');
      const actor = id.slice(0, cut);
      const seq = Number(id.slice(cut + 1));
      if ((lastSeq.get(actor) ?? 0) >= seq) disordered += 1;
      lastSeq.set(actor, seq);
    }
    if (disordered > 0) failures.push(`${disordered} message(s) out of per-actor order`);
    return {
      name: 'stream_once_per_message_id',
      ok: failures.length === 0,
      detail: failures.length === 0 ? `${ids.length} messages in ${JOURNAL_STREAM}, each journal event exactly once, per-actor in order` : failures.join('; '),
    };
  } catch (error) {
    return { name: 'stream_once_per_message_id', ok: false, detail: `could not read ${JOURNAL_STREAM}: ${(error as Error).message}` };
  } finally {
    await nc.close();
  }
}
