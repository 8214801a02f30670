// The server-sent event stream: node/actor listings every second and batches of journaled
// events as they are committed. One EventSource per page; it reconnects by itself, and the page
// reopens it when the server refused it (the stream cap).
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { ClusterView, FeedEvent, JournalBatch } from './api';

export type JournalListener = (events: readonly FeedEvent[]) => void;

export interface LiveFeed {
  readonly connected: boolean;
  readonly cluster: ClusterView | null;
  /** Events seen per actor (`kind/id`) with their arrival times (ms), the last minute only. */
  readonly activity: ReadonlyMap<string, readonly number[]>;
  /** Latest seq seen per actor, ahead of the next listing. */
  readonly latestSeq: ReadonlyMap<string, number>;
  /** Subscribe to journaled events; returns the unsubscribe function. */
  subscribe(listener: JournalListener): () => void;
  /** Bumped when the server says the page missed events: views refetch. */
  readonly resyncs: number;
}

const ACTIVITY_WINDOW_MS = 60_000;
const REOPEN_AFTER_MS = 5_000;

export function useLiveFeed(): LiveFeed {
  const [connected, setConnected] = useState(false);
  const [cluster, setCluster] = useState<ClusterView | null>(null);
  const [activity, setActivity] = useState<ReadonlyMap<string, readonly number[]>>(new Map());
  const [latestSeq, setLatestSeq] = useState<ReadonlyMap<string, number>>(new Map());
  const [resyncs, setResyncs] = useState(0);
  const listeners = useRef(new Set<JournalListener>());

  useEffect(() => {
    const onJournal = (message: Event): void => {
      const batch = JSON.parse((message as MessageEvent<string>).data) as JournalBatch;
      const now = Date.now();
      setActivity((previous) => {
        const next = new Map<string, readonly number[]>();
        for (const [key, times] of previous) {
          const recent = times.filter((t) => now - t < ACTIVITY_WINDOW_MS);
          if (recent.length > 0) next.set(key, recent);
        }
        for (const [key, count] of Object.entries(batch.counts)) {
          next.set(key, [...(next.get(key) ?? []), ...Array.from({ length: Math.min(count, 1000) }, () => now)]);
        }
        return next;
      });
      setLatestSeq((previous) => {
        const next = new Map(previous);
        for (const e of batch.events) {
          const key = `${e.kind}/${e.id}`;
          next.set(key, Math.max(next.get(key) ?? 0, e.seq));
        }
        return next;
      });
      for (const listener of listeners.current) listener(batch.events);
      if (batch.dropped > 0) setResyncs((n) => n + 1);
    };
    let source: EventSource;
    let reopenTimer: ReturnType<typeof setTimeout> | undefined;
    const open = (): void => {
      source = new EventSource('api/stream');
      source.onopen = () => setConnected(true);
      source.onerror = () => {
        setConnected(false);
        // The browser retries a dropped connection itself, but gives up on an HTTP error (503 at the stream cap).
        if (source.readyState === EventSource.CLOSED) reopenTimer = setTimeout(open, REOPEN_AFTER_MS);
      };
      source.addEventListener('cluster', (message) => setCluster(JSON.parse((message as MessageEvent<string>).data) as ClusterView));
      source.addEventListener('resync', () => setResyncs((n) => n + 1));
      source.addEventListener('journal', onJournal);
    };
    open();
    return () => {
      clearTimeout(reopenTimer);
      source.close();
    };
  }, []);

  const subscribe = useCallback((listener: JournalListener) => {
    listeners.current.add(listener);
    return () => {
      listeners.current.delete(listener);
    };
  }, []);

  return { connected, cluster, activity, latestSeq, resyncs, subscribe };
}
