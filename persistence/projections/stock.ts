// The `stock` projection (CONTRACT.md section 8): one row per inventory actor, its onHand,
// reserved, available and open reservations, for questions across SKUs ("which are below 10
// available?"). A batch is folded in memory per SKU and written with four statements, whatever
// its size: Released and Consumed events do not carry their quantity, so the quantities of the
// open reservations are kept in a side table, read back by the DELETE that closes them.
import { z } from 'zod';
import { actorId } from '../../actors/schema.js';
import type { FedEvent, Queryable } from '../journal-feed.js';
import { decodeCursor, encodeCursor, whereParser, type ProjectionHandler, type QueryPage, type Tables } from './projection.js';

const TABLES = { stock: 'ppos_proj_stock', reservations: 'ppos_proj_stock_reservations' } as const;

/** What a batch does to one SKU. */
interface SkuChange {
  /** Adjusted sets onHand outright: from then on the batch adds to that value. */
  onHandSet: boolean;
  onHand: number;
  reserved: number;
  open: number;
  updatedAt: Date;
  /** Opened in this batch and still open at its end. */
  readonly opened: Map<string, number>;
  /**
   * Opened before this batch and closed in it: quantities read back from the side table.
   * `lowersOnHand`: a consume not overridden by a later Adjusted of the same batch.
   */
  readonly closedEarlier: { readonly reservationId: string; lowersOnHand: boolean }[];
}

function foldBatch(events: readonly FedEvent[]): Map<string, SkuChange> {
  const changes = new Map<string, SkuChange>();
  for (const fed of events) {
    if (fed.kind !== 'inventory') continue;
    let change = changes.get(fed.id);
    if (!change) {
      change = { onHandSet: false, onHand: 0, reserved: 0, open: 0, updatedAt: fed.recordedAt, opened: new Map(), closedEarlier: [] };
      changes.set(fed.id, change);
    }
    change.updatedAt = fed.recordedAt;
    const e = fed.event;
    switch (e.type) {
      case 'Received':
        change.onHand += e.qty as number;
        break;
      case 'Adjusted':
        change.onHandSet = true;
        change.onHand = e.onHand as number;
        // The count includes whatever was consumed before it.
        for (const closed of change.closedEarlier) closed.lowersOnHand = false;
        break;
      case 'Reserved':
        change.opened.set(e.reservationId as string, e.qty as number);
        change.reserved += e.qty as number;
        change.open += 1;
        break;
      case 'Released':
      case 'HoldExpired':
      case 'Consumed': {
        const id = e.reservationId as string;
        const consumed = e.type === 'Consumed';
        change.open -= 1;
        const qty = change.opened.get(id);
        if (qty === undefined) {
          change.closedEarlier.push({ reservationId: id, lowersOnHand: consumed });
          break;
        }
        change.opened.delete(id);
        change.reserved -= qty;
        if (consumed) change.onHand -= qty;
        break;
      }
    }
  }
  return changes;
}

