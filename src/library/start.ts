// Starting a node from code: any set of kinds (the built-in ones unless told otherwise), and
// the same options and defaults as `ppos start` (its flags, camel-cased, as strings or numbers).
import type { Logger } from 'pino';
import { actorKinds } from '../../actors/index.js';
import type { ActorKind } from '../../actors/kind.js';
import { resolveConfig, type RawOptions } from '../config.js';
import { createLogger } from '../logger.js';
import { startNode, type RunningNode } from '../node.js';

/** `ppos start`'s options: each flag camel-cased (`--snapshot-every` → `snapshotEvery`). */
export type NodeOptions = { readonly [K in keyof RawOptions]?: RawOptions[K] | number };

export interface StartOptions extends NodeOptions {
  /** The kinds this node hosts besides (or, with `builtIns: false`, instead of) inventory and workorder. */
  readonly kinds?: readonly ActorKind[];
  /** Host the built-in kinds too (default true). */
  readonly builtIns?: boolean;
  /** Where the node logs (default: pino's JSON lines on stdout at info, as `ppos start`). */
  readonly logger?: Logger;
  /** Environment to read PPOS_* defaults from (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

export async function startPposNode(options: StartOptions = {}): Promise<RunningNode> {
  const { kinds = [], builtIns = true, logger, env, ...flags } = options;
  const hosted = new Map<string, ActorKind>(builtIns ? actorKinds : []);
  for (const kind of kinds) {
    if (hosted.has(kind.kind)) throw new Error(`two kinds named ${kind.kind}`);
    hosted.set(kind.kind, kind);
  }
  if (hosted.size === 0) throw new Error('a node needs at least one kind');
  const raw = Object.fromEntries(Object.entries(flags).map(([key, value]) => [key, typeof value === 'number' ? String(value) : value])) as RawOptions;
  const config = resolveConfig(raw, env ?? process.env);
  return startNode(config, logger ?? createLogger({ pretty: false }), { kinds: hosted });
}
