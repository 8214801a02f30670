// One load-generator process (forked by load.ts). Closed loop: each of its `outstanding`
// slots sends a request, waits for the reply, and sends the next, so the number of requests
// in flight is fixed. It speaks the wire contract directly (JSON envelopes over NATS
// request/reply) and only parses a reply that is not `{"ok":true...`, to stay cheap.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Histogram } from './histogram.js';
import type { GrowJob, JobResult, MixJob, OnceJob, WorkerMessage, WorkerRequest } from './load.js';

const send = (message: WorkerMessage): void => {
  process.send?.(message);
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let nc: NatsConnection | undefined;
let workerIndex = 0;

interface Outcome {
  readonly ok: boolean;
  /** The contract's error code, TIMEOUT, or NO_RESPONDERS. */
  readonly code?: string;
  /** Size of the reply, when there was one. */
  readonly bytes?: number;
}

/**
 * Request/reply on one shared inbox subscription with our own correlation and one sweeper
 * for timeouts: the same wire traffic as `nc.request`, without a timer and a request object
 * per call, so the load generator costs less CPU on a machine it shares with the server.
 * PPOS_BENCH_CLIENT=nats-request switches to the library's `nc.request` for comparison.
 */
class Requester {
  private readonly pending = new Map<string, { resolve: (outcome: Outcome) => void; deadline: number }>();
  private readonly prefix: string;
  private next = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly connection: NatsConnection) {
    this.prefix = `_INBOX.ppos-bench.${process.pid}.`;
    connection.subscribe(`${this.prefix}*`, {
      callback: (error, msg) => {
        if (error) return;
        const token = msg.subject.slice(this.prefix.length);
        const waiting = this.pending.get(token);
        if (!waiting) return;
        this.pending.delete(token);
        // A 503 status with no body is the server saying nobody subscribes to the subject.
        if (msg.data.length === 0 && msg.headers?.code === 503) waiting.resolve({ ok: false, code: 'NO_RESPONDERS' });
        else waiting.resolve({ ...outcomeOf(msg.string()), bytes: msg.data.length });
      },
    });
    this.sweeper = setInterval(() => {
      const now = performance.now();
      for (const [token, waiting] of this.pending) {
        if (waiting.deadline > now) continue;
        this.pending.delete(token);
        waiting.resolve({ ok: false, code: 'TIMEOUT' });
      }
    }, 50);
    this.sweeper.unref();
  }

  request(subject: string, body: string, timeoutMs: number): Promise<Outcome> {
    const token = (this.next += 1).toString(36);
    return new Promise((resolve) => {
      this.pending.set(token, { resolve, deadline: performance.now() + timeoutMs });
      this.connection.publish(subject, body, { reply: this.prefix + token });
    });
  }
}

function outcomeOf(text: string): Outcome {
  if (text.startsWith('{"ok":true')) return { ok: true };
  try {
    const reply = JSON.parse(text) as { ok?: boolean; error?: { code?: string } };
    return reply.ok ? { ok: true } : { ok: false, code: reply.error?.code ?? 'UNKNOWN' };
  } catch {
    return { ok: false, code: 'NOT_JSON' };
  }
}

let requester: Requester | undefined;

async function request(subject: string, body: string, timeoutMs: number): Promise<Outcome> {
  if (requester) return requester.request(subject, body, timeoutMs);
  try {
    const msg = await nc!.request(subject, body, { timeout: timeoutMs });
    return { ...outcomeOf(msg.string()), bytes: msg.data.length };
  } catch (error) {
    const err = error as Error & { isNoResponders?: () => boolean };
    if (typeof err.isNoResponders === 'function' && err.isNoResponders()) return { ok: false, code: 'NO_RESPONDERS' };
    return { ok: false, code: /timeout/i.test(err.message) || err.name === 'TimeoutError' ? 'TIMEOUT' : `ERROR ${err.message}` };
  }
}

const envelope = (id: string, type: string, payload: unknown): string =>
  payload === undefined ? `{"id":"${id}","type":"${type}"}` : `{"id":"${id}","type":"${type}","payload":${JSON.stringify(payload)}}`;

