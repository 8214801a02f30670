// The work order actor: a bill of materials, ordered stages, and the sagas that hold, consume
// or free its material at the inventory actors. Everything the sagas still owe is derived from
// journaled state (`pendingEffects`), so a work order reactivated mid-saga simply carries on.
import { assign, setup, type AnyMachineSnapshot } from 'xstate';
import { z } from 'zod';
import { workOrderReservations } from './cross-invariants.js';
import { type ActorKind, type AnswerPayload, type Decision, type InvariantFailure, type OutboundCommand, type SagaSettlement } from './kind.js';
import { actorId, emptyPayload, parseWith, positiveQty, safeText, type PayloadSchemas } from './schema.js';

export type LineStatus =
  | 'pending' // not yet asked for
  | 'reserving'
  | 'held'
  | 'short'
  | 'releasing'
  | 'released'
  | 'consuming'
  | 'consumed'
  | 'consume_refused';

export interface Line {
  readonly sku: string;
  readonly qty: number;
  readonly reservationId: string;
  readonly status: LineStatus;
  readonly reason?: string;
}

export type SagaKind = 'release' | 'complete' | 'cancel';

export interface WorkOrderContext {
  /** The work order's own id (reservation ids are `<id>:<line index>`). */
  readonly id: string;
  readonly bom: readonly { readonly sku: string; readonly qty: number }[];
  readonly stages: readonly string[];
  /** Index into `stages` once started. */
  readonly stage: number | null;
  readonly lines: readonly Line[];
  /** Release attempts so far; part of every saga message id, so a new attempt is never deduplicated against an old one. */
  readonly attempt: number;
  /** The open saga and the client message that started it (its reply waits for the saga). */
  readonly saga: { readonly kind: SagaKind; readonly requestId: string } | null;
  /** How the last saga ended, for the deferred reply. */
  readonly lastOutcome: SagaSettlement['outcome'] | null;
}

export type WorkOrderEvent =
  | { type: 'Created'; workOrderId: string; bom: { sku: string; qty: number }[]; stages: string[] }
  | { type: 'ReleaseStarted'; requestId: string }
  | { type: 'Started' }
  | { type: 'StageAdvanced'; to: string }
  | { type: 'CompleteStarted'; requestId: string }
  | { type: 'CancelStarted'; requestId: string }
  | { type: 'LineReserved'; line: number }
  | { type: 'LineShort'; line: number; reason: string }
  | { type: 'LineReleased'; line: number }
  | { type: 'LineConsumed'; line: number }
  | { type: 'LineConsumeRefused'; line: number; reason: string };

const stageName = safeText(1, 64);

/** The tag each saga step carries, echoed in its answer (the runtime checks answers against it). */
const stepTag = z.object({ step: z.enum(['reserve', 'release', 'consume']), line: z.number().int().nonnegative(), attempt: z.number().int().positive() }).strict();
type StepAnswer = Omit<AnswerPayload, 'tag'> & { readonly tag: z.infer<typeof stepTag> };

const payloads = {
  Create: z
    .object({
      bom: z.array(z.object({ sku: actorId, qty: positiveQty }).strict()).min(1, 'needs at least one line').max(200),
      stages: z
        .array(stageName)
        .min(1, 'needs at least one stage')
        .max(100)
        .refine((stages) => new Set(stages).size === stages.length, 'stage names must be unique'),
    })
    .strict(),
  Release: emptyPayload,
  Start: emptyPayload,
  AdvanceStage: z.object({ to: stageName }).strict(),
  Complete: emptyPayload,
  Cancel: emptyPayload,
  Get: emptyPayload,
} satisfies PayloadSchemas;

type Ctx = WorkOrderContext;

/** 128 (a reservation id's limit) minus ':' and a line index of up to three digits (at most 200 lines). */
export const MAX_WORK_ORDER_ID = 124;

const setLines = (lines: readonly Line[], pick: (line: Line, index: number) => Line | null): Line[] =>
  lines.map((line, index) => pick(line, index) ?? line);

const withStatus = (line: Line, status: LineStatus, reason?: string): Line => {
  const { reason: _old, ...rest } = line;
  return reason === undefined ? { ...rest, status } : { ...rest, status, reason };
};

