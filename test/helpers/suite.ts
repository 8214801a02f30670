// The usual fixture of an integration test file: a fresh database, a private nats-server, a
// client, and (unless told otherwise) one node in the test process, torn down after the file.
import { afterAll, beforeAll } from 'vitest';
import { PposClient } from '../../src/client.js';
import type { NodeConfig } from '../../src/config.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import { startTestNode } from './node.js';
import { createTestDatabase, startNats, type TestDatabase } from './services.js';

export interface Suite {
  db: TestDatabase;
  nats: PrivateNatsServer;
  client: PposClient;
  /** The node in this process, when one runs. */
  node: RunningNode | undefined;
  /** Stops the node (if any) and starts another on the same journal. */
  restartNode(overrides?: Partial<NodeConfig>): Promise<RunningNode>;
}

export function useSuite(options: { node?: Partial<NodeConfig> | false; natsConfig?: string } = {}): Suite {
  const suite = {
    node: undefined,
    async restartNode(overrides: Partial<NodeConfig> = {}) {
      await suite.node?.stop();
      suite.node = await startTestNode(suite.nats.url, suite.db.url, overrides);
      return suite.node;
    },
  } as unknown as Suite;
  beforeAll(async () => {
    [suite.db, suite.nats] = await Promise.all([createTestDatabase(), startNats(options.natsConfig)]);
    suite.client = await PposClient.connect(suite.nats.url);
    if (options.node !== false) await suite.restartNode(options.node ?? {});
  });
  afterAll(async () => {
    await suite.client?.close();
    await suite.node?.stop();
    await suite.nats?.stop();
    await suite.db?.drop();
  });
  return suite;
}
