// Read-only views of actors for operators. Inspection never enters a mailbox and never
// activates an actor: a live actor's committed state is read as it stands between two
// commits, a passivated one is rebuilt from the journal on the side.
import type { ActorKind } from '../actors/kind.js';
import type { ActorRef, Journal } from '../persistence/journal.js';
import { loadState } from './recovery.js';
import type { ActorRegistry } from './registry.js';

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
}

export async function inspectActor(
  node: string,
  registry: ActorRegistry,
  journal: Journal,
  kind: ActorKind,
  ref: ActorRef,
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
      value: host.current.value,
      context: host.current.context,
      state: kind.publicState(host.current),
      dedupe: { remembered: host.rememberedReplies, recentMessageIds: host.recentMessageIds(20) },
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
    value: loaded.state.value,
    context: loaded.state.context,
    state: kind.publicState(loaded.state),
    dedupe: { remembered: 0, recentMessageIds: [] },
  };
}
