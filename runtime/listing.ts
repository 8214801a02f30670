// A node's listing of its active actors, for `ppos actors`, `ppos verify --live` and the
// dashboard. Anyone with the operator role may ask, as often as they like: the listing is
// taken at most once per TTL however many ask, and every answer is one bounded page.
import type { ActiveActor, ActorRegistry } from './registry.js';

export const LISTING_TTL_MS = 1_000;
export const DEFAULT_PAGE = 500;
export const MAX_PAGE = 5_000;

export interface ListingRequest {
  /** Page by `kind/id`, after this key (default: from the first). */
  readonly after?: string;
  readonly limit?: number;
  /** `busiest`: the actors with mail waiting, then the most recently used (no paging). */
  readonly order?: 'id' | 'busiest';
}

export interface ListingPage {
  /** How old the listing is, ms: it is taken at most once per TTL. */
  readonly ageMs: number;
  readonly total: number;
  readonly actors: readonly ActiveActor[];
  /** The `after` of the next page, when there is one. */
  readonly next?: string;
}

const keyOf = (actor: ActiveActor): string => `${actor.kind}/${actor.id}`;

/** The request body → a request; anything unreadable is the default first page. */
export function parseListingRequest(data: Uint8Array): ListingRequest {
  if (data.length === 0 || data.length > 1024) return {};
  try {
    const body = JSON.parse(Buffer.from(data).toString('utf8')) as Record<string, unknown>;
    return {
      ...(typeof body.after === 'string' ? { after: body.after } : {}),
      ...(typeof body.limit === 'number' && Number.isSafeInteger(body.limit) && body.limit > 0 ? { limit: Math.min(body.limit, MAX_PAGE) } : {}),
      ...(body.order === 'busiest' ? { order: 'busiest' as const } : {}),
    };
  } catch {
    return {};
  }
}

export class ActorListing {
  private taken: { at: number; byRecency: ActiveActor[]; byKey: ActiveActor[] } | undefined;

  constructor(private readonly registry: ActorRegistry) {}

  page(request: ListingRequest): ListingPage {
    const { byRecency, byKey, at } = this.listing();
    const ageMs = Date.now() - at;
    const limit = request.limit ?? DEFAULT_PAGE;
    if (request.order === 'busiest') return { ageMs, total: byRecency.length, actors: busiest(byRecency, limit) };
    const start = request.after === undefined ? 0 : firstAfter(byKey, request.after);
    const actors = byKey.slice(start, start + limit);
    const more = start + limit < byKey.length;
    return { ageMs, total: byKey.length, actors, ...(more ? { next: keyOf(actors[actors.length - 1]!) } : {}) };
  }

  private listing(): { at: number; byRecency: ActiveActor[]; byKey: ActiveActor[] } {
    const now = Date.now();
    if (!this.taken || now - this.taken.at > LISTING_TTL_MS) {
      const byRecency = this.registry.list();
      const byKey = [...byRecency].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
      this.taken = { at: now, byRecency, byKey };
    }
    return this.taken;
  }
}

/** Index of the first actor whose key sorts after `after` (binary search). */
function firstAfter(byKey: readonly ActiveActor[], after: string): number {
  let low = 0;
  let high = byKey.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (keyOf(byKey[mid]!) <= after) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** The actors with mail waiting (deepest first), then the most recently used, at most `limit`. */
function busiest(byRecency: readonly ActiveActor[], limit: number): ActiveActor[] {
  const waiting = byRecency.filter((a) => a.mailboxDepth > 0).sort((a, b) => b.mailboxDepth - a.mailboxDepth);
  const picked = new Set(waiting.slice(0, limit));
  // list() is in recency order, least recently used first.
  for (let i = byRecency.length - 1; i >= 0 && picked.size < limit; i -= 1) picked.add(byRecency[i]!);
  return [...picked];
}
