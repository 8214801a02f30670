// One actor: its live inspection, its state chart with the state at the chosen seq
// highlighted, its context, what the event at that seq changed, its saga lines (work orders)
// and its event timeline. The slider travels in time; at its right end it follows live.
import { useEffect, useRef, useState } from 'preact/hooks';
import { activePaths, actorPath, formatValue, getJson, shortNode, type ActorDetail, type EventsPage, type StateAt } from './api';
import type { LiveFeed } from './live';
import { StateChart } from './state-chart';

const TIMELINE_BEFORE = 30;
const TIMELINE_SIZE = 60;

interface SagaLine {
  readonly sku?: unknown;
  readonly qty?: unknown;
  readonly status?: unknown;
  readonly reservationId?: unknown;
  readonly reason?: unknown;
}

function SagaLines({ lines }: { lines: readonly SagaLine[] }) {
  return (
    <section>
      <h3>Saga lines</h3>
      <table class="grid" data-testid="saga-lines">
        <thead>
          <tr>
            <th>#</th>
            <th>sku</th>
            <th class="num">qty</th>
            <th>status</th>
            <th>reservation</th>
            <th>reason</th>
          </tr>
        </thead>
        <tbody>
          {lines.map((line, i) => (
            <tr key={i} data-testid="saga-line" data-sku={String(line.sku)} data-status={String(line.status)}>
              <td class="num">{i}</td>
              <td class="mono">{String(line.sku)}</td>
              <td class="num">{String(line.qty)}</td>
              <td>
                <span class={`line-status line-${String(line.status)}`}>{String(line.status)}</span>
              </td>
              <td class="mono muted">{line.reservationId === undefined ? '' : String(line.reservationId)}</td>
              <td class="muted">{line.reason === undefined ? '' : String(line.reason)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

const clock = (iso: string): string => new Date(iso).toLocaleTimeString([], { hour12: false });

function eventSummary(event: { type: string; [field: string]: unknown }): string {
  const { type: _type, ...data } = event;
  const text = JSON.stringify(data);
  return text === '{}' ? '' : text.length > 90 ? `${text.slice(0, 87)}…` : text;
}

export function ActorView({ kind, id, feed }: { kind: string; id: string; feed: LiveFeed }) {
  const [detail, setDetail] = useState<ActorDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  /** null: follow the head live. */
  const [at, setAt] = useState<number | null>(null);
  const [stateAt, setStateAt] = useState<StateAt | null>(null);
  const [page, setPage] = useState<EventsPage | null>(null);
  const [refresh, setRefresh] = useState(0);

  useEffect(() => {
    setDetail(null);
    setAt(null);
    setStateAt(null);
    setPage(null);
    setError(null);
  }, [kind, id]);

  useEffect(
    () =>
      feed.subscribe((events) => {
        if (events.some((e) => e.kind === kind && e.id === id)) setRefresh((n) => n + 1);
      }),
    [feed.subscribe, kind, id],
  );

  useEffect(() => {
    let current = true;
    getJson<ActorDetail>(actorPath(kind, id)).then(
      (d) => {
        if (!current) return;
        setDetail(d);
        setError(null);
      },
      (e: Error) => current && setError(e.message),
    );
    return () => {
      current = false;
    };
  }, [kind, id, refresh, feed.resyncs]);

  const timeline = useRef<HTMLOListElement>(null);
  // Keep the event at the slider in view inside the timeline (without scrolling the page).
  useEffect(() => {
    const list = timeline.current;
    const current = list?.querySelector<HTMLElement>('li.current');
    if (!list || !current) return;
    if (current.offsetTop < list.scrollTop || current.offsetTop + current.offsetHeight > list.scrollTop + list.clientHeight) {
      list.scrollTop = current.offsetTop - list.clientHeight / 2;
    }
  }, [page, stateAt]);

  const head = detail?.head ?? 0;
  const shown = at === null ? head : Math.min(at, head);

  useEffect(() => {
    if (!detail) return;
    let current = true;
    // Dragging the slider fires many inputs: ask only once it rests a moment.
    const timer = setTimeout(() => {
      const from = Math.max(1, shown - TIMELINE_BEFORE);
      Promise.all([
        getJson<StateAt>(`${actorPath(kind, id)}/state?at=${shown}`),
        getJson<EventsPage>(`${actorPath(kind, id)}/events?from=${from}&limit=${TIMELINE_SIZE}`),
      ]).then(
        ([state, events]) => {
          if (!current) return;
          setStateAt(state);
          setPage(events);
        },
        (e: Error) => current && setError(e.message),
      );
    }, at === null ? 0 : 60);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [detail, shown]);

  if (!detail) return <p class="muted">{error ?? `loading ${kind}/${id}…`}</p>;
  const inspection = detail.inspection;
  const context = stateAt?.context;
  const lines = context && Array.isArray(context.lines) ? (context.lines as SagaLine[]) : null;
  const travelling = at !== null && at < head;
  const move = (seq: number): void => setAt(seq >= head ? null : Math.max(0, seq));

  return (
    <div class="actor" data-testid="actor-view" data-actor={`${kind}/${id}`}>
      <header class="actor-head">
        <h2>
          <span class={`kind kind-${kind}`}>{kind}</span> <span class="mono">{id}</span>
        </h2>
        {inspection.unavailable ? (
          <span class="badge badge-bad">{inspection.unavailable}</span>
        ) : (
          <dl class="facts" data-testid="inspection">
            <dt>status</dt>
            <dd data-testid="inspect-status">{inspection.status}</dd>
            <dt>node</dt>
            <dd class="mono" title={inspection.node}>{shortNode(inspection.node)}</dd>
            <dt>seq</dt>
            <dd data-testid="inspect-seq">{inspection.seq}</dd>
            <dt>snapshot</dt>
            <dd>{inspection.snapshotSeq}</dd>
            <dt>mailbox</dt>
            <dd>{inspection.mailboxDepth}</dd>
            <dt>ids remembered</dt>
            <dd>{inspection.dedupe?.remembered ?? 0}</dd>
            <dt>live state</dt>
            <dd class="mono">{formatValue(inspection.value)}</dd>
          </dl>
        )}
      </header>
      {error && <p class="badge badge-bad">{error}</p>}

      <section class="travel">
        <div class="travel-controls">
          <button type="button" onClick={() => move(0)} disabled={shown === 0} title="before the first event">
            «
          </button>
          <button type="button" onClick={() => move(shown - 1)} disabled={shown === 0} title="one event back">
            ‹
          </button>
          <input
            type="range"
            min={0}
            max={head}
            step={1}
            value={shown}
            onInput={(e) => move(Number((e.target as HTMLInputElement).value))}
            data-testid="time-slider"
            aria-label="time travel: the state right after event N"
          />
          <button type="button" onClick={() => move(shown + 1)} disabled={shown >= head} title="one event forward">
            ›
          </button>
          <button type="button" class={travelling ? 'live-off' : 'live-on'} onClick={() => setAt(null)} data-testid="follow-live">
            {travelling ? 'back to live' : '● live'}
          </button>
        </div>
        <div class="travel-label">
          state right after event{' '}
          <strong data-testid="state-seq" data-seq={stateAt?.seq ?? ''}>
            {stateAt?.seq ?? '…'}
          </strong>{' '}
          of {head}
          {stateAt && stateAt.fromSnapshotSeq > 0 && <span class="muted"> (from the snapshot at {stateAt.fromSnapshotSeq} + replay)</span>}
          {stateAt && stateAt.seq !== shown && <span class="muted"> loading {shown}…</span>}
        </div>
      </section>

      <section>
        <h3>
          State chart <span class="muted mono" data-testid="state-value">{stateAt ? formatValue(stateAt.value) : ''}</span>
          {travelling && <span class="muted"> (at event {shown}; live: {formatValue(inspection.value)})</span>}
        </h3>
        <div class="chart-box">
          <StateChart chart={detail.chart} active={stateAt ? activePaths(stateAt.value) : []} />
        </div>
      </section>

      <div class="columns">
        <section>
          {stateAt?.event && (
            <div class="changes" data-testid="event-changes">
              <h3>
                Event #{stateAt.event.seq} <span class="mono">{stateAt.event.event.type}</span> changed
              </h3>
              {stateAt.changes.length === 0 ? (
                <p class="muted">nothing in the context</p>
              ) : (
                <table class="grid">
                  <tbody>
                    {stateAt.changes.map((c) => (
                      <tr key={c.path}>
                        <td class="mono">{c.path}</td>
                        <td class="mono muted">{c.before === undefined ? '–' : JSON.stringify(c.before)}</td>
                        <td>→</td>
                        <td class="mono">{c.after === undefined ? '–' : JSON.stringify(c.after)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </div>
          )}
          {lines && <SagaLines lines={lines} />}
          {stateAt?.timers && stateAt.timers.length > 0 && (
            <div data-testid="timers">
              <h3>Pending timers</h3>
              <table class="grid">
                <tbody>
                  {stateAt.timers.map((t) => (
                    <tr key={t.key}>
                      <td class="mono">{t.dueAt}</td>
                      <td class="mono">{t.key}</td>
                      <td class="mono muted">{JSON.stringify(t.command)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
        <section>
          <h3>Context</h3>
          <pre class="context" data-testid="context" data-seq={stateAt?.seq ?? ''}>
            {context ? JSON.stringify(context, null, 2) : '…'}
          </pre>
        </section>
      </div>

      <section>
        <h3>Events</h3>
        {page && page.events.length === 0 && <p class="muted">no events journaled yet</p>}
        <ol class="timeline" data-testid="timeline" ref={timeline}>
          {page?.events.map((e) => (
            <li
              key={e.seq}
              class={e.seq === shown ? 'current' : e.seq > shown ? 'future' : ''}
              onClick={() => move(e.seq)}
              data-testid="timeline-event"
              data-seq={e.seq}
              title={[`message ${e.messageId}`, e.correlationId && `correlation ${e.correlationId}`, e.traceId && `trace ${e.traceId} (ppos trace ${e.traceId})`].filter(Boolean).join(' · ')}
            >
              <span class="seq">#{e.seq}</span>
              <span class="type">{e.event.type}</span>
              <span class="data mono">{eventSummary(e.event)}</span>
              {e.traceId && (
                <span class="muted mono" data-testid="event-trace">
                  trace {e.traceId.slice(0, 8)}
                </span>
              )}
              <time class="muted">{clock(e.recordedAt)}</time>
            </li>
          ))}
        </ol>
      </section>
    </div>
  );
}
