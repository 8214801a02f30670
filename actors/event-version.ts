// Events evolve: a kind may change an event type's shape after events of the old shape are in
// the journal. Old events stay as they were written; each carries the version of its type it
// was written with, and the kind's upcasters bring it to the current shape when it is read
// (activation, replay, time travel, verify, projections all step through `applyEvent`, which
// asks for `currentEvent`). The version travels with the event object under a symbol, so it
// is never part of the event's JSON, its hash, or what tools print.
import type { ActorKind, DomainEvent } from './kind.js';

const EVENT_VERSION = Symbol('ppos.eventVersion');

type Versioned = DomainEvent & { [EVENT_VERSION]?: number };

/** `event` as read from the journal, written at `version` of its type (null: version 1). */
export function withVersion(event: DomainEvent, version: number | null | undefined): DomainEvent {
  if (version === null || version === undefined || version === 1) return event;
  // On a copy: the object read may be shared or frozen.
  const marked = { ...event };
  Object.defineProperty(marked, EVENT_VERSION, { value: version, enumerable: false });
  return marked;
}

/** The version of its type an event read from the journal was written at; 1 unless marked. */
export const writtenVersion = (event: DomainEvent): number => (event as Versioned)[EVENT_VERSION] ?? 1;

/** The version a kind writes events of `type` at today. */
export const currentVersion = (kind: ActorKind, type: string): number => kind.eventVersion?.(type) ?? 1;

export class UpcastError extends Error {}

/** The event in its type's current shape: upcast step by step from the version it was written at. */
export function currentEvent(kind: ActorKind, event: DomainEvent): DomainEvent {
  let version = writtenVersion(event);
  const target = currentVersion(kind, event.type);
  if (version === target) return event;
  if (version > target) throw new UpcastError(`${kind.kind} event ${event.type} was written at version ${version}, newer than this build's ${target}`);
  let current = event;
  for (; version < target; version += 1) {
    if (!kind.upcast) throw new UpcastError(`${kind.kind} has no upcaster for ${event.type} version ${version}`);
    const next = kind.upcast(current, version);
    if (next.type !== current.type) throw new UpcastError(`${kind.kind}: upcasting ${current.type} v${version} changed its type to ${next.type}`);
    current = next;
  }
  return current;
}
