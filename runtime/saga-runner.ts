// Runs what sagas owe other actors. The owed commands are derived from journaled state
// (`kind.pendingEffects`), sent over NATS like any client's, with deterministic message ids,
// retried with backoff until a definite answer, and the answer is fed back into the saga's own
// mailbox as an internal command that is journaled like any other. A crash anywhere in between
// only means the same command is sent again and answered from the target's dedupe record.
//
// Only two answers move a saga: ok, and REJECTED (a business refusal, e.g. a shortage). Any other
// definite answer (ID_REUSED: the step's id was taken by another command; BAD_REQUEST) means the
// step cannot be carried out as the saga believes: it is an alarm, logged and shown on the
// actor's inspection, and the step is left open rather than read as a refusal.
import type { Logger } from 'pino';
import { ANSWER_COMMAND, type AnswerPayload, type OutboundCommand } from '../actors/kind.js';
import { refKey, type ActorRef } from '../persistence/journal.js';
import type { ActorHost, Cause } from './actor-host.js';
import type { Envelope, Reply } from './envelope.js';
import { childSpan, contextOf, endSpan, SpanKind, type Trace } from './tracing.js';

/** What a step carries of the command that caused it: its correlation, and the step's own span. */
export interface StepContext {
  readonly correlationId?: string;
  readonly causationId?: string;
  readonly trace: Trace;
}

export interface SagaRunnerOptions {
  /** One attempt to send a command to another actor; throws when nobody answers in time. */
  readonly send: (command: OutboundCommand, context: StepContext) => Promise<Reply>;
  /** Delivers an internal command to a local actor's mailbox; resolves with its reply (null: outcome unknown). */
  readonly deliver: (ref: ActorRef, envelope: Envelope, trace: Trace) => Promise<Reply | null>;
  /** What caused the actor's last journaled event, read from the journal (when memory does not know it). */
  readonly lastCause: (host: ActorHost) => Promise<Cause | undefined>;
  /** Whether this node may still act for the actor (ownership can move). */
  readonly owns: (ref: ActorRef) => boolean;
  readonly logger: Logger;
}

/** A saga step that cannot go on: shown on inspection until the saga no longer owes it. */
export interface SagaAlarm {
  readonly step: string;
  readonly target: string;
  readonly code: string;
  readonly message: string;
  readonly since: string;
}

/** The id of the internal command that carries a step's answer back: deterministic, so a re-delivery is a repeat. */
export const answerMessageId = (stepMessageId: string): string => `${stepMessageId}:answer`;

const transient = (reply: Reply | null): boolean =>
  reply === null || (!reply.ok && (reply.error.code === 'UNAVAILABLE' || reply.error.code === 'OVERLOADED'));

/** Definite, but not an answer a saga may act on (see the file's opening comment). */
const alarming = (reply: Reply): boolean => !reply.ok && reply.error.code !== 'REJECTED' && !transient(reply);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const backoff = (attempt: number): number => Math.min(2_000, 20 * 2 ** Math.min(attempt, 7)) * (0.5 + Math.random() / 2);

export class SagaRunner {
  /** Saga steps under way, by actor and outbound message id. */
  private readonly inflight = new Map<string, Set<string>>();
  /** Steps that raised an alarm, by actor and outbound message id: not sent again by this process. */
  private readonly alarms = new Map<string, Map<string, SagaAlarm>>();
  private stopped = false;
  stepsSent = 0;
  retries = 0;

  constructor(private readonly options: SagaRunnerOptions) {}

  /** Starts every step the actor's state still owes that is not already under way. */
  ensure(host: ActorHost): void {
    if (this.stopped || !host.kind.pendingEffects) return;
    const key = refKey(host.ref);
    const effects = host.kind.pendingEffects(host.current, host.ref.id);
    this.forgetSettledAlarms(key, new Set(effects.map((e) => e.messageId)));
    for (const effect of effects) {
      if (this.alarms.get(key)?.has(effect.messageId)) continue;
      let running = this.inflight.get(key);
      if (!running) {
        running = new Set();
        this.inflight.set(key, running);
      }
      if (running.has(effect.messageId)) continue;
      running.add(effect.messageId);
      // The steps owed now are owed because of the command journaled last: they carry its trace.
      const cause = host.lastCause;
      void this.run(host, effect, cause).finally(() => {
        running.delete(effect.messageId);
        if (running.size === 0 && this.inflight.get(key) === running) this.inflight.delete(key);
      });
    }
  }

  /** The actor's steps that cannot go on, for inspection. */
  alarmsOf(ref: ActorRef): SagaAlarm[] {
    return [...(this.alarms.get(refKey(ref))?.values() ?? [])];
  }

