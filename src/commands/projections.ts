// The eventual side from the command line (CONTRACT.md section 8): `ppos projections` (every
// projection and the export: position, lag, budget, status), `ppos projections rebuild <name>`,
// and `ppos query <projection>` over NATS, with read-your-writes through `--after TOKEN`.
import type { Command } from 'commander';
import { builtInProjections } from '../../persistence/projections/index.js';

import { rebuildProjection } from '../../runtime/projection-audit.js';
import { projectionReports } from '../../runtime/projection-status.js';
import { QUERY_SUBJECT_PREFIX } from '../../runtime/subjects.js';
import type { CliHelpers, CommandOptions } from './inspect-tools.js';
import { UsageError } from '../config.js';
import { printJson, table, writeErr, writeOut } from '../format.js';

interface QueryOptions extends CommandOptions {
  readonly id?: string;
  readonly availableBelow?: string;
  readonly status?: string;
  readonly after?: string;
  readonly timeout?: string;
  readonly limit?: string;
  readonly cursor?: string;
}

function whereOf(projection: string, options: QueryOptions, helpers: CliHelpers): Record<string, unknown> {
  const where: Record<string, unknown> = {};
  if (options.id !== undefined) where.id = options.id;
  if (options.availableBelow !== undefined) {
    if (projection !== 'stock') throw new UsageError('--available-below is a filter of the stock projection');
    const below = Number(options.availableBelow);
    if (!Number.isSafeInteger(below)) throw new UsageError(`--available-below must be a whole number, got ${JSON.stringify(options.availableBelow)}`);
    where.availableBelow = below;
  }
  if (options.status !== undefined) {
    if (projection !== 'workorders') throw new UsageError('--status is a filter of the workorders projection');
    where.status = options.status;
  }
  void helpers;
  return where;
}

export function registerProjectionCommands(program: Command, helpers: CliHelpers): void {
  const projections = helpers
    .withConnection(program.command('projections').description('every projection and the journal export: position, lag, budget, status'))
    .option('--json', 'one JSON document on stdout')
    .action(async (options: CommandOptions) => {
      const reports = await helpers.withJournal(options, (journal) => projectionReports(journal.first.pool, undefined, journal.sources));
      if (options.json) {
        printJson(reports.map(({ owner: _owner, ...report }) => report));
        return;
      }
      writeOut(
        `${table(
          ['name', 'position', 'lag ms', 'lag events', 'budget ms', 'status', 'owner'],
          reports.map((r) => [r.name, r.position, r.lagMs, r.lagEvents, r.budgetMs, r.status, r.owner ?? '']),
        )}\n`,
      );
    });

  helpers
    .withConnection(projections.command('rebuild <name>').description('rebuild one projection from the journal; prints an evidence record'))
    .action(async (name: string, _local: CommandOptions, command: Command) => {
      // `--db` and the rest may be given after `rebuild` or before it (commander gives them to `projections`).
      const options = command.optsWithGlobals<CommandOptions>();
      const handler = builtInProjections.get(name);
      if (!handler) throw new UsageError(`no projection ${JSON.stringify(name)}; known: ${[...builtInProjections.keys()].join(', ')}`);
      const audit = await helpers.withJournal(options, (journal) => rebuildProjection(journal.first.pool, handler, undefined, journal.sources));
      printJson({
        projection: name,
        events_processed: audit.eventsProcessed,
        projections_changed: audit.rowsChanged,
        reconciliation_failures: audit.examples.map((detail) => ({ check: 'projections_match_journal', detail })),
        confidence_status: audit.rowsChanged === 0 ? 'trusted' : 'suspect',
      });
      if (audit.rowsChanged > 0) writeErr(`ppos: ${audit.rowsChanged} row(s) of ${name} differed from the journal; the rebuilt read model replaced them\n`);
    });

  helpers
    .withConnection(program.command('query <projection>').description('read a projection: stock [--id SKU] [--available-below N], workorders [--status S] [--id ID]'))
    .option('--id <id>', 'one row')
    .option('--available-below <n>', 'stock: SKUs with available below N')
    .option('--status <status>', 'workorders: in this status')
    .option('--after <token>', "wait until the projection includes the command whose reply carried this token (read-your-writes)")
    .option('--timeout <ms>', 'how long to wait for --after (default 5000)')
    .option('--limit <n>', 'rows per page (default 100, at most 1000)')
    .option('--cursor <c>', 'the next page: the `next` of the previous one')
    .option('--json', 'the reply as one JSON document')
    .action(async (projection: string, options: QueryOptions) => {
      if (!builtInProjections.has(projection)) throw new UsageError(`no projection ${JSON.stringify(projection)}; known: ${[...builtInProjections.keys()].join(', ')}`);
      const timeoutMs = helpers.seqOption('--timeout', options.timeout);
      const limit = helpers.seqOption('--limit', options.limit);
      const body = {
        where: whereOf(projection, options, helpers),
        ...(options.after !== undefined ? { after: options.after } : {}),
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        ...(limit !== undefined ? { limit } : {}),
        ...(options.cursor !== undefined ? { cursor: options.cursor } : {}),
      };
      const reply = (await helpers.withClient(options, (client) =>
        client.request(`${QUERY_SUBJECT_PREFIX}.${projection}`, JSON.stringify(body), (timeoutMs ?? 5_000) + 5_000),
      )) as unknown as { ok: boolean; rows?: Record<string, unknown>[]; next?: string; lagMs?: number };
      if (options.json || !reply.ok) {
        printJson(reply);
        if (!reply.ok) process.exitCode = 1;
        return;
      }
      const rows = reply.rows ?? [];
      const columns = rows[0] ? Object.keys(rows[0]) : ['id'];
      writeOut(`${table(columns, rows.map((row) => columns.map((c) => row[c])))}\n`);
      writeOut(`${rows.length} row(s), projection lag ${reply.lagMs ?? 0} ms${reply.next ? `; next page: --cursor ${reply.next}` : ''}\n`);
    });
}
