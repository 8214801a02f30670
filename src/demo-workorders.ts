// The work order part of `ppos demo`: work orders through their whole life against the same
// inventory, with shortages (compensated), completions and cancellations, each command
// delivered at least once with the same message id.
import type { ActorRef } from '../persistence/journal.js';
import type { Reply } from '../runtime/envelope.js';
import type { PposClient } from './client.js';
import { newId } from './config.js';
import type { Random } from './random.js';

export type WorkOrderTally = Record<string, number>;

export interface WorkOrderDrive {
  readonly client: PposClient;
  readonly random: Random;
  readonly run: string;
  readonly skus: readonly string[];
  readonly count: number;
  readonly deliver: (ref: ActorRef, type: string, payload: Record<string, unknown>, messageId?: string) => Promise<Reply>;
  readonly progress: (text: string) => void;
}

export async function driveWorkOrders(drive: WorkOrderDrive): Promise<WorkOrderTally> {
  const { random, run, skus, deliver } = drive;
  const tally: WorkOrderTally = { created: 0, released: 0, short: 0, completed: 0, cancelled: 0 };
  const stages = ['kitting', 'machining', 'assembly', 'inspection'];
  const orders = Array.from({ length: drive.count }, (_, i) => `wo-${run}-${String(i).padStart(3, '0')}`);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(16, orders.length) }, async () => {
      while (next < orders.length) {
        const id = orders[next++]!;
        const ref = { kind: 'workorder', id };
        // Hot SKUs (low indexes) make some orders run short, as on a real shop floor.
        const lines = new Map<string, number>();
        for (let i = random.int(1, 4); i > 0; i -= 1) lines.set(skus[random.skewed(skus.length, 3)]!, random.int(1, 12));
        await deliver(ref, 'Create', { bom: [...lines].map(([sku, qty]) => ({ sku, qty })), stages });
        tally.created! += 1;
        // Delivered twice on purpose: the second answer is the first, and nothing is reserved twice.
        const releaseId = newId();
        const [released] = await Promise.all([deliver(ref, 'Release', {}, releaseId), deliver(ref, 'Release', {}, releaseId)]);
        if (!released.ok) {
          tally.short! += 1;
          continue;
        }
        tally.released! += 1;
        if (random.chance(0.25)) {
          await deliver(ref, 'Cancel', {});
          tally.cancelled! += 1;
          continue;
        }
        await deliver(ref, 'Start', {});
        for (const stage of stages.slice(1)) await deliver(ref, 'AdvanceStage', { to: stage });
        const done = await deliver(ref, 'Complete', {});
        if (done.ok) tally.completed! += 1;
      }
    }),
  );
  drive.progress(
    `work orders: ${tally.created} created, ${tally.released} released (${tally.short} short, compensated), ${tally.completed} completed, ${tally.cancelled} cancelled`,
  );
  return tally;
}
