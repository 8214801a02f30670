// Connection strings for logs and messages: PostgreSQL and NATS URLs carry passwords and tokens
// in their userinfo (`scheme://user:password@host`, `nats://token@host`), which never leave here.

/** Everything from the start of the authority through its last `@`: userinfo, unencoded `@`, `/` or `#` in it included. */
const USERINFO = /^(\s*(?:[a-z][a-z0-9+.-]*:\/\/)?).*@/is;

/**
 * `url` without userinfo; a comma-separated list (`--db`, `--nats` with several servers) URL by
 * URL. When in doubt it removes too much: an `@` in a path or query takes what comes before it.
 */
export function redactUrl(url: string): string {
  return url
    .split(',')
    .map((one) => one.replace(USERINFO, '$1'))
    .join(',');
}
