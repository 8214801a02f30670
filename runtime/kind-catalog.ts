// What a node tells tools about the kinds it hosts (ppos.nodes.kinds): each kind's name, state
// version, commands with their payloads as JSON Schema, and queries. A tool that was never
// built with a kind can then name it, list its commands, and send them.
import { z } from 'zod';
import type { ActorKind } from '../actors/kind.js';

export interface KindDescription {
  readonly kind: string;
  readonly stateVersion: number;
  /** By command: its payload's JSON Schema (as the client sends it). */
  readonly commands: Readonly<Record<string, unknown>>;
  readonly queries: readonly string[];
}

function payloadSchema(schema: z.ZodType | undefined): unknown {
  if (!schema) return {};
  // Refinements (a text check, say) have no JSON Schema form: described as far as they can be.
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
}

export function describeKinds(kinds: ReadonlyMap<string, ActorKind>): KindDescription[] {
  return [...kinds.values()].map((kind) => ({
    kind: kind.kind,
    stateVersion: kind.machineVersion,
    commands: Object.fromEntries([...kind.commands].map((command) => [command, payloadSchema(kind.commandSchemas?.[command])])),
    queries: [...kind.queries],
  }));
}