async function apply(events: readonly FedEvent[], db: Queryable, tables: Tables): Promise<void> {
  const changes = foldBatch(events);
  if (changes.size === 0) return;
  const closing = [...changes].flatMap(([sku, c]) => c.closedEarlier.map((r) => [sku, r.reservationId] as const));
  if (closing.length > 0) {
    const closed = await db.query(
      `DELETE FROM ${tables.reservations} r USING unnest($1::text[], $2::text[]) AS c(id, reservation_id)
       WHERE r.id = c.id AND r.reservation_id = c.reservation_id RETURNING r.id, r.reservation_id, r.qty`,
      [closing.map(([sku]) => sku), closing.map(([, id]) => id)],
    );
    const qtyOf = new Map(closed.rows.map((row) => [`${row.id as string}\u0000${row.reservation_id as string}`, Number(row.qty)]));
    for (const [sku, change] of changes) {
      for (const r of change.closedEarlier) {
        const qty = qtyOf.get(`${sku}\u0000${r.reservationId}`) ?? 0;
        change.reserved -= qty;
        if (r.lowersOnHand) change.onHand -= qty;
      }
    }
  }
  const opened = [...changes].flatMap(([sku, c]) => [...c.opened].map(([id, qty]) => [sku, id, qty] as const));
  if (opened.length > 0) {
    await db.query(
      `INSERT INTO ${tables.reservations} (id, reservation_id, qty) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
       ON CONFLICT (id, reservation_id) DO UPDATE SET qty = EXCLUDED.qty`,
      [opened.map(([sku]) => sku), opened.map(([, id]) => id), opened.map(([, , qty]) => qty)],
    );
  }
  const rows = [...changes];
  // MERGE: the update needs the batch's own columns (was onHand set outright?), which an
  // upsert's EXCLUDED row does not carry. Only the projection's owner writes these tables.
  await db.query(
    `MERGE INTO ${tables.stock} s
     USING (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int[], $5::timestamptz[], $6::boolean[])
              AS c(id, on_hand, reserved, open_reservations, updated_at, set_on_hand)) c
     ON s.id = c.id
     WHEN MATCHED THEN UPDATE SET
       on_hand = CASE WHEN c.set_on_hand THEN c.on_hand ELSE s.on_hand + c.on_hand END,
       reserved = s.reserved + c.reserved,
       available = CASE WHEN c.set_on_hand THEN c.on_hand ELSE s.on_hand + c.on_hand END - (s.reserved + c.reserved),
       open_reservations = s.open_reservations + c.open_reservations,
       updated_at = c.updated_at
     WHEN NOT MATCHED THEN INSERT (id, on_hand, reserved, available, open_reservations, updated_at)
       VALUES (c.id, c.on_hand, c.reserved, c.on_hand - c.reserved, c.open_reservations, c.updated_at)`,
    [
      rows.map(([sku]) => sku),
      rows.map(([, c]) => c.onHand),
      rows.map(([, c]) => c.reserved),
      rows.map(([, c]) => c.open),
      rows.map(([, c]) => c.updatedAt.toISOString()),
      rows.map(([, c]) => c.onHandSet),
    ],
  );
}

const whereSchema = z
  .object({
    id: actorId.optional(),
    availableBelow: z.number().int().optional(),
  })
  .strict();

async function query(db: Queryable, where: Record<string, unknown>, limit: number, cursor: string | undefined): Promise<QueryPage> {
  const after = cursor === undefined ? null : decodeCursor(cursor);
  const result = await db.query(
    `SELECT id, on_hand, reserved, available, open_reservations, updated_at FROM ${TABLES.stock}
     WHERE ($1::text IS NULL OR id = $1) AND ($2::bigint IS NULL OR available < $2) AND ($3::text IS NULL OR id > $3)
     ORDER BY id LIMIT $4`,
    [where.id ?? null, where.availableBelow ?? null, after, limit + 1],
  );
  const rows = result.rows.slice(0, limit).map((row) => ({
    id: row.id as string,
    onHand: Number(row.on_hand),
    reserved: Number(row.reserved),
    available: Number(row.available),
    openReservations: row.open_reservations as number,
    updatedAt: (row.updated_at as Date).toISOString(),
  }));
  return result.rows.length > limit ? { rows, next: encodeCursor(rows[rows.length - 1]!.id) } : { rows };
}

async function rowsByKey(db: Queryable, tables: Tables): Promise<Map<string, string>> {
  const rows = new Map<string, string>();
  const stock = await db.query(`SELECT id, on_hand, reserved, available, open_reservations FROM ${tables.stock}`);
  for (const row of stock.rows) rows.set(`stock/${row.id as string}`, JSON.stringify([Number(row.on_hand), Number(row.reserved), Number(row.available), row.open_reservations]));
  const reservations = await db.query(`SELECT id, reservation_id, qty FROM ${tables.reservations}`);
  for (const row of reservations.rows) rows.set(`reservation/${row.id as string}/${row.reservation_id as string}`, String(row.qty));
  return rows;
}

export const stockProjection: ProjectionHandler = {
  name: 'stock',
  tables: TABLES,
  apply,
  query,
  parseWhere: whereParser(whereSchema),
  rowsByKey,
};
