// Connecting to NATS: retried at start (a broker still booting), and reconnecting for ever
// afterwards so a broker restart never takes a node down.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function connectNats(url: string, name: string, logger: Logger | undefined, waitMs = 10_000): Promise<NatsConnection> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 1; ; attempt += 1) {
    try {
      const nc = await connect({ servers: url.split(',').map((s) => s.trim()), name, maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 10_000 });
      if (logger) void watchStatus(nc, logger);
      return nc;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(
          `cannot reach NATS at ${url} (${(error as Error).message}). Start one with ` +
            '`nats-server -js` (or `docker compose up -d nats`), or point --nats / PPOS_NATS_URL at yours',
          { cause: error },
        );
      }
      if (attempt === 1) logger?.warn({ url }, 'NATS not reachable yet; retrying');
      await sleep(Math.min(1_000, 100 * attempt));
    }
  }
}

async function watchStatus(nc: NatsConnection, logger: Logger): Promise<void> {
  for await (const status of nc.status()) {
    if (status.type === 'disconnect' || status.type === 'reconnect' || status.type === 'error') {
      logger.warn({ nats: status.type, server: 'server' in status ? status.server : undefined }, `NATS ${status.type}`);
    }
  }
}
