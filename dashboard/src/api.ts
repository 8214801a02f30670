// The dashboard server's API (src/dashboard/server.ts), as the page sees it.

import type { StateChart } from '../../runtime/statechart';

// The chart is described by the server from the machine itself (runtime/statechart.ts); the page
// uses the same types and the same reading of a state value, not copies of them.
export type { ChartState, ChartTransition, StateChart } from '../../runtime/statechart';
export { activePaths } from '../../runtime/statechart';

export interface Percentiles {
  readonly p50: number | null;
  readonly p99: number | null;
}

export interface NodeStats {
  readonly node: string;
  readonly uptimeSeconds: number;
  readonly commands: number;
  readonly commandsPerSecond: number;
  readonly latencyMs: Percentiles;
  readonly appendLatencyMs: Percentiles;
  readonly snapshotsSaved: number;
  readonly activeActors: number;
  readonly mailboxDepth: number;
  readonly activations: number;
  readonly passivations: number;
}

export interface ActiveActor {
  readonly node: string;
  readonly kind: string;
  readonly id: string;
  readonly seq: number;
  readonly mailboxDepth: number;
  readonly messages: number;
  readonly activatedAt: string;
  readonly lastUsedAt: string;
}

export interface ClusterView {
  readonly at: string;
  readonly nodes: readonly NodeStats[];
  readonly actors: readonly ActiveActor[];
  /** Active actors per node (the listing shows the busiest few hundred of each). */
  readonly totals: Readonly<Record<string, number | null>>;
}

export interface DomainEvent {
  readonly type: string;
  readonly [field: string]: unknown;
}

export interface JournalEntry {
  readonly seq: number;
  readonly event: DomainEvent;
  readonly messageId: string;
  readonly correlationId?: string | null;
  readonly traceId?: string | null;
  readonly recordedAt: string;
}

export interface Inspection {
  readonly node?: string;
  readonly status?: 'active' | 'passivated' | 'not_found';
  readonly seq?: number;
  readonly snapshotSeq?: number;
  readonly mailboxDepth?: number;
  readonly value?: unknown;
  readonly context?: unknown;
  readonly dedupe?: { readonly remembered: number; readonly recentMessageIds: readonly string[] };
  readonly unavailable?: string;
}

export interface ActorDetail {
  readonly kind: string;
  readonly id: string;
  readonly head: number;
  readonly inspection: Inspection;
  readonly chart: StateChart;
}

export interface ContextChange {
  readonly path: string;
  readonly change: 'added' | 'removed' | 'changed';
  readonly before?: unknown;
  readonly after?: unknown;
}

export interface StateAt {
  readonly head: number;
  readonly seq: number;
  readonly fromSnapshotSeq: number;
  readonly value: unknown;
  readonly context: Record<string, unknown>;
  readonly event: JournalEntry | null;
  readonly changes: readonly ContextChange[];
  /** Timers pending right after this event, soonest first. */
  readonly timers?: readonly { readonly dueAt: string; readonly key: string; readonly command: unknown }[];
}

export interface EventsPage {
  readonly head: number;
  readonly from: number;
  readonly events: readonly JournalEntry[];
}

/** One journaled event as published on ppos.events.<kind>.<id>. */
export interface FeedEvent extends JournalEntry {
  readonly node: string | null;
  readonly kind: string;
  readonly id: string;
}

export interface JournalBatch {
  readonly events: readonly FeedEvent[];
  /** Events per actor in this batch, including any left out of `events`. */
  readonly counts: Readonly<Record<string, number>>;
  readonly dropped: number;
}

export async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: { accept: 'application/json' } });
  const body = (await response.json()) as T & { error?: string };
  if (!response.ok) throw new Error(body.error ?? `${response.status} ${response.statusText}`);
  return body;
}

export const actorPath = (kind: string, id: string): string => `api/actors/${encodeURIComponent(kind)}/${encodeURIComponent(id)}`;

export const formatValue = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));

/** Node ids are ULIDs by default: their tail tells them apart. */
export const shortNode = (node: string | undefined): string => (!node ? '' : node.length <= 12 ? node : `…${node.slice(-8)}`);
