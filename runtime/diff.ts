// What changed in an actor between two of its seqs, and which events changed it: the state
// at `from` (nearest snapshot plus replay), then the events up to `to` replayed one by one,
// noting the paths each event touched. Read-only: it never enters a mailbox.
import type { AnyMachineSnapshot } from 'xstate';
import type { ActorKind } from '../actors/kind.js';
import { applyEvent } from '../actors/state.js';
import type { ActorRef, Journal, JournaledEvent } from '../persistence/journal.js';
import { loadState } from './recovery.js';

export interface ContextChange {
  /** `onHand`, `reservations.r1.qty`, `lines[0].status`. */
  readonly path: string;
  readonly change: 'added' | 'removed' | 'changed';
  readonly before?: unknown;
  readonly after?: unknown;
  /** Seqs of the events (in from < seq <= to) that touched this path or something inside it. */
  readonly bySeqs: readonly number[];
}

export interface StateDiff {
  readonly kind: string;
  readonly id: string;
  readonly from: number;
  readonly to: number;
  readonly value: { readonly before: unknown; readonly after: unknown; readonly bySeqs: readonly number[] };
  readonly changes: readonly ContextChange[];
  readonly events: readonly JournaledEvent[];
}

interface LeafChange {
  readonly path: string;
  readonly change: ContextChange['change'];
  readonly before?: unknown;
  readonly after?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  const segment = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  return parent ? `${parent}.${segment}` : segment;
}

/** A keyed collection that can list its differences from another itself (a persistent tree skips what both share). */
interface Diffable {
  changesSince(before: unknown): [string, unknown, unknown][];
}
const isDiffable = (v: unknown): v is Diffable => typeof (v as Partial<Diffable> | null)?.changesSince === 'function';

/** Leaf-level differences between two JSON values; objects and arrays are walked into. */
export function diffValues(before: unknown, after: unknown, path = ''): LeafChange[] {
  if (Object.is(before, after)) return [];
  if (isDiffable(before) && isDiffable(after)) {
    return after.changesSince(before).flatMap(([key, was, now]): LeafChange[] => {
      if (was === undefined) return [{ path: childPath(path, key), change: 'added', after: now }];
      if (now === undefined) return [{ path: childPath(path, key), change: 'removed', before: was }];
      return diffValues(was, now, childPath(path, key));
    });
  }
  if (isObject(before) && isObject(after)) {
    const changes: LeafChange[] = [];
    for (const key of Object.keys(before)) {
      if (!Object.hasOwn(after, key)) changes.push({ path: childPath(path, key), change: 'removed', before: before[key] });
      else changes.push(...diffValues(before[key], after[key], childPath(path, key)));
    }
    for (const key of Object.keys(after)) {
      if (!Object.hasOwn(before, key)) changes.push({ path: childPath(path, key), change: 'added', after: after[key] });
    }
    return changes;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const changes: LeafChange[] = [];
    const shared = Math.min(before.length, after.length);
    for (let i = 0; i < shared; i += 1) changes.push(...diffValues(before[i], after[i], childPath(path, i)));
    for (let i = shared; i < before.length; i += 1) changes.push({ path: childPath(path, i), change: 'removed', before: before[i] });
    for (let i = shared; i < after.length; i += 1) changes.push({ path: childPath(path, i), change: 'added', after: after[i] });
    return changes;
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  return [{ path, change: 'changed', before, after }];
}

/** One path is the other, or lies inside it. */
const related = (a: string, b: string): boolean =>
  a === b || a.startsWith(`${b}.`) || a.startsWith(`${b}[`) || b.startsWith(`${a}.`) || b.startsWith(`${a}[`);

export async function diffStates(journal: Journal, kind: ActorKind, ref: ActorRef, from: number, to: number): Promise<StateDiff> {
  const start = await loadState(journal, kind, ref, from);
  return diffOver(kind, ref, start, await journal.readEvents(ref, from, to)).diff;
}

/** The diff over `events` replayed from `start`, and the state they lead to. */
export function diffOver(
  kind: ActorKind,
  ref: ActorRef,
  start: { readonly state: AnyMachineSnapshot; readonly seq: number },
  events: readonly JournaledEvent[],
): { diff: StateDiff; state: AnyMachineSnapshot } {
  const touched: { seq: number; paths: string[]; valueChanged: boolean }[] = [];
  let state = start.state;
  for (const journaled of events) {
    const next = applyEvent(kind, state, journaled.event);
    touched.push({
      seq: journaled.seq,
      paths: diffValues(state.context, next.context).map((c) => c.path),
      valueChanged: JSON.stringify(state.value) !== JSON.stringify(next.value),
    });
    state = next;
  }
  const changes = diffValues(start.state.context, state.context).map(
    (change): ContextChange => ({
      ...change,
      bySeqs: touched.filter((t) => t.paths.some((p) => related(p, change.path))).map((t) => t.seq),
    }),
  );
  const diff: StateDiff = {
    kind: ref.kind,
    id: ref.id,
    from: start.seq,
    to: start.seq + events.length,
    value: { before: start.state.value, after: state.value, bySeqs: touched.filter((t) => t.valueChanged).map((t) => t.seq) },
    changes,
    events,
  };
  return { diff, state };
}
