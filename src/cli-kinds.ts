// The actor kinds a CLI command knows: the built-in ones, plus a user's own from a module named
// by `--kinds <module>` (or PPOS_KINDS), so that `ppos start` hosts them and `get`, `history`,
// `state --at`, `verify` and the dashboard read their actors. The module's exports that are
// actor kinds (a `defineKind` result, or any object shaped as one) are taken; nothing else is.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { actorKinds } from '../actors/index.js';
import type { ActorKind } from '../actors/kind.js';
import { UsageError } from './config.js';

let known: ReadonlyMap<string, ActorKind> = actorKinds;

/** The kinds this command knows (the built-in ones until `loadCliKinds` added others). */
export const cliKinds = (): ReadonlyMap<string, ActorKind> => known;

const isActorKind = (value: unknown): value is ActorKind =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as ActorKind).kind === 'string' &&
  typeof (value as ActorKind).decide === 'function' &&
  typeof (value as ActorKind).parseCommand === 'function' &&
  typeof (value as ActorKind).machine === 'object';

/** Adds the kinds `module` exports (a path or file URL; relative to the working folder). */
export async function loadCliKinds(module: string | undefined): Promise<void> {
  if (module === undefined || module === '') return;
  const url = /^file:/.test(module) ? module : pathToFileURL(resolve(module)).href;
  let exported: Record<string, unknown>;
  try {
    exported = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`--kinds ${module}: cannot load it: ${(error as Error).message}`);
  }
  const found = new Map(actorKinds);
  for (const value of Object.values(exported)) {
    if (!isActorKind(value) || found.get(value.kind) === value) continue;
    if (found.has(value.kind)) throw new UsageError(`--kinds ${module}: kind ${value.kind} is defined twice`);
    found.set(value.kind, value);
  }
  if (found.size === actorKinds.size) throw new UsageError(`--kinds ${module}: exports no actor kind (export the result of defineKind)`);
  known = found;
}
