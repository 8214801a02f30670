#!/usr/bin/env node
// `npm run chaos -- --seed N --minutes M [--nodes K] [--databases D] [--json] [--keep-db]`: one chaos run, its summary
// table on stdout, exit 0 only when every invariant held (1 on a failure, 2 on bad usage).
import { parseArgs } from 'node:util';
import { ChaosUsageError, runChaos } from './driver.js';
import { formatSummary } from './summary.js';

async function main(): Promise<number> {
  let values: { seed?: string; minutes?: string; nodes?: string; databases?: string; json?: boolean; 'pg-url'?: string; 'keep-db'?: boolean };
  try {
    ({ values } = parseArgs({
      options: { seed: { type: 'string' }, minutes: { type: 'string' }, nodes: { type: 'string' }, databases: { type: 'string' }, json: { type: 'boolean' }, 'pg-url': { type: 'string' }, 'keep-db': { type: 'boolean' } },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`chaos: ${(error as Error).message}\nusage: npm run chaos -- --seed N --minutes M [--nodes K] [--databases D] [--json] [--pg-url URL] [--keep-db]\n`);
    return 2;
  }
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  try {
    const result = await runChaos({
      signal: interrupted.signal,
      seed,
      minutes: values.minutes === undefined ? 5 : Number(values.minutes),
      nodes: values.nodes === undefined ? 1 : Number(values.nodes),
      databases: values.databases === undefined ? 1 : Number(values.databases),
      ...(values['pg-url'] ? { pgAdminUrl: values['pg-url'] } : {}),
      keepFailedDatabase: values['keep-db'] ?? false,
    });
    process.stdout.write(values.json ? `${JSON.stringify(result)}\n` : `\n${formatSummary(result)}\n`);
    return result.ok ? 0 : 1;
  } catch (error) {
    if (interrupted.signal.aborted) {
      process.stderr.write(`chaos: interrupted (seed ${seed}); its nodes, nats-server and database are gone\n`);
      return 130;
    }
    if (error instanceof ChaosUsageError) {
      process.stderr.write(`chaos: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(`chaos: run failed (seed ${seed}): ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}

// First signal: stop the run and clean up (nodes, nats-server, database); a second one exits at
// once, and the driver's 'exit' hook still SIGCONTs and kills its processes.
const interrupted = new AbortController();
const onSignal = (signal: NodeJS.Signals): void => {
  if (interrupted.signal.aborted) process.exit(130);
  process.stderr.write(`chaos: ${signal}, stopping and cleaning up (again to exit at once)\n`);
  interrupted.abort();
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

main().then((code) => {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 200).unref();
});
