// A runtime node inside the test process (fast), or as a child process (for crashes).
import pino from 'pino';
import { resolveConfig, type NodeConfig } from '../../src/config.js';
import { startNode, type RunningNode } from '../../src/node.js';

export const silentLogger = pino({ level: process.env.PPOS_TEST_LOG_LEVEL ?? 'silent' });

/**
 * One stable node id by default: a node restarted on the same journal takes its shard leases
 * back at once, as `ppos start --node <same id>` does, instead of waiting for them to expire.
 */
export async function startTestNode(natsUrl: string, databaseUrl: string, overrides: Partial<NodeConfig> = {}): Promise<RunningNode> {
  const config: NodeConfig = { ...resolveConfig({ nats: natsUrl, db: databaseUrl, node: 'test-node' }, {}), ...overrides };
  return startNode(config, silentLogger);
}
