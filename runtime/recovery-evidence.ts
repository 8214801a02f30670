// The evidence record a starting node logs for its own recovery (CONTRACT.md section 6, plus
// what the recovery cost). A node does not replay every journal at start (a large journal
// would make startup slow): it checks the actors it had to bring back on its own, those with
// a saga left open, comparing each one's live memory with a full replay from event 1.
import type { Logger } from 'pino';
import type { ActorKind } from '../actors/kind.js';
import type { ActorRef, Journal } from '../persistence/journal.js';
import type { ActorRegistry, RecoveryCounters } from './registry.js';
import { verifyJournals, type EvidenceRecord } from './verify.js';
import { persistState } from '../actors/state.js';
import { stateHash } from './recovery.js';

export interface NodeRecoveryEvidence extends EvidenceRecord {
  /** Actors loaded from the journal since the node started (its resumed sagas among them). */
  readonly actors_recovered: number;
  readonly open_sagas_resumed: number;
  readonly events_replayed: number;
  readonly snapshot_hits: number;
  readonly snapshot_misses: number;
  /** Snapshots passed over on activation (hash mismatch, or the journal contradicts them). */
  readonly snapshots_rejected: number;
  /** From the node's start until its resumed actors were checked. */
  readonly recovery_ms: number;
}

export interface RecoveryEvidenceOptions {
  readonly journal: Journal;
  readonly kinds: ReadonlyMap<string, ActorKind>;
  readonly registry: ActorRegistry;
  /** The actors the node brought back on its own at start. */
  readonly resumed: readonly ActorRef[];
  /** performance.now() when the node started. */
  readonly startedAt: number;
}

export async function nodeRecoveryEvidence(options: RecoveryEvidenceOptions): Promise<NodeRecoveryEvidence> {
  const { registry } = options;
  const record = await verifyJournals({
    journal: options.journal,
    kinds: options.kinds,
    actors: options.resumed,
    // Read in the node's own memory: a resumed actor must hold exactly what its journal replays to.
    liveState: async (ref) => {
      const live = registry.activeHost(ref);
      return live ? { seq: live.host.seq, stateHash: stateHash(persistState(live.host.kind, live.host.current)) } : null;
    },
    liveRecheck: { attempts: 10, delayMs: 50 },
  });
  const c: RecoveryCounters = registry.counters;
  return {
    ...record,
    actors_recovered: c.activations,
    open_sagas_resumed: options.resumed.length,
    events_replayed: c.eventsReplayed,
    snapshot_hits: c.snapshotHits,
    snapshot_misses: c.snapshotMisses,
    snapshots_rejected: c.snapshotsRejected,
    recovery_ms: Math.round(performance.now() - options.startedAt),
  };
}

/** Logs the record once: info when trusted, error (each failure named) when suspect. Never throws. */
export async function logRecoveryEvidence(options: RecoveryEvidenceOptions & { readonly logger: Logger }): Promise<NodeRecoveryEvidence | null> {
  try {
    const evidence = await nodeRecoveryEvidence(options);
    if (evidence.confidence_status === 'trusted') options.logger.info({ evidence }, 'recovery evidence');
    else options.logger.error({ evidence }, 'recovery evidence');
    return evidence;
  } catch (error) {
    options.logger.warn({ err: (error as Error).message }, 'recovery evidence could not be gathered (journal unreachable?)');
    return null;
  }
}
