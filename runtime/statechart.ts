// An actor kind's state chart as plain data, read from its XState machine definition: the
// dashboard draws it, and highlights the states a snapshot's `value` names. Nothing here is
// hand-maintained, so the picture cannot drift from the machine that runs.
import type { AnyStateMachine, AnyStateNode } from 'xstate';

export interface ChartState {
  /** Dotted path from the root, e.g. `in_progress` or `active.idle`; '' is the root. */
  readonly path: string;
  readonly key: string;
  readonly parent: string | null;
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** Key of the initial child of a compound state. */
  readonly initial: string | null;
}

export interface ChartTransition {
  /** Path of the state the transition leaves. */
  readonly source: string;
  /** Path of the state it enters; null for a targetless transition (context only). */
  readonly target: string | null;
  readonly event: string;
  readonly guard: string | null;
}

export interface StateChart {
  readonly id: string;
  readonly states: readonly ChartState[];
  readonly transitions: readonly ChartTransition[];
}

const pathOf = (node: AnyStateNode): string => node.path.join('.');

function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') return guard.name || 'guard';
  if (typeof guard === 'object' && 'type' in guard && typeof guard.type === 'string') return guard.type;
  return 'guard';
}

export function describeMachine(machine: AnyStateMachine): StateChart {
  const states: ChartState[] = [];
  const transitions: ChartTransition[] = [];
  const visit = (node: AnyStateNode, parent: string | null): void => {
    const path = pathOf(node);
    const initialTarget = node.initial?.target?.[0];
    states.push({
      path,
      key: node.key,
      parent,
      type: node.type,
      initial: initialTarget ? initialTarget.key : null,
    });
    // Eventless (`always`) transitions are listed under the pseudo-event '(always)'.
    const byEvent: [string, typeof node.always][] = [...node.transitions];
    if (node.always?.length) byEvent.push(['(always)', node.always]);
    for (const [event, definitions] of byEvent) {
      for (const definition of definitions ?? []) {
        const targets = definition.target ?? [];
        if (targets.length === 0) {
          transitions.push({ source: path, target: null, event, guard: guardName(definition.guard) });
        }
        for (const target of targets) {
          transitions.push({ source: path, target: pathOf(target), event, guard: guardName(definition.guard) });
        }
      }
    }
    for (const child of Object.values(node.states)) visit(child, path);
  };
  visit(machine.root, null);
  return { id: machine.id, states, transitions };
}

/** The chart paths a snapshot value makes active: `'a'` → ['a'], `{a: 'b'}` → ['a', 'a.b']. */
export function activePaths(value: unknown, prefix = ''): string[] {
  const join = (key: string): string => (prefix ? `${prefix}.${key}` : key);
  if (typeof value === 'string') return [join(value)];
  if (value && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>).flatMap(([key, child]) => [join(key), ...activePaths(child, join(key))]);
  }
  return [];
}
