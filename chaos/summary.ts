// The table a chaos run ends with: what was sent, what was injected, how fast the system
// answered again, and each invariant with its verdict.
import { table } from '../src/format.js';
import type { ChaosResult, Percentiles } from './driver.js';
import { FAULT_KINDS } from './faults.js';

const ms = (p: Percentiles): string => (p.n === 0 ? '-' : `p50 ${p.p50} ms, p99 ${p.p99} ms (n=${p.n})`);

export function formatSummary(r: ChaosResult): string {
  const s = r.workload;
  const rejections = Object.entries(s.rejections)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  const rows: [string, unknown][] = [
    ['seed / minutes / nodes / databases', `${r.seed} / ${r.minutes} / ${r.nodes} / ${r.databases}`],
    ['commands (unique message ids)', s.commands],
    ['requests sent (retries and copies incl.)', s.deliveries],
    ['acknowledged', s.acks],
    ['unacknowledged (applied / not)', `${r.unacknowledged} (${r.unackedApplied} / ${r.unacknowledged - r.unackedApplied})`],
    ['retries (same message id)', s.retries],
    ['duplicate deliveries injected (late)', `${s.duplicateCopies} (${s.lateCopies})`],
    ['duplicates suppressed', s.duplicatesSuppressed],
    ['rejections', rejections || 'none'],
    ['events journaled', r.eventsJournaled],
    ...FAULT_KINDS.map((k): [string, unknown] => [`fault ${k}`, `${r.faults[k]} injected, recovery ${ms(r.recoveryMs[k])}`]),
    ['recovery, all faults', ms(r.recoveryMs.all)],
    ['node starts', r.nodeStarts],
    ['node error log lines (outages aside)', r.nodeErrors.length === 0 ? 'none' : r.nodeErrors.slice(0, 3).join('; ')],
    ['time', `${r.seconds} s`],
  ];
  const invariants = r.invariants.map((i) => [i.name, i.ok ? 'PASS' : 'FAIL', i.detail]);
  return [
    table(['chaos run', ''], rows),
    '',
    table(['invariant', 'result', 'detail'], invariants),
    '',
    ...(r.keptDatabase ? [`database kept for forensics: ${r.keptDatabase}`] : []),
    r.ok ? `result: OK (seed ${r.seed})` : `result: FAILED (reproduce: ${r.reproduce})`,
  ].join('\n');
}
