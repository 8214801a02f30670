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
