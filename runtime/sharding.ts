// Actor ids map to a fixed number of shards by a stable hash, and each shard's desired owner
// among the live nodes is chosen by rendezvous hashing: every node computes the same answer
// from the same member list, and a node joining or leaving moves only its share of shards.
import type { ActorRef } from '../persistence/journal.js';

/** FNV-1a, 32 bit: stable across processes, versions and platforms. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

export function shardOf(ref: ActorRef, shardCount: number): number {
  return fnv1a(`${ref.kind}/${ref.id}`) % shardCount;
}

/** The node that should own `shard` among `nodes` (highest random weight); null with no nodes. */
export function desiredOwner(shard: number, nodes: readonly string[]): string | null {
  let best: string | null = null;
  let bestWeight = -1;
  for (const node of nodes) {
    const weight = fnv1a(`${shard}:${node}`);
    if (weight > bestWeight || (weight === bestWeight && best !== null && node < best)) {
      best = node;
      bestWeight = weight;
    }
  }
  return best;
}
