// The actor kinds this runtime hosts, by name.
import { inventory } from './inventory.js';
import { workorder } from './workorder.js';
import type { ActorKind } from './kind.js';

export const actorKinds: ReadonlyMap<string, ActorKind> = new Map([
  [inventory.kind, inventory],
  [workorder.kind, workorder],
]);

export type { ActorKind, Command, Decision, DomainEvent, OutboundCommand, ParseResult } from './kind.js';
