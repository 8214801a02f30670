// Recovery evidence (CONTRACT.md section 6): replay every journal from event 1 with the pure
// machines and check what the contract promises, naming each failure. Read-only.
import type { AnyMachineSnapshot } from 'xstate';
import type { ActorKind } from '../actors/kind.js';
import { currentEvent } from '../actors/event-version.js';
import { applyEvent, initialState, persistState } from '../actors/state.js';
import { refKey, type ActorRef, type Journal } from '../persistence/journal.js';
import type { OutboundCommand, TimerSpec } from '../actors/kind.js';
import { fingerprint } from './dedupe.js';
import { stateHash } from './recovery.js';
import { answerMessageId } from './saga-runner.js';
import type { ProjectionAudit } from './projection-audit.js';

export interface EvidenceRecord {
  events_processed: number;
  actors: number;
  duplicates_skipped: number;
  snapshots_checked: number;
  snapshot_mismatches: number;
  /** Projection rows that differ from what the journal says they must be (CONTRACT.md section 6). */
  projections_changed: number;
  reconciliation_failures: { check: string; actor?: string; detail: string }[];
  checks: string[];
  confidence_status: 'trusted' | 'suspect';
}

/** Checks spanning actors (e.g. reservations held by work orders), given every replayed state. */
export type CrossActorCheck = (states: ReadonlyMap<string, { ref: ActorRef; state: AnyMachineSnapshot }>) => {
  readonly check: string;
  readonly failures: { actor?: string; detail: string }[];
};