/** Reserve then Release on a random actor, over and over; counts only what completes inside the window. */
async function runMix(job: MixJob): Promise<JobResult> {
  const histogram = new Histogram();
  const errors: Record<string, number> = {};
  let ok = 0;
  let measuring = false;
  let stopping = false;
  let windowStart = 0;
  let windowEnd = 0;
  let cpuStart = process.cpuUsage();
  let cpuUsed = 0;
  let seq = 0;

  const one = async (actor: string, type: string, payload: unknown): Promise<void> => {
    const id = `${job.tag}-${workerIndex}-${(seq += 1)}`;
    const started = performance.now();
    const outcome = await request(`${job.subjectPrefix}.${actor}`, envelope(id, type, payload), job.timeoutMs);
    if (measuring) {
      histogram.record(performance.now() - started);
      if (outcome.ok) ok += 1;
      else errors[outcome.code!] = (errors[outcome.code!] ?? 0) + 1;
    }
    if (!outcome.ok && outcome.code === 'NO_RESPONDERS') await sleep(5);
  };

  const slot = async (slotIndex: number): Promise<void> => {
    let n = 0;
    while (!stopping) {
      const actor = job.actors[Math.floor(Math.random() * job.actors.length)]!;
      const reservationId = `${job.tag}-${workerIndex}-${slotIndex}-${(n += 1)}`;
      await one(actor, 'Reserve', { reservationId, qty: 1 });
      if (stopping) break;
      await one(actor, 'Release', { reservationId });
    }
  };

  // Open loop: Reserves of new reservations alternate with Releases of reservations whose
  // Reserve has been answered; each send happens on schedule, answered or not.
  const openLoop = async (): Promise<void> => {
    const reserved: { actor: string; reservationId: string }[] = [];
    let inFlight = 0;
    let issued = 0;
    let n = 0;
    const started = performance.now();
    const issue = (): void => {
      if (inFlight >= job.outstanding) {
        if (measuring) errors.SKIPPED = (errors.SKIPPED ?? 0) + 1;
        return;
      }
      inFlight += 1;
      const release = issued % 2 === 1 ? reserved.shift() : undefined;
      const done = (): void => {
        inFlight -= 1;
      };
      if (release) {
        void one(release.actor, 'Release', { reservationId: release.reservationId }).then(done);
      } else {
        const actor = job.actors[Math.floor(Math.random() * job.actors.length)]!;
        const reservationId = `${job.tag}-${workerIndex}-o-${(n += 1)}`;
        void one(actor, 'Reserve', { reservationId, qty: 1 }).then(() => {
          reserved.push({ actor, reservationId });
          done();
        });
      }
    };
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (stopping) {
          clearInterval(timer);
          resolve();
          return;
        }
        const due = Math.floor(((performance.now() - started) / 1000) * job.ratePerSecond!) - issued;
        for (let i = 0; i < due; i += 1, issued += 1) issue();
      }, 1);
    });
    while (inFlight > 0) await sleep(5);
  };

  const warm = setTimeout(() => {
    measuring = true;
    windowStart = performance.now();
    cpuStart = process.cpuUsage();
    send({ type: 'window', phase: 'start' });
  }, job.warmupMs);
  const end = setTimeout(() => {
    const cpu = process.cpuUsage(cpuStart);
    cpuUsed = (cpu.user + cpu.system) / 1e6;
    windowEnd = performance.now();
    measuring = false;
    stopping = true;
    send({ type: 'window', phase: 'end' });
  }, job.warmupMs + job.measureMs);
  if (job.ratePerSecond) await openLoop();
  else await Promise.all(Array.from({ length: job.outstanding }, (_, i) => slot(i)));
  clearTimeout(warm);
  clearTimeout(end);
  return { ok, errors, histogram: histogram.toData(), seconds: (windowEnd - windowStart) / 1000, cpuSeconds: cpuUsed };
}

