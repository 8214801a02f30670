// A database that stops answering without closing its connections (a server frozen, a network
// that drops packets) leaves a query waiting for minutes. Where several databases are asked at
// once, the answers of the others must not wait for it: each call gets a time limit, and one
// that outlives it counts as failed (it may still finish later; its result is then ignored).

export class TimeLimitError extends Error {}

/** `work`'s result, or a TimeLimitError once `ms` have passed. */
export function withinMs<T>(ms: number, work: Promise<T>, what = 'the database'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeLimitError(`${what} did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  // A late rejection of `work` after the limit must not go unheard.
  work.catch(() => undefined);
  return Promise.race([work, limit]).finally(() => clearTimeout(timer));
}

export interface EachAnswered<R> {
  /** The answers of the items that answered, in item order. */
  readonly answers: R[];
  /** The indexes of the items that failed or did not answer in time. */
  readonly failed: number[];
  readonly firstError: unknown;
}

/**
 * `work` over every item at once (one per database), each within `limitMs` when given: the
 * answers of those that answered, and which did not. The one place that says how a question
 * put to several databases waits for them.
 */
export async function askEach<T, R>(items: readonly T[], work: (item: T, index: number) => Promise<R>, limitMs?: number): Promise<EachAnswered<R>> {
  const settled = await Promise.allSettled(items.map((item, index) => (limitMs === undefined ? work(item, index) : withinMs(limitMs, work(item, index)))));
  const answers: R[] = [];
  const failed: number[] = [];
  let firstError: unknown;
  settled.forEach((outcome, index) => {
    if (outcome.status === 'fulfilled') answers.push(outcome.value);
    else {
      failed.push(index);
      firstError ??= outcome.reason;
    }
  });
  return { answers, failed, firstError };
}

/** The answers, or the first error when something was asked and nothing answered. */
export function someAnswered<R>(each: EachAnswered<R>): R[] {
  if (each.answers.length === 0 && each.failed.length > 0) throw each.firstError;
  return each.answers;
}