  private forgetSettledAlarms(key: string, owed: ReadonlySet<string>): void {
    const raised = this.alarms.get(key);
    if (!raised) return;
    for (const step of raised.keys()) if (!owed.has(step)) raised.delete(step);
    if (raised.size === 0) this.alarms.delete(key);
  }

  private raise(ref: ActorRef, step: string, target: string, reply: Reply): void {
    if (reply.ok) return;
    const key = refKey(ref);
    const alarm: SagaAlarm = { step, target, code: reply.error.code, message: reply.error.message, since: new Date().toISOString() };
    const raised = this.alarms.get(key) ?? new Map<string, SagaAlarm>();
    raised.set(step, alarm);
    this.alarms.set(key, raised);
    this.options.logger.error({ actor: key, ...alarm }, 'saga step refused in a way the saga cannot act on; the saga is stuck until someone looks');
  }

  busy(ref: ActorRef): boolean {
    return this.inflight.has(refKey(ref));
  }

  get stepsInFlight(): number {
    let n = 0;
    for (const steps of this.inflight.values()) n += steps.size;
    return n;
  }

  stop(): void {
    this.stopped = true;
  }

  private async run(host: ActorHost, effect: OutboundCommand, known: Cause | undefined): Promise<void> {
    const ref = host.ref;
    const cause = known ?? (await this.options.lastCause(host).catch(() => undefined));
    // The client's correlation id, or the id of the command that started it all.
    const correlationId = cause ? (cause.correlationId ?? cause.messageId) : undefined;
    const step = childSpan(contextOf(cause?.traceparent), `ppos.saga.step ${effect.type}`, SpanKind.CLIENT, {
      'ppos.actor': refKey(ref),
      'ppos.step.target': `${effect.kind}/${effect.id}`,
      'messaging.message.id': effect.messageId,
    });
    const context: StepContext = { ...(correlationId ? { correlationId } : {}), ...(cause ? { causationId: cause.messageId } : {}), trace: step };
    const answer = await this.askUntilAnswered(ref, effect, context);
    endSpan(step.span, answer ? { ok: true, code: answer.ok ? 'ok' : 'REJECTED' } : { ok: false, code: 'UNANSWERED' });
    if (!answer) return;
    const envelope: Envelope = {
      id: answerMessageId(effect.messageId),
      type: ANSWER_COMMAND,
      payload: answer as unknown as Record<string, unknown>,
      ...(correlationId ? { correlationId } : {}),
      causationId: effect.messageId,
    };
    // The answer is a command of the saga's own actor, in the step's trace.
    const delivery = childSpan(step.context, `ppos.saga.answer ${effect.type}`, SpanKind.CONSUMER, { 'ppos.actor': refKey(ref), 'messaging.message.id': envelope.id });
    try {
      await this.deliverUntilDefinite(ref, effect, envelope, delivery);
    } finally {
      endSpan(delivery.span, { ok: true });
    }
  }

  private async deliverUntilDefinite(ref: ActorRef, effect: OutboundCommand, envelope: Envelope, trace: Trace): Promise<void> {
    for (let attempt = 0; !this.stopped && this.options.owns(ref); attempt += 1) {
      const reply = await this.options.deliver(ref, envelope, trace);
      // The answer's own id was taken on the saga's actor: keyed by the step, so it is not sent again.
      if (reply !== null && alarming(reply)) return this.raise(ref, effect.messageId, `${refKey(ref)} (answer ${envelope.id})`, reply);
      if (!transient(reply)) return;
      await sleep(backoff(attempt));
    }
  }

  private async askUntilAnswered(ref: ActorRef, effect: OutboundCommand, context: StepContext): Promise<AnswerPayload | null> {
    for (let attempt = 0; !this.stopped && this.options.owns(ref); attempt += 1) {
      try {
        this.stepsSent += 1;
        const reply = await this.options.send(effect, context);
        if (alarming(reply)) {
          this.raise(ref, effect.messageId, `${effect.kind}/${effect.id}`, reply);
          return null;
        }
        if (!transient(reply)) {
          return reply.ok ? { tag: effect.tag, ok: true } : { tag: effect.tag, ok: false, reason: reply.error.reason ?? reply.error.code };
        }
      } catch (error) {
        if (attempt === 5) this.options.logger.warn({ actor: refKey(ref), step: effect.messageId, err: (error as Error).message }, 'saga step not answered yet; retrying');
      }
      this.retries += 1;
      await sleep(backoff(attempt));
    }
    return null;
  }
}