/** A live actor's memory: its seq and the sha256 of its whole persisted state. */
export interface LiveState {
  readonly seq: number;
  readonly stateHash: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface VerifyOptions {
  readonly journal: Journal;
  readonly kinds: ReadonlyMap<string, ActorKind>;
  /** Default: every actor in the journal. */
  readonly actors?: readonly ActorRef[];
  readonly crossChecks?: readonly CrossActorCheck[];
  /** The state a live node holds for an actor, to compare with the replay (null: not live). */
  readonly liveState?: (ref: ActorRef) => Promise<LiveState | null>;
  /** How often, and how far apart, a live actor seen behind its journal is looked at again. */
  readonly liveRecheck?: { readonly attempts: number; readonly delayMs: number };
  /** Duplicate deliveries the journal recorded as answered without being applied. */
  readonly duplicatesAnswered?: () => Promise<number>;
  /** Each projection checked against the journal up to its checkpoint. */
  readonly projections?: () => Promise<readonly ProjectionAudit[]>;
}

export async function verifyJournals(options: VerifyOptions): Promise<EvidenceRecord> {
  const { journal, kinds } = options;
  const refs = options.actors ?? (await journal.listActors());
  const checks = new Set<string>(['gapless_sequences', 'unique_message_ids', 'replay_accepts_every_event', 'snapshots_match_replay']);
  if (options.liveState) checks.add('live_state_matches_replay');
  const record: EvidenceRecord = {
    events_processed: 0,
    actors: 0,
    duplicates_skipped: 0,
    snapshots_checked: 0,
    snapshot_mismatches: 0,
    projections_changed: 0,
    reconciliation_failures: [],
    checks: [],
    confidence_status: 'trusted',
  };
  const fail = (check: string, ref: ActorRef | undefined, detail: string): void => {
    record.reconciliation_failures.push(ref ? { check, actor: refKey(ref), detail } : { check, detail });
  };
  const finalStates = new Map<string, { ref: ActorRef; state: AnyMachineSnapshot; seq: number }>();

  for (const ref of refs) {
    const kind = kinds.get(ref.kind);
    if (!kind) {
      fail('known_actor_kind', ref, `no actor kind ${ref.kind} in this build`);
      continue;
    }
    for (const invariant of kind.invariants) checks.add(invariant);
    record.actors += 1;
    const snapshots = new Map((await journal.snapshots(ref, kind.machineVersion, undefined, 100_000)).map((s) => [s.seq, s]));
    const events = await journal.readEvents(ref, 0);
    const seenIds = new Set<string>();
    /** The facts the events establish, by key: what the journal's index of facts must hold. */
    const expectedFacts = new Map<string, number>();
    let state = initialState(kind);
    let replayable = true;
    for (const [index, journaled] of events.entries()) {
      record.events_processed += 1;
      if (journaled.seq !== index + 1) {
        fail('gapless_sequences', ref, `event ${index + 1} has seq ${journaled.seq}`);
        replayable = false;
        break;
      }
      if (seenIds.has(journaled.messageId)) fail('unique_message_ids', ref, `message ${journaled.messageId} appears in two events`);
      seenIds.add(journaled.messageId);
      try {
        state = applyEvent(kind, state, journaled.event);
      } catch (error) {
        fail('replay_accepts_every_event', ref, `event ${journaled.seq}: ${(error as Error).message}`);
        replayable = false;
        break;
      }
      for (const failure of kind.invariantFailures(state)) fail(failure.invariant, ref, `after event ${journaled.seq}: ${failure.detail}`);
      for (const fact of kind.eventFacts?.(currentEvent(kind, journaled.event)) ?? []) if (!expectedFacts.has(fact)) expectedFacts.set(fact, journaled.seq);
      const snapshot = snapshots.get(journaled.seq);
      if (snapshot) {
        record.snapshots_checked += 1;
        const replayedHash = stateHash(persistState(kind, state));
        if (snapshot.hash !== replayedHash || stateHash(snapshot.state) !== snapshot.hash) {
          record.snapshot_mismatches += 1;
          fail('snapshots_match_replay', ref, `snapshot at ${journaled.seq} differs from the replay`);
        }
      }
    }
    for (const seq of snapshots.keys()) {
      if (seq > events.length) {
        record.snapshots_checked += 1;
        record.snapshot_mismatches += 1;
        fail('snapshots_match_replay', ref, `snapshot at ${seq} is beyond the journal's last event ${events.length}`);
      }
    }
    if (!replayable) continue;
    if (kind.eventFacts) {
      checks.add('facts_match_events');
      for (const problem of compareFacts(expectedFacts, await journal.factsOf(ref), events.length)) fail('facts_match_events', ref, problem);
    }
    if (kind.pendingTimers) {
      checks.add('timers_match_holds');
      for (const problem of compareTimers(kind.pendingTimers(state), await journal.timersOf(ref, Number.MAX_SAFE_INTEGER))) {
        // A node may have committed since this replay: the timers then belong to a newer state.
        if ((await journal.headSeq(ref)) === events.length) fail('timers_match_holds', ref, problem);
      }
    }
    finalStates.set(refKey(ref), { ref, state, seq: events.length });
    if (options.liveState) {
      const problem = await compareLive(options, kind, ref, state, events.length);
      if (problem) fail('live_state_matches_replay', ref, problem);
    }
  }
  checks.add('saga_steps_unobstructed');
  for (const { ref, state, seq } of finalStates.values()) {
    for (const effect of kinds.get(ref.kind)!.pendingEffects?.(state, ref.id) ?? []) {
      const problem = await obstructedStep(journal, kinds, ref, effect);
      // A saga that moved on since its replay (a live node answered the step meanwhile) is not stuck.
      if (problem && (await journal.headSeq(ref)) === seq) fail('saga_steps_unobstructed', ref, problem);
    }
  }
  for (const cross of options.crossChecks ?? []) {
    const result = cross(finalStates);
    checks.add(result.check);
    for (const failure of result.failures) {
      record.reconciliation_failures.push({ check: result.check, ...failure });
    }
  }
  if (options.projections) {
    checks.add('projections_match_journal');
    for (const audit of await options.projections()) {
      record.projections_changed += audit.rowsChanged;
      for (const example of audit.examples) fail('projections_match_journal', undefined, `${audit.projection}: ${example}`);
    }
  }
  record.duplicates_skipped = (await options.duplicatesAnswered?.()) ?? 0;
  record.checks = [...checks];
  record.confidence_status = record.reconciliation_failures.length === 0 ? 'trusted' : 'suspect';
  return record;
}

/**
 * The journal's index of facts against what the replayed events establish: a fact missing
 * would let a decision take it to be absent (a consumed reservation reserved again), a fact
 * that no event established would refuse what should pass. Facts past `lastSeq` belong to
 * events journaled after the replay read (a live node): not judged.
 */
function compareFacts(expected: ReadonlyMap<string, number>, indexed: ReadonlyMap<string, number>, lastSeq: number): string[] {
  const problems: string[] = [];
  for (const [key, seq] of expected) {
    const at = indexed.get(key);
    if (at === undefined) problems.push(`fact ${key} (event ${seq}) is missing from the index`);
    else if (at !== seq) problems.push(`fact ${key} is indexed at event ${at}, established by event ${seq}`);
  }
  for (const [key, seq] of indexed) {
    if (!expected.has(key) && seq <= lastSeq) problems.push(`fact ${key} at event ${seq} was established by no event`);
  }
  return problems;
}

/**
 * Whether a step an open saga still owes can ever be answered: its id (or its answer's) already
 * recorded for another command means every re-send gets ID_REUSED, and the saga is stuck.
 */
async function obstructedStep(journal: Journal, kinds: ReadonlyMap<string, ActorKind>, ref: ActorRef, effect: OutboundCommand): Promise<string | null> {
  const target = { kind: effect.kind, id: effect.id };
  const parsed = kinds.get(effect.kind)?.parseCommand(effect.type, effect.payload);
  if (!parsed?.ok) return `step ${effect.messageId} to ${refKey(target)} is not a command the target takes: ${parsed ? parsed.message : 'unknown kind'}`;
  const taken = await journal.findDedupe(target, effect.messageId);
  if (taken && taken.fingerprint !== fingerprint(parsed.command.type, parsed.command.payload)) {
    return `step ${effect.messageId}: its id is recorded at ${refKey(target)} for another command, so the saga cannot go on`;
  }
  const answer = answerMessageId(effect.messageId);
  if (await journal.findDedupe(ref, answer)) return `the answer id ${answer} of an open step is already recorded here for another command`;
  return null;
}

/**
 * Compares a live actor with its replay at the live actor's own seq. Memory may be ahead of the
 * journal read a moment ago (it moved on: the newer events are read and replayed too), and may
 * be behind it only for the instant between a commit and the memory move (journal before
 * memory), so an actor still behind after a few looks holds memory its journal has left.
 */
async function compareLive(
  options: VerifyOptions,
  kind: ActorKind,
  ref: ActorRef,
  replayed: AnyMachineSnapshot,
  replayedSeq: number,
): Promise<string | null> {
  const recheck = options.liveRecheck ?? { attempts: 5, delayMs: 200 };
  let live = await options.liveState!(ref);
  for (let attempt = 0; live && live.seq < replayedSeq && attempt < recheck.attempts; attempt += 1) {
    await sleep(recheck.delayMs);
    live = await options.liveState!(ref);
  }
  if (!live) return null;
  if (live.seq < replayedSeq) {
    return `the live actor stays at seq ${live.seq}, behind its journal's event ${replayedSeq}`;
  }
  let state = replayed;
  if (live.seq > replayedSeq) {
    const newer = await options.journal.readEvents(ref, replayedSeq, live.seq);
    if (newer.length !== live.seq - replayedSeq || newer.some((e, i) => e.seq !== replayedSeq + i + 1)) {
      return `the live actor is at seq ${live.seq} but its journal ends at ${replayedSeq + newer.length}: memory ahead of the journal`;
    }
    try {
      for (const journaled of newer) state = applyEvent(kind, state, journaled.event);
    } catch (error) {
      return `the journal after event ${replayedSeq} does not replay: ${(error as Error).message}`;
    }
  }
  if (live.stateHash !== stateHash(persistState(kind, state))) {
    return `the live actor at seq ${live.seq} holds a state its journal does not replay to`;
  }
  return null;
}

/** Every pending timer the state has, stored with its deadline; no stored timer the state does not have. */
function compareTimers(expected: readonly TimerSpec[], stored: readonly TimerSpec[]): string[] {
  const problems: string[] = [];
  const storedByKey = new Map(stored.map((t) => [t.key, t]));
  for (const timer of expected) {
    const found = storedByKey.get(timer.key);
    if (!found) problems.push(`timer ${timer.key} due ${new Date(timer.dueAt).toISOString()} is missing`);
    else if (found.dueAt !== timer.dueAt) problems.push(`timer ${timer.key} is due ${new Date(found.dueAt).toISOString()}, the state says ${new Date(timer.dueAt).toISOString()}`);
    storedByKey.delete(timer.key);
  }
  for (const orphan of storedByKey.values()) problems.push(`timer ${orphan.key} points at nothing the state holds`);
  return problems.slice(0, 10);
}