const awaiting = (c: Ctx, status: LineStatus): boolean => c.lines.some((l) => l.status === status);

const lineIs = (c: Ctx, line: number, status: LineStatus): boolean => c.lines[line]?.status === status;

export const workOrderMachine = setup({
  types: { context: {} as Ctx, events: {} as WorkOrderEvent },
  guards: {
    reserving: ({ context, event }) => 'line' in event && lineIs(context, event.line, 'reserving'),
    releasing: ({ context, event }) => 'line' in event && lineIs(context, event.line, 'releasing'),
    consuming: ({ context, event }) => 'line' in event && lineIs(context, event.line, 'consuming'),
    allHeld: ({ context }) => context.lines.every((l) => l.status === 'held'),
    // Compensation starts once every reserve has answered and one came back short.
    shortAndAnswered: ({ context }) => !awaiting(context, 'reserving') && awaiting(context, 'short') && awaiting(context, 'held'),
    compensated: ({ context }) => !awaiting(context, 'reserving') && !awaiting(context, 'held') && !awaiting(context, 'releasing'),
    nothingToRelease: ({ context }) => !awaiting(context, 'releasing'),
    nothingToConsume: ({ context }) => !awaiting(context, 'consuming'),
    nextStage: ({ context, event }) =>
      event.type === 'StageAdvanced' && context.stage !== null && context.stages[context.stage + 1] === event.to,
    atLastStage: ({ context }) => context.stage === context.stages.length - 1,
  },
  actions: {
    settle: assign((_, outcome: SagaSettlement['outcome']) => ({ saga: null, lastOutcome: outcome })),
    startCancel: assign(({ context, event }) => ({
      saga: { kind: 'cancel' as const, requestId: event.type === 'CancelStarted' ? event.requestId : '' },
      lastOutcome: null,
      lines: context.lines.map((l) => (l.status === 'held' ? withStatus(l, 'releasing') : l)),
    })),
  },
}).createMachine({
  id: 'workorder',
  initial: 'none',
  context: { id: '', bom: [], stages: [], stage: null, lines: [], attempt: 0, saga: null, lastOutcome: null },
  states: {
    none: {
      on: {
        Created: {
          target: 'draft',
          actions: assign(({ event }) => ({
            id: event.workOrderId,
            bom: event.bom,
            stages: event.stages,
            lines: event.bom.map((l, i): Line => ({ sku: l.sku, qty: l.qty, reservationId: `${event.workOrderId}:${i}`, status: 'pending' })),
          })),
        },
      },
    },
    draft: {
      on: {
        ReleaseStarted: {
          target: 'releasing',
          actions: assign(({ context, event }) => ({
            attempt: context.attempt + 1,
            saga: { kind: 'release' as const, requestId: event.requestId },
            lastOutcome: null,
            lines: context.lines.map((l) => withStatus(l, 'reserving')),
          })),
        },
        CancelStarted: { target: 'cancelling', actions: 'startCancel' },
      },
    },
    releasing: {
      always: [
        { guard: 'allHeld', target: 'released', actions: { type: 'settle', params: { ok: true } } },
        {
          guard: 'shortAndAnswered',
          actions: assign(({ context }) => ({ lines: setLines(context.lines, (l) => (l.status === 'held' ? withStatus(l, 'releasing') : null)) })),
        },
        {
          guard: 'compensated',
          target: 'draft',
          actions: {
            type: 'settle',
            params: ({ context }) => {
              const shortSkus = [...new Set(context.lines.filter((l) => l.status === 'short').map((l) => l.sku))];
              return { ok: false as const, reason: 'SHORTAGE', message: `not enough stock for ${shortSkus.join(', ')}`, details: { shortSkus } };
            },
          },
        },
      ],
      on: {
        LineReserved: { guard: 'reserving', actions: assign(({ context, event }) => ({ lines: setLines(context.lines, (l, i) => (i === event.line ? withStatus(l, 'held') : null)) })) },
        LineShort: {
          guard: 'reserving',
          actions: assign(({ context, event }) => ({ lines: setLines(context.lines, (l, i) => (i === event.line ? withStatus(l, 'short', event.reason) : null)) })),
        },
        LineReleased: { guard: 'releasing', actions: assign(({ context, event }) => ({ lines: setLines(context.lines, (l, i) => (i === event.line ? withStatus(l, 'released') : null)) })) },
      },
    },
    released: {
      on: {
        Started: { target: 'in_progress', actions: assign({ stage: 0 }) },
        CancelStarted: { target: 'cancelling', actions: 'startCancel' },
      },
    },
    in_progress: {
      on: {
        StageAdvanced: { guard: 'nextStage', actions: assign(({ context }) => ({ stage: (context.stage ?? 0) + 1 })) },
        CompleteStarted: {
          guard: 'atLastStage',
          target: 'completing',
          actions: assign(({ context, event }) => ({
            saga: { kind: 'complete' as const, requestId: event.requestId },
            lastOutcome: null,
            lines: context.lines.map((l) => withStatus(l, 'consuming')),
          })),
        },
        CancelStarted: { target: 'cancelling', actions: 'startCancel' },
      },
    },
    completing: {
      // A line the inventory refused to consume (its reservation was released meanwhile) leaves
      // stock it should have taken: the order completes, but its Complete is not a plain success.
      always: [
        {
          guard: 'nothingToConsume',
          target: 'completed',
          actions: {
            type: 'settle',
            params: ({ context }) => {
              const refused = context.lines.flatMap((l, line) => (l.status === 'consume_refused' ? [{ line, sku: l.sku, reason: l.reason }] : []));
              if (refused.length === 0) return { ok: true as const };
              return {
                ok: false as const,
                reason: 'CONSUME_REFUSED',
                message: `completed, but the inventory refused to consume ${refused.map((r) => `line ${r.line} (${r.sku}: ${r.reason ?? 'refused'})`).join(', ')}: that stock was not deducted`,
                details: { refusedLines: refused },
              };
            },
          },
        },
      ],
      on: {
        LineConsumed: { guard: 'consuming', actions: assign(({ context, event }) => ({ lines: setLines(context.lines, (l, i) => (i === event.line ? withStatus(l, 'consumed') : null)) })) },
        LineConsumeRefused: {
          guard: 'consuming',
          actions: assign(({ context, event }) => ({
            lines: setLines(context.lines, (l, i) => (i === event.line ? withStatus(l, 'consume_refused', event.reason) : null)),
          })),
        },
      },
    },
    cancelling: {
      always: [{ guard: 'nothingToRelease', target: 'cancelled', actions: { type: 'settle', params: { ok: true } } }],
      on: {
        LineReleased: { guard: 'releasing', actions: assign(({ context, event }) => ({ lines: setLines(context.lines, (l, i) => (i === event.line ? withStatus(l, 'released') : null)) })) },
      },
    },
    completed: {},
    cancelled: {},
  },
});

