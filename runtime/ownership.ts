// Who may apply commands to an actor. Routing asks this before a message enters a mailbox;
// the journal's epoch check enforces it (a stale owner cannot append).
import type { ActorRef } from '../persistence/journal.js';
import { shardOf } from './sharding.js';

export type Route =
  | { readonly local: true; readonly shard: number; readonly epoch: number }
  /** `forwardTo`: the incarnation (process) holding the shard's lease, or null while the shard moves. */
  | { readonly local: false; readonly shard: number; readonly forwardTo: string | null };

export interface Fence {
  readonly shard: number;
  readonly epoch: number;
}

export interface Ownership {
  route(ref: ActorRef): Route;
  /** The actor's shard and the epoch this node's appends carry (one that never matches when not held). */
  fence(ref: ActorRef): Fence;
  /** The shards this node holds now (whose timers it fires). */
  heldShards(): number[];
}

/**
 * Owns every actor with epoch 0, valid only on a journal that has no shard leases at all
 * (the journal refuses epoch 0 once leases exist). For tools and tests of the bare runtime.
 */
export class SingleNodeOwnership implements Ownership {
  constructor(private readonly shardCount = 256) {}

  route(ref: ActorRef): Route {
    return { local: true, shard: shardOf(ref, this.shardCount), epoch: 0 };
  }

  fence(ref: ActorRef): Fence {
    return { shard: shardOf(ref, this.shardCount), epoch: 0 };
  }

  heldShards(): number[] {
    return Array.from({ length: this.shardCount }, (_, shard) => shard);
  }
}
