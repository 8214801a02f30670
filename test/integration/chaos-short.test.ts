// The short chaos profile inside `npm test`: one seeded minute of the full suite (real node
// processes, SIGKILLs, PostgreSQL backends terminated and refused, NATS restarted, a paused
// node, duplicate and late deliveries), then every invariant of `npm run chaos` must hold.
// Seed 1 is the run that found the settled-saga duplicate bug (see chaos-regressions.test.ts).
// A second minute runs two nodes over a journal spread over two databases (issue 18), with cuts
// of one database for every node among the faults.
import { describe, expect, it } from 'vitest';
import { runChaos } from '../../chaos/driver.js';
import { formatSummary } from '../../chaos/summary.js';
import { faultKindsFor } from '../../chaos/faults.js';

const SEED = Number(process.env.PPOS_CHAOS_SEED ?? 1);
const MINUTES = Number(process.env.PPOS_CHAOS_MINUTES ?? 1);

async function minuteOfChaos(seed: number, nodes: number, databases: number): Promise<void> {
  const progress: string[] = [];
  const result = await runChaos({ seed, minutes: MINUTES, nodes, databases, log: (line) => progress.push(line) });
  const summary = `${progress.join('\n')}\n\n${formatSummary(result)}`;
  expect(result.invariants.filter((i) => !i.ok), summary).toEqual([]);
  for (const kind of faultKindsFor(databases)) expect(result.faults[kind], `${kind} injected\n${summary}`).toBeGreaterThan(0);
  expect(result.workload.duplicateCopies, summary).toBeGreaterThan(0);
  expect(result.workload.acks, summary).toBeGreaterThan(0);
  expect(result.ok, summary).toBe(true);
}

// Bounds a hung run only; nothing here asserts how fast anything is.
const HUNG_AFTER_MS = 10 * 60_000;

describe('chaos, short seeded profile', () => {
  it(`keeps every acknowledged effect exactly once and every journal trusted through a minute of faults (seed ${SEED})`, () => minuteOfChaos(SEED, 1, 1), HUNG_AFTER_MS);

  it(
    'two nodes over two databases: the same invariants, each cut of one database local to its actors, sagas across databases settled (seed 9001)',
    () => minuteOfChaos(Number(process.env.PPOS_CHAOS_DATABASES_SEED ?? 9001), 2, 2),
    HUNG_AFTER_MS,
  );
});