const STATUS_OF: Record<string, string> = {
  none: 'none',
  draft: 'draft',
  releasing: 'releasing',
  released: 'released',
  in_progress: 'in_progress',
  completing: 'completing',
  cancelling: 'cancelling',
  completed: 'completed',
  cancelled: 'cancelled',
};

const statusOf = (state: AnyMachineSnapshot): string => STATUS_OF[String(state.value)] ?? String(state.value);
const contextOf = (state: AnyMachineSnapshot): Ctx => state.context as Ctx;

const accept = (event: WorkOrderEvent | null): Decision => ({ outcome: 'accept', event });
const reject = (reason: string, message: string): Decision => ({ outcome: 'reject', reason, message });

function decide(state: AnyMachineSnapshot, command: { type: string; payload: Record<string, unknown> }, workOrderId: string, messageId: string): Decision {
  const status = statusOf(state);
  const c = contextOf(state);
  const p = command.payload;
  if (command.type === 'Create') {
    if (status !== 'none') return reject('ALREADY_EXISTS', `work order ${workOrderId} already exists (${status})`);
    // Its reservations are named `<id>:<line index>`, and a reservation id has at most 128 characters.
    if (workOrderId.length > MAX_WORK_ORDER_ID) {
      return reject('ID_TOO_LONG', `a work order id has at most ${MAX_WORK_ORDER_ID} characters (its reservations are named <id>:<line>); this one has ${workOrderId.length}`);
    }
    return accept({ type: 'Created', workOrderId, bom: p.bom as { sku: string; qty: number }[], stages: p.stages as string[] });
  }
  if (status === 'none') return reject('NOT_FOUND', `work order ${workOrderId} does not exist; Create it first`);
  const sagaBusy = (): Decision => reject('SAGA_IN_PROGRESS', `work order ${workOrderId} is ${status}; retry when it settles`);
  switch (command.type) {
    case 'Release':
      if (status === 'releasing') return sagaBusy();
      if (status !== 'draft') return reject('INVALID_STATE', `Release needs a draft work order; this one is ${status}`);
      return accept({ type: 'ReleaseStarted', requestId: messageId });
    case 'Start':
      if (status !== 'released') return reject('INVALID_STATE', `Start needs a released work order; this one is ${status}`);
      return accept({ type: 'Started' });
    case 'AdvanceStage': {
      // Completing or completed, the work order stays at its last stage: asking for that stage
      // again is the contract's "already at `to`", a no-op success (a late retry must not fail).
      if ((status === 'completing' || status === 'completed') && c.stage !== null && c.stages[c.stage] === p.to) return accept(null);
      if (status !== 'in_progress') return reject('INVALID_STATE', `AdvanceStage needs a work order in progress; this one is ${status}`);
      const to = p.to as string;
      const target = c.stages.indexOf(to);
      const current = c.stage ?? 0;
      if (target < 0) return reject('UNKNOWN_STAGE', `no stage ${JSON.stringify(to)}; stages: ${c.stages.join(', ')}`);
      if (target === current) return accept(null); // already there: idempotent
      if (target < current) return reject('STAGE_BEHIND', `already past ${to} (at ${c.stages[current]})`);
      if (target > current + 1) return reject('STAGE_SKIPPED', `cannot skip from ${c.stages[current]} to ${to}; next is ${c.stages[current + 1]}`);
      return accept({ type: 'StageAdvanced', to });
    }
    case 'Complete':
      if (status === 'completing') return sagaBusy();
      if (status !== 'in_progress') return reject('INVALID_STATE', `Complete needs a work order in progress; this one is ${status}`);
      if (c.stage !== c.stages.length - 1) return reject('NOT_AT_LAST_STAGE', `at ${c.stages[c.stage ?? 0]}; Complete from ${c.stages[c.stages.length - 1]}`);
      return accept({ type: 'CompleteStarted', requestId: messageId });
    case 'Cancel':
      if (status === 'cancelled') return accept(null);
      if (status === 'releasing' || status === 'completing' || status === 'cancelling') return sagaBusy();
      if (status === 'completed') return reject('INVALID_STATE', `work order ${workOrderId} is completed`);
      return accept({ type: 'CancelStarted', requestId: messageId });
    default:
      return reject('UNSUPPORTED', `workorder cannot decide ${command.type}`);
  }
}

