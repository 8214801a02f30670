// An inventory actor's open reservations: a persistent B+ tree ordered by reservation id. Each
// change copies only the O(log n) nodes on its path (the rest is shared with the state before),
// so a hot SKU with 100k open reservations steps as fast as an empty one, every state stays
// immutable (replay, batches decided ahead of their commit, time travel), and a page of
// reservations in id order is a seek, not a sort.
import { createRequire } from 'node:module';

// sorted-btree is CommonJS with its class on `default`; ESM default-import interop differs between
// Node and bundlers (vitest), so it is required, the one way every loader agrees on.
const require = createRequire(import.meta.url);
type BTree<K, V> = import('sorted-btree').default<K, V>;
const BTree = (require('sorted-btree') as typeof import('sorted-btree')).default;
const { bulkLoad } = require('sorted-btree/extended/bulkLoad.js') as typeof import('sorted-btree/extended/bulkLoad.js');
const diffAgainst = (require('sorted-btree/extended/diffAgainst.js') as typeof import('sorted-btree/extended/diffAgainst.js')).default;

export interface Reservation {
  readonly qty: number;
  readonly workOrderId?: string;
  /** A hold's deadline (ms since the epoch): when it expires unless consumed or released first. */
  readonly expiresAt?: number;
}

/** The persisted form: three parallel arrays in id order (fast to parse, compact, readable with SQL). */
export interface PersistedReservations {
  readonly ids: readonly string[];
  readonly qty: readonly number[];
  /** null where a reservation has no work order. */
  readonly workOrderId: readonly (string | null)[];
  /** Deadlines, null where a hold has none; absent when no reservation has one (states from before holds). */
  readonly expiresAt?: readonly (number | null)[];
}

// Plain code-unit order, as JavaScript's `<` compares strings: the same on every machine.
const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const NODE_SIZE = 64;

/** One open reservation as a page lists it. */
export interface ListedReservation extends Reservation {
  readonly id: string;
}

export interface ReservationPage {
  /** In id order: an array, since an object would list ids such as "0" and "10" first. */
  readonly reservations: readonly ListedReservation[];
  /** The `after` of the next page, when there is one. */
  readonly next?: string;
}

export class OpenReservations {
  private constructor(
    private readonly tree: BTree<string, Reservation>,
    /** Sum of every open reservation's qty: what `reserved` must equal. */
    private sum: number,
    /** A draft (see `draft`) changes in place; a state never does. */
    private drafting = false,
  ) {
    if (!drafting) tree.freeze(); // a state is never changed in place: every change is a new tree
  }

  get total(): number {
    return this.sum;
  }

  /**
   * A private copy that changes in place, for folding many events at once (replay): each change
   * copies the nodes it touches only the first time (the original stays as it was), instead of a
   * path per event. Only its folder holds it; `seal` makes it a state again.
   */
  draft(): OpenReservations {
    return new OpenReservations(this.tree.clone(), this.sum, true);
  }

  /** The draft as a state: frozen, never changed again. A state seals to itself. */
  seal(): OpenReservations {
    if (!this.drafting) return this;
    this.drafting = false;
    this.tree.freeze();
    return this;
  }

  static readonly empty = new OpenReservations(new BTree<string, Reservation>(undefined, byId, NODE_SIZE), 0);

  get size(): number {
    return this.tree.size;
  }

  has(id: string): boolean {
    return this.tree.has(id);
  }

  get(id: string): Reservation | undefined {
    return this.tree.get(id);
  }

  with(id: string, reservation: Reservation): OpenReservations {
    const before = this.tree.get(id)?.qty ?? 0;
    if (this.drafting) {
      this.tree.set(id, reservation, true);
      this.sum += reservation.qty - before;
      return this;
    }
    return new OpenReservations(this.tree.with(id, reservation, true), this.sum - before + reservation.qty);
  }

  without(id: string): OpenReservations {
    const gone = this.tree.get(id);
    if (!gone) return this;
    if (this.drafting) {
      this.tree.delete(id);
      this.sum -= gone.qty;
      return this;
    }
    return new OpenReservations(this.tree.without(id), this.sum - gone.qty);
  }

