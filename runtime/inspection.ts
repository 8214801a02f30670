// Read-only views of actors for operators. Inspection never enters a mailbox and never
// activates an actor: a live actor's committed state is read as it stands between two
// commits, a passivated one is rebuilt from the journal on the side.
//
// An inspection is bounded whatever the actor's history: its context is the kind's bounded
// inspection view (a page, for an inventory's reservations), and the whole state is
// represented by its hash, computed only when asked (verify compares it with a replay).
import type { AnyMachineSnapshot } from 'xstate';
import type { ActorKind } from '../actors/kind.js';
import { persistState } from '../actors/state.js';
import type { ActorRef, Journal } from '../persistence/journal.js';
import { loadState, stateHash } from './recovery.js';
import type { ActorRegistry } from './registry.js';

/** What an inspection request may ask for. */
export interface InspectionRequest {
  /** Which page of a long context (e.g. `{reservations: {after, limit}}`), passed to the kind. */
  readonly page?: Record<string, unknown>;
  /** Include the sha256 of the whole persisted state (costs a pass over it). */
  readonly hash?: boolean;
}

/** The request body → a request; anything unreadable asks for the defaults. */
export function parseInspectionRequest(data: Uint8Array): InspectionRequest {
  if (data.length === 0 || data.length > 4096) return {};
  try {
    const body = JSON.parse(Buffer.from(data).toString('utf8')) as Record<string, unknown>;
    const page = body.page !== null && typeof body.page === 'object' && !Array.isArray(body.page) ? (body.page as Record<string, unknown>) : undefined;
    return { ...(page ? { page } : {}), ...(body.hash === true ? { hash: true } : {}) };
  } catch {
    return {};
  }
}

export interface ActorInspection {
  readonly node: string;
  readonly kind: string;
  readonly id: string;
  readonly status: 'active' | 'passivated' | 'not_found';
  readonly seq: number;
  readonly snapshotSeq: number;
  readonly mailboxDepth: number;
  readonly value: unknown;
  readonly context: unknown;
  readonly state: Record<string, unknown>;
  readonly dedupe: { readonly remembered: number; readonly recentMessageIds: readonly string[] };
  readonly stateHash?: string;
  /** Pending timers as stored, soonest first (at most TIMERS_SHOWN): `{dueAt, command}`. */
  readonly timers: readonly { readonly dueAt: string; readonly key: string; readonly command: unknown }[];
}

/** Timers an inspection lists, soonest first. */
export const TIMERS_SHOWN = 100;

async function timersShown(journal: Journal, kind: ActorKind, ref: ActorRef): Promise<ActorInspection['timers']> {
  if (!kind.timerChanges) return [];
  const stored = await journal.timersOf(ref, TIMERS_SHOWN);
  return stored.map((t) => ({ dueAt: new Date(t.dueAt).toISOString(), key: t.key, command: t.command }));
}

/** The fields that depend on the state alone. */
function stateFields(kind: ActorKind, state: AnyMachineSnapshot, request: InspectionRequest) {
  return {
    value: state.value,
    context: kind.inspectContext ? kind.inspectContext(state, request.page ?? {}) : persistState(kind, state).context,
    state: kind.view(state),
    ...(request.hash ? { stateHash: stateHash(persistState(kind, state)) } : {}),
  };
}

export async function inspectActor(
  node: string,
  registry: ActorRegistry,
  journal: Journal,
  kind: ActorKind,
  ref: ActorRef,
  request: InspectionRequest = {},
): Promise<ActorInspection> {
  const live = registry.activeHost(ref);
  if (live) {
    const { host } = live;
    return {
      node,
      kind: ref.kind,
      id: ref.id,
      status: 'active',
      seq: host.seq,
      snapshotSeq: host.snapshotSeq,
      mailboxDepth: live.mailboxDepth,
      ...stateFields(kind, host.current, request),
      dedupe: { remembered: host.rememberedReplies, recentMessageIds: host.recentMessageIds(20) },
      timers: await timersShown(journal, kind, ref),
    };
  }
  const loaded = await loadState(journal, kind, ref);
  return {
    node,
    kind: ref.kind,
    id: ref.id,
    status: loaded.seq > 0 ? 'passivated' : 'not_found',
    seq: loaded.seq,
    snapshotSeq: loaded.snapshotSeq,
    mailboxDepth: 0,
    ...stateFields(kind, loaded.state, request),
    dedupe: { remembered: 0, recentMessageIds: [] },
    timers: await timersShown(journal, kind, ref),
  };
}