/** Another actor answered a saga step. An answer to a step no longer awaited (an older attempt) changes nothing. */
function decideAnswer(c: Ctx, answer: StepAnswer): Decision {
  const { step, line, attempt } = answer.tag;
  const current = c.lines[line];
  if (!current || attempt !== c.attempt) return accept(null);
  if (step === 'reserve' && current.status === 'reserving') {
    return accept(answer.ok ? { type: 'LineReserved', line } : { type: 'LineShort', line, reason: answer.reason ?? 'REJECTED' });
  }
  // Release and Release-of-unknown both succeed at the inventory, so a refusal here means a bad request: keep trying is pointless, count it released.
  if (step === 'release' && current.status === 'releasing') return accept({ type: 'LineReleased', line });
  if (step === 'consume' && current.status === 'consuming') {
    return accept(answer.ok ? { type: 'LineConsumed', line } : { type: 'LineConsumeRefused', line, reason: answer.reason ?? 'REJECTED' });
  }
  return accept(null);
}

const STEP_OF: Partial<Record<LineStatus, { step: 'reserve' | 'release' | 'consume'; type: string }>> = {
  reserving: { step: 'reserve', type: 'Reserve' },
  releasing: { step: 'release', type: 'Release' },
  consuming: { step: 'consume', type: 'Consume' },
};