  /** Up to `limit` reservations with ids after `after`, in id order. */
  page(after: string | undefined, limit: number): ReservationPage {
    const reservations: ListedReservation[] = [];
    let more = false;
    for (const [id, reservation] of this.tree.entries(after)) {
      if (after !== undefined && id === after) continue;
      if (reservations.length === limit) {
        more = true;
        break;
      }
      reservations.push({ id, ...reservation });
    }
    return more ? { reservations, next: reservations[reservations.length - 1]!.id } : { reservations };
  }

  *entries(): IterableIterator<[string, Reservation]> {
    yield* this.tree.entries();
  }

  persist(): PersistedReservations {
    const ids: string[] = [];
    const qty: number[] = [];
    const workOrderId: (string | null)[] = [];
    const expiresAt: (number | null)[] = [];
    let deadlines = false;
    for (const [id, reservation] of this.tree.entries()) {
      ids.push(id);
      qty.push(reservation.qty);
      workOrderId.push(reservation.workOrderId ?? null);
      expiresAt.push(reservation.expiresAt ?? null);
      if (reservation.expiresAt !== undefined) deadlines = true;
    }
    // Without holds the persisted form is exactly what it was before they existed (same hashes).
    return deadlines ? { ids, qty, workOrderId, expiresAt } : { ids, qty, workOrderId };
  }

  /** Rebuilds from the persisted form in one pass; refuses one that is not in strict id order (a snapshot that lies). */
  static restore(persisted: PersistedReservations): OpenReservations {
    const { ids, qty, workOrderId, expiresAt } = persisted;
    if (ids.length !== qty.length || ids.length !== workOrderId.length || (expiresAt && expiresAt.length !== ids.length)) {
      throw new Error('persisted reservations have arrays of different lengths');
    }
    const values: Reservation[] = new Array(ids.length);
    // A reservation of just a quantity is one shared (frozen) object per quantity: values are
    // never changed, and a large actor's activation then allocates, and collects, 100k fewer.
    const plain = new Map<number, Reservation>();
    const plainOf = (qty: number): Reservation => {
      let shared = plain.get(qty);
      if (!shared) plain.set(qty, (shared = Object.freeze({ qty })));
      return shared;
    };
    let total = 0;
    for (let i = 0; i < ids.length; i += 1) {
      const wo = workOrderId[i];
      const amount = qty[i]!;
      if (!Number.isSafeInteger(amount) || amount <= 0) throw new Error(`persisted reservation ${ids[i]} holds ${String(amount)}, not a positive whole quantity`);
      const deadline = expiresAt?.[i] ?? null;
      if (deadline !== null && !Number.isSafeInteger(deadline)) throw new Error(`persisted reservation ${ids[i]} expires at ${String(deadline)}, not a time`);
      if ((wo === null || wo === undefined) && deadline === null) values[i] = plainOf(amount);
      else values[i] = { qty: amount, ...(wo === null || wo === undefined ? {} : { workOrderId: wo }), ...(deadline === null ? {} : { expiresAt: deadline }) };
      total += amount;
    }
    // bulkLoad refuses keys out of strict ascending order.
    return new OpenReservations(bulkLoad([...ids], values, NODE_SIZE, byId), total);
  }

  /**
   * The reservations that differ from `before`'s, as `[id, before, after]` (undefined where absent),
   * in id order. Nodes the two trees share (a state and one derived from it) are skipped unread.
   */
  changesSince(before: OpenReservations): [string, Reservation | undefined, Reservation | undefined][] {
    const changes: [string, Reservation | undefined, Reservation | undefined][] = [];
    diffAgainst(
      this.tree,
      before.tree,
      (id, now) => void changes.push([id, undefined, now]),
      (id, then) => void changes.push([id, then, undefined]),
      (id, now, then) => void changes.push([id, then, now]),
    );
    return changes.sort((a, b) => byId(a[0], b[0]));
  }
}
