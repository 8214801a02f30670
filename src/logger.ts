// The root logger: pino JSON on stderr (stdout is kept for command output), or
// pino-pretty for people with --pretty. Library code only ever gets a child of this.
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export interface LoggerOptions {
  readonly pretty?: boolean;
  readonly level?: string;
  readonly name?: string;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const settings = {
    level: options.level ?? process.env.PPOS_LOG_LEVEL ?? 'info',
    base: { name: options.name ?? 'ppos', pid: process.pid },
    // A second line behind "never log a secret": fields that could hold one, should one slip in.
    redact: {
      paths: ['databaseUrl', 'url', 'password', 'pass', 'token', '*.databaseUrl', '*.url', '*.password', '*.pass', '*.token', 'config.nats', 'nats.pass', 'nats.token'],
      censor: '[redacted]',
    },
  };
  if (options.pretty) return pino(settings, pretty({ destination: 2, colorize: process.stderr.isTTY, sync: true }));
  return pino(settings, pino.destination({ dest: 2, sync: true }));
}