function pendingEffects(state: AnyMachineSnapshot): OutboundCommand[] {
  const c = contextOf(state);
  if (!c.saga) return [];
  const effects: OutboundCommand[] = [];
  c.lines.forEach((line, index) => {
    const step = STEP_OF[line.status];
    if (!step) return;
    const payload: Record<string, unknown> =
      step.step === 'reserve' ? { reservationId: line.reservationId, qty: line.qty, workOrderId: c.id } : { reservationId: line.reservationId };
    effects.push({
      kind: 'inventory',
      id: line.sku,
      // Deterministic: the same step of the same attempt always has the same id, so a re-send
      // after a timeout, crash or passivation is answered from the inventory's dedupe record.
      // In the runtime's reserved `ppos:` namespace: no client can send an id of this form first.
      messageId: `ppos:wo:${c.id}:${c.saga!.kind}${c.attempt}:${step.step}:${index}`,
      type: step.type,
      payload,
      tag: { step: step.step, line: index, attempt: c.attempt },
    });
  });
  return effects;
}

function openSaga(state: AnyMachineSnapshot): string | null {
  return contextOf(state).saga?.requestId ?? null;
}

function settlement(before: AnyMachineSnapshot, after: AnyMachineSnapshot): SagaSettlement | null {
  const open = contextOf(before).saga;
  const outcome = contextOf(after).lastOutcome;
  if (!open || contextOf(after).saga || !outcome) return null;
  return { messageId: open.requestId, outcome };
}

/** The whole public state: bounded by the BOM (at most 200 lines) and the stages (at most 100). */
function view(state: AnyMachineSnapshot): Record<string, unknown> {
  const c = contextOf(state);
  return {
    status: statusOf(state),
    stage: c.stage === null ? null : c.stages[c.stage],
    stages: c.stages,
    bom: c.bom,
    lines: c.lines,
    attempt: c.attempt,
    saga: c.saga,
  };
}

function invariantFailures(state: AnyMachineSnapshot): InvariantFailure[] {
  const c = contextOf(state);
  const status = statusOf(state);
  const failures: InvariantFailure[] = [];
  const heldStatuses = new Set(['released', 'in_progress']);
  if (heldStatuses.has(status) && c.lines.some((l) => l.status !== 'held')) {
    failures.push({ invariant: 'workorder_lines_match_status', detail: `${status} work order has lines not held` });
  }
  if ((status === 'draft' || status === 'cancelled') && c.lines.some((l) => l.status === 'held' || l.status === 'reserving' || l.status === 'releasing')) {
    failures.push({ invariant: 'workorder_lines_match_status', detail: `${status} work order still holds or awaits material` });
  }
  if (c.stage !== null && (c.stage < 0 || c.stage >= c.stages.length)) {
    failures.push({ invariant: 'workorder_stage_in_range', detail: `stage index ${c.stage} outside ${c.stages.length} stages` });
  }
  return failures;
}

export const workorder: ActorKind = {
  kind: 'workorder',
  machineVersion: 2, // 2: a Complete with refused consumes settles as CONSUME_REFUSED
  machine: workOrderMachine,
  queries: new Set(['Get']),
  commands: new Set(Object.keys(payloads)),
  commandSchemas: payloads,
  parseCommand: (type, payload) => parseWith('workorder', payloads, type, payload),
  decide: (state, command, actorId, messageId) => decide(state, command, actorId, messageId),
  // The tag was checked against stepTag by the runtime before this is asked.
  answers: {
    tag: stepTag,
    decide: (state, answer) =>
      statusOf(state) === 'none' ? reject('NOT_FOUND', 'an answer to a work order that does not exist') : decideAnswer(contextOf(state), answer as StepAnswer),
  },
  view,
  pendingEffects,
  openSaga,
  settlement,
  invariants: ['workorder_lines_match_status', 'workorder_stage_in_range'],
  crossInvariants: [workOrderReservations],
  invariantFailures,
};

/** The work order kind's commands, for a typed client (`clientFor(client, workorderCommands)`). */
export const workorderCommands = { kind: 'workorder', commandSchemas: payloads } as const;
