// The reference the inspection tools are checked against: the journal as plain SQL returns
// it, replayed from event 1 with no snapshot in sight.
import type { AnyMachineSnapshot } from 'xstate';
import { actorKinds } from '../../actors/index.js';
import type { DomainEvent } from '../../actors/kind.js';
import { initialState, replay } from '../../actors/state.js';
import type { TestDatabase } from '../helpers/services.js';

export interface EventRow {
  readonly seq: number;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly message_id: string;
}

export async function journalRows(db: TestDatabase, kind: string, id: string): Promise<EventRow[]> {
  const result = await db.query<EventRow>('SELECT seq, type, data, message_id FROM ppos_events WHERE kind = $1 AND actor_id = $2 ORDER BY seq', [kind, id]);
  return result.rows;
}

export const asEvent = (row: EventRow): DomainEvent => ({ type: row.type, ...row.data });

/** The state right after the first `n` rows, replayed from the initial state. */
export function replayFirst(kind: string, rows: readonly EventRow[], n: number): AnyMachineSnapshot {
  const actorKind = actorKinds.get(kind)!;
  return replay(actorKind, initialState(actorKind), rows.slice(0, n).map(asEvent));
}

/** Every prefix state, 0..rows.length, in one pass. */
export function replayPrefixes(kind: string, rows: readonly EventRow[]): AnyMachineSnapshot[] {
  const actorKind = actorKinds.get(kind)!;
  const states = [initialState(actorKind)];
  for (const row of rows) states.push(replay(actorKind, states[states.length - 1]!, [asEvent(row)]));
  return states;
}