/** One command to every actor in the list (retrying what may be retried with the same id). */
async function runOnce(job: OnceJob): Promise<JobResult> {
  const histogram = new Histogram();
  const errors: Record<string, number> = {};
  let ok = 0;
  let next = 0;
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  const slot = async (): Promise<void> => {
    for (let index = next++; index < job.actors.length; index = next++) {
      const actor = job.actors[index]!;
      const id = `${job.tag}-${workerIndex}-${index}`;
      const body = envelope(id, job.command, job.payload);
      const sent = performance.now();
      for (let attempt = 1; ; attempt += 1) {
        const outcome = await request(`${job.subjectPrefix}.${actor}`, body, job.timeoutMs);
        const retry = !outcome.ok && ['UNAVAILABLE', 'OVERLOADED', 'TIMEOUT', 'NO_RESPONDERS'].includes(outcome.code!);
        if (retry && attempt < job.attempts) {
          await sleep(Math.min(200, 5 * attempt));
          continue;
        }
        histogram.record(performance.now() - sent);
        if (outcome.ok) ok += 1;
        else errors[outcome.code!] = (errors[outcome.code!] ?? 0) + 1;
        break;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(job.outstanding, job.actors.length) }, () => slot()));
  const cpu = process.cpuUsage(cpuStart);
  return { ok, errors, histogram: histogram.toData(), seconds: (performance.now() - started) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

/** `job.commands` commands on one actor, `outstanding` at a time, measuring every reply's size. */
async function runGrow(job: GrowJob): Promise<JobResult> {
  const histogram = new Histogram();
  const errors: Record<string, number> = {};
  const replyBytes = { max: 0, total: 0, count: 0 };
  let ok = 0;
  let issued = 0;
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  const command = async (type: string, payload: unknown, id: string): Promise<boolean> => {
    const sent = performance.now();
    const outcome = await request(`${job.subjectPrefix}.${job.actor}`, envelope(id, type, payload), job.timeoutMs);
    histogram.record(performance.now() - sent);
    if (outcome.bytes !== undefined) {
      replyBytes.max = Math.max(replyBytes.max, outcome.bytes);
      replyBytes.total += outcome.bytes;
      replyBytes.count += 1;
    }
    if (outcome.ok) ok += 1;
    else errors[outcome.code!] = (errors[outcome.code!] ?? 0) + 1;
    return outcome.ok;
  };
  const slot = async (): Promise<void> => {
    while (issued < job.commands) {
      const n = (issued += job.pattern === 'reserve' ? 1 : 2);
      const reservationId = `${job.tag}-${n}`;
      const reserved = await command('Reserve', { reservationId, qty: 1 }, `${job.tag}-r${n}`);
      if (job.pattern === 'reserve-consume' && reserved) await command('Consume', { reservationId }, `${job.tag}-c${n}`);
    }
  };
  await Promise.all(Array.from({ length: job.outstanding }, () => slot()));
  const cpu = process.cpuUsage(cpuStart);
  return { ok, errors, histogram: histogram.toData(), seconds: (performance.now() - started) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6, replyBytes };
}

process.on('message', (message: WorkerRequest) => {
  void (async () => {
    try {
      switch (message.type) {
        case 'connect':
          workerIndex = message.index;
          nc = await connect({ servers: message.natsUrl, name: `ppos-bench-load-${message.index}` });
          if (process.env.PPOS_BENCH_CLIENT !== 'nats-request') requester = new Requester(nc);
          send({ type: 'connected' });
          break;
        case 'mix':
          send({ type: 'result', result: await runMix(message.job) });
          break;
        case 'once':
          send({ type: 'result', result: await runOnce(message.job) });
          break;
        case 'grow':
          send({ type: 'result', result: await runGrow(message.job) });
          break;
        case 'exit':
          await nc?.drain().catch(() => undefined);
          process.exit(0);
      }
    } catch (error) {
      send({ type: 'failed', message: (error as Error).stack ?? String(error) });
    }
  })();
});

// Never outlive the bench: when the parent goes, so do we.
process.on('disconnect', () => process.exit(0));
