// Runs what sagas owe other actors. The owed commands are derived from journaled state
// (`kind.pendingEffects`), sent over NATS like any client's, with deterministic message ids,
// retried with backoff until a definite answer, and the answer is fed back into the saga's own
// mailbox as an internal command that is journaled like any other. A crash anywhere in between
// only means the same command is sent again and answered from the target's dedupe record.
import type { Logger } from 'pino';
import { ANSWER_COMMAND, type AnswerPayload, type OutboundCommand } from '../actors/kind.js';
import { refKey, type ActorRef } from '../persistence/journal.js';
import type { ActorHost } from './actor-host.js';
import type { Envelope, Reply } from './envelope.js';

export interface SagaRunnerOptions {
  /** One attempt to send a command to another actor; throws when nobody answers in time. */
  readonly send: (command: OutboundCommand) => Promise<Reply>;
  /** Delivers an internal command to a local actor's mailbox; resolves with its reply. */
  readonly deliver: (ref: ActorRef, envelope: Envelope) => Promise<Reply>;
  /** Whether this node may still act for the actor (ownership can move). */
  readonly owns: (ref: ActorRef) => boolean;
  readonly logger: Logger;
}

const transient = (reply: Reply): boolean => !reply.ok && (reply.error.code === 'UNAVAILABLE' || reply.error.code === 'OVERLOADED');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const backoff = (attempt: number): number => Math.min(2_000, 20 * 2 ** Math.min(attempt, 7)) * (0.5 + Math.random() / 2);

export class SagaRunner {
  /** Saga steps under way, by actor and outbound message id. */
  private readonly inflight = new Map<string, Set<string>>();
  private stopped = false;
  stepsSent = 0;
  retries = 0;

  constructor(private readonly options: SagaRunnerOptions) {}

  /** Starts every step the actor's state still owes that is not already under way. */
  ensure(host: ActorHost): void {
    if (this.stopped || !host.kind.pendingEffects) return;
    const key = refKey(host.ref);
    for (const effect of host.kind.pendingEffects(host.current, host.ref.id)) {
      let running = this.inflight.get(key);
      if (!running) {
        running = new Set();
        this.inflight.set(key, running);
      }
      if (running.has(effect.messageId)) continue;
      running.add(effect.messageId);
      void this.run(host.ref, effect).finally(() => {
        running.delete(effect.messageId);
        if (running.size === 0 && this.inflight.get(key) === running) this.inflight.delete(key);
      });
    }
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

  private async run(ref: ActorRef, effect: OutboundCommand): Promise<void> {
    const answer = await this.askUntilAnswered(ref, effect);
    if (!answer) return;
    const envelope: Envelope = {
      // Deterministic too: a re-delivered answer is a duplicate to the saga's actor.
      id: `${effect.messageId}:answer`,
      type: ANSWER_COMMAND,
      payload: answer as unknown as Record<string, unknown>,
      causationId: effect.messageId,
    };
    for (let attempt = 0; !this.stopped && this.options.owns(ref); attempt += 1) {
      const reply = await this.options.deliver(ref, envelope);
      if (!transient(reply)) {
        if (!reply.ok && !reply.duplicate) this.options.logger.error({ actor: refKey(ref), step: effect.messageId, reply }, 'saga answer refused');
        return;
      }
      await sleep(backoff(attempt));
    }
  }

  private async askUntilAnswered(ref: ActorRef, effect: OutboundCommand): Promise<AnswerPayload | null> {
    for (let attempt = 0; !this.stopped && this.options.owns(ref); attempt += 1) {
      try {
        this.stepsSent += 1;
        const reply = await this.options.send(effect);
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
