// What running nodes hold in memory, for `ppos verify` to compare with the journal's replay:
// the active actors listed by every node (ppos.nodes.actors), then each one's committed state
// from its live inspection (ppos.inspect.<kind>.<id>). Passivated actors have no memory to check.
import { refKey, type ActorRef } from '../persistence/journal.js';
import type { LiveState } from '../runtime/verify.js';
import { LISTING_TTL_MS } from '../runtime/listing.js';
import type { NodeActors, PposClient } from './client.js';

export interface LiveNodes {
  /** Nodes that answered the listing. */
  readonly nodes: number;
  /** Active actors across them. */
  readonly active: number;
  liveState(ref: ActorRef): Promise<LiveState | null>;
}

export async function liveNodes(client: PposClient, waitMs = 3_000): Promise<LiveNodes> {
  // Up to 3 s for a busy node's listing (one missed would leave its actors unchecked, and the
  // verdict trusted), done 300 ms after the last one came.
  const list = (): Promise<NodeActors[]> => client.activeActors(waitMs, 300).catch(() => []); // no responders: nothing live
  const asked = Date.now();
  let listings = await list();
  // A node answers from a listing taken up to a second earlier: one taken before this verify
  // began can miss an actor activated since (then compared with nothing). Ask again once it expired.
  if (listings.some((listing) => (listing.ageMs ?? 0) > Date.now() - asked)) {
    await new Promise((resolve) => setTimeout(resolve, LISTING_TTL_MS + 50));
    listings = await list();
  }
  const active = new Set<string>();
  for (const listing of listings) {
    for (const actor of listing.actors) active.add(refKey(actor));
  }
  return {
    nodes: listings.length,
    active: active.size,
    async liveState(ref) {
      if (!active.has(refKey(ref))) return null;
      let view: Record<string, unknown>;
      try {
        // The whole state by its hash: an inspection's context is a bounded page of it.
        view = await client.inspect(ref.kind, ref.id, 5_000, { hash: true });
      } catch {
        return null; // the node went away meanwhile: nothing live to compare
      }
      if (view.status !== 'active' || typeof view.seq !== 'number' || typeof view.stateHash !== 'string') return null;
      return { seq: view.seq, stateHash: view.stateHash };
    },
  };
}
