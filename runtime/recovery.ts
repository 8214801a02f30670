// Rebuilding an actor's state from the journal: the newest trustworthy snapshot plus the
// events after it. Used for activation, time travel and verification alike.
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import type { AnyMachineSnapshot } from 'xstate';
import type { ActorKind } from '../actors/kind.js';
import { EventRefusedError, initialState, persistState, replay, restoreState, type PersistedState } from '../actors/state.js';
import type { ActorRef, Journal, StoredSnapshot } from '../persistence/journal.js';

export function stateHash(state: PersistedState): string {
  return createHash('sha256')
    .update(canonicalJson(state))
    .digest('hex');
}

export function snapshotOf(kind: ActorKind, state: AnyMachineSnapshot, seq: number): StoredSnapshot {
  const persisted = persistState(kind, state);
  return { seq, machineVersion: kind.machineVersion, state: persisted, hash: stateHash(persisted) };
}

export interface LoadedState {
  readonly state: AnyMachineSnapshot;
  readonly seq: number;
  /** Seq of the snapshot the load started from; 0 when it replayed from event 1. */
  readonly snapshotSeq: number;
  readonly eventsReplayed: number;
  /** Snapshots passed over because their hash or content did not check out. */
  readonly rejectedSnapshots: readonly { seq: number; problem: string }[];
  /** Bytes the snapshot it started from takes in the journal (0 without one). */
  readonly snapshotBytes: number;
}

/** Older snapshots tried, newest first, when the newest does not check out. */
const SNAPSHOTS_TRIED = 3;

export class JournalGapError extends Error {}

/** The actor's state right after event `atSeq` (default: its latest). */
export async function loadState(journal: Journal, kind: ActorKind, ref: ActorRef, atSeq?: number): Promise<LoadedState> {
  const rejectedSnapshots: { seq: number; problem: string }[] = [];
  // One at a time: a large actor's snapshot is megabytes, and the newest one usually does.
  let before = atSeq;
  for (let tried = 0; tried < SNAPSHOTS_TRIED; tried += 1) {
    const [snapshot] = await journal.snapshots(ref, kind.machineVersion, before, 1);
    if (!snapshot) break;
    before = snapshot.seq - 1;
    // The events after it are read while it is checked and decoded: the database works on the
    // tail meanwhile. The pool sends a query on its next tick, hence the turn of the event loop.
    const tail = journal.readEventsForReplay(ref, snapshot.seq, atSeq);
    tail.catch(() => undefined); // left unread if this snapshot is passed over; awaited otherwise
    await new Promise((resolve) => setImmediate(resolve));
    // A tampered or half-written snapshot must never become live state: check it first.
    if (stateHash(snapshot.state) !== snapshot.hash) {
      rejectedSnapshots.push({ seq: snapshot.seq, problem: 'hash mismatch' });
      continue;
    }
    let restored: AnyMachineSnapshot;
    try {
      restored = restoreState(kind, snapshot.state);
      const failures = kind.invariantFailures(restored);
      if (failures.length > 0) throw new Error(failures.map((f) => f.detail).join('; '));
    } catch (error) {
      rejectedSnapshots.push({ seq: snapshot.seq, problem: `does not load: ${(error as Error).message}` });
      continue;
    }
    try {
      return await loadFrom(journal, kind, ref, { state: restored, seq: snapshot.seq, bytes: snapshot.bytes ?? 0 }, atSeq, rejectedSnapshots, tail);
    } catch (error) {
      // A snapshot is only an optimisation: one the journal contradicts (ahead of it, or a
      // state its tail does not replay onto) costs a longer replay, never the actor.
      if (!(error instanceof JournalGapError || error instanceof EventRefusedError)) throw error;
      rejectedSnapshots.push({ seq: snapshot.seq, problem: `contradicts the journal: ${error.message}` });
    }
  }
  return loadFrom(journal, kind, ref, { state: initialState(kind), seq: 0, bytes: 0 }, atSeq, rejectedSnapshots);
}

async function loadFrom(
  journal: Journal,
  kind: ActorKind,
  ref: ActorRef,
  start: { state: AnyMachineSnapshot; seq: number; bytes: number },
  atSeq: number | undefined,
  rejectedSnapshots: { seq: number; problem: string }[],
  tail = journal.readEventsForReplay(ref, start.seq, atSeq),
): Promise<LoadedState> {
  const events = await tail;
  let expected = start.seq + 1;
  for (const journaled of events) {
    if (journaled.seq !== expected) {
      throw new JournalGapError(`${ref.kind}/${ref.id}: expected event ${expected}, found ${journaled.seq}`);
    }
    expected += 1;
  }
  if (start.seq > 0 && events.length === 0 && atSeq === undefined) {
    // A snapshot ahead of the journal would be a lie; cheap to rule out.
    const head = await journal.headSeq(ref);
    if (head < start.seq) throw new JournalGapError(`${ref.kind}/${ref.id}: snapshot at ${start.seq} but journal ends at ${head}`);
  }
  const state = replay(
    kind,
    start.state,
    events.map((e) => e.event),
  );
  return {
    state,
    seq: start.seq + events.length,
    snapshotSeq: start.seq,
    eventsReplayed: events.length,
    rejectedSnapshots,
    snapshotBytes: start.bytes,
  };
}
