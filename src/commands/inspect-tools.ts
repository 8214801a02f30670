// Operator commands for looking inside actors without touching them: `diff`, `watch`,
// `nodes` and `dashboard`. Registered on the program by src/cli.ts, which lends its helpers
// (connection flags, actor-ref checks, client and journal scopes) so every command reads alike.
import type { Command } from 'commander';
import { projectionReports } from '../../runtime/projection-status.js';
import { cliKinds } from '../cli-kinds.js';
import { ACTOR_ID_PATTERN } from '../../actors/schema.js';
import { refKey, type ActorRef, type Journal, type JournaledEvent } from '../../persistence/journal.js';
import { diffStates, type StateDiff } from '../../runtime/diff.js';
import { EVENTS_SUBJECT_PREFIX } from '../../runtime/subjects.js';
import { z } from 'zod';
import type { PposClient } from '../client.js';
import { resolveConfig, UsageError, type RawOptions } from '../config.js';
import { openJournal } from '../database.js';
import type { ShardedJournal } from '../../persistence/sharded-journal.js';
import { ACCESS_TOKEN_PATTERN, isLoopbackHost, newAccessToken, startDashboard } from '../dashboard/server.js';
import { forTerminal, printJson, table, writeErr, writeOut } from '../format.js';
import { createLogger } from '../logger.js';

export interface CommandOptions extends RawOptions {
  readonly pretty?: boolean;
  readonly json?: boolean;
}

/** What src/cli.ts lends: the same flag set, checks and scopes its own commands use. */
export interface CliHelpers {
  withConnection(command: Command): Command;
  actorRef(kind: string, id: string): ActorRef;
  seqOption(name: string, value: string | undefined): number | undefined;
  withClient<T>(options: CommandOptions, work: (client: PposClient) => Promise<T>): Promise<T>;
  withJournal<T>(options: CommandOptions, work: (journal: ShardedJournal) => Promise<T>): Promise<T>;
}

/** One line of the live feed, as published on ppos.events.<kind>.<id> (node is null when read from the journal). */
export interface FeedLine {
  readonly node: string | null;
  readonly kind: string;
  readonly id: string;
  readonly seq: number;
  readonly event: { readonly type: string; readonly [field: string]: unknown };
  readonly messageId: string;
  readonly recordedAt: string;
}

const feedLineSchema = z.object({
  node: z.string().max(128).nullable(),
  kind: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  id: z.string().regex(ACTOR_ID_PATTERN),
  seq: z.number().int().positive(),
  event: z.looseObject({ type: z.string().max(128) }),
  messageId: z.string().max(256),
  recordedAt: z.string().max(64),
});

/** A line of the live feed, or null when the bytes are not one. */
function parseFeedLine(data: Uint8Array): FeedLine | null {
  try {
    const parsed = feedLineSchema.safeParse(JSON.parse(Buffer.from(data).toString('utf8')));
    return parsed.success ? (parsed.data as FeedLine) : null;
  } catch {
    return null;
  }
}

const compact = (value: unknown): string => (value === undefined ? '-' : JSON.stringify(value));

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (signal: string): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

export function formatDiff(diff: StateDiff): string {
  const bySeq = new Map(diff.events.map((e) => [e.seq, e.event.type]));
  const by = (seqs: readonly number[]): string => seqs.map((s) => `#${s} ${bySeq.get(s) ?? ''}`.trim()).join(', ');
  const lines = [`${diff.kind}/${diff.id}: seq ${diff.from} -> ${diff.to} (${diff.events.length} event(s))`];
  const valueChanged = JSON.stringify(diff.value.before) !== JSON.stringify(diff.value.after);
  lines.push(
    valueChanged
      ? `state: ${compact(diff.value.before)} -> ${compact(diff.value.after)} (by ${by(diff.value.bySeqs)})`
      : `state: ${compact(diff.value.after)} (unchanged)`,
  );
  if (diff.changes.length === 0) lines.push('context: unchanged');
  else {
    lines.push(
      table(
        ['path', 'change', 'before', 'after', 'changed by'],
        diff.changes.map((c) => [c.path, c.change, compact(c.before), compact(c.after), by(c.bySeqs)]),
      ),
    );
  }
  if (diff.events.length > 0) {
    lines.push('', 'events');
    lines.push(
      table(
        ['seq', 'type', 'data', 'message id', 'recorded at'],
        diff.events.map((e) => {
          const { type, ...data } = e.event;
          return [e.seq, type, data, e.messageId, e.recordedAt];
        }),
      ),
    );
  }
  return lines.join('\n');
}

/** One line whatever the feed carried: a forged field can neither steer the terminal nor start a fake line. */
export function formatFeedLine(line: FeedLine): string {
  const { type, ...data } = line.event;
  const where = line.node ? `  node=${line.node}` : '';
  const text = `${line.recordedAt}  ${line.kind}/${line.id}  #${line.seq}  ${type}  ${JSON.stringify(data)}  msg=${line.messageId}${where}`;
  return forTerminal(text, { oneLine: true });
}

const fromJournal = (ref: ActorRef, e: JournaledEvent): FeedLine => ({
  node: null,
  kind: ref.kind,
  id: ref.id,
  seq: e.seq,
  event: e.event,
  messageId: e.messageId,
  recordedAt: e.recordedAt.toISOString(),
});

/** `*` watches every actor of a kind (or every kind); anything else is checked like any actor ref. */
function watchTarget(kind: string, id: string): { subject: string; ref: ActorRef | null } {
  if (kind !== '*' && !cliKinds().has(kind)) {
    throw new UsageError(`unknown kind ${JSON.stringify(kind)}; use one of: ${[...cliKinds().keys()].join(', ')}, or *`);
  }
  if (id !== '*' && !ACTOR_ID_PATTERN.test(id)) throw new UsageError(`actor id ${JSON.stringify(id)} must match [A-Za-z0-9_-]{1,128}, or be *`);
  return { subject: `${EVENTS_SUBJECT_PREFIX}.${kind}.${id}`, ref: kind === '*' || id === '*' ? null : { kind, id } };
}

export function registerInspectionTools(program: Command, helpers: CliHelpers): void {
  helpers
    .withConnection(program.command('diff <kind> <id> <a> <b>').description('what changed in the context between seqs A and B, and which events did it'))
    .option('--json', 'one JSON document on stdout')
    .action(async (kind: string, id: string, a: string, b: string, options: CommandOptions) => {
      const ref = helpers.actorRef(kind, id);
      const from = helpers.seqOption('<a>', a)!;
      const to = helpers.seqOption('<b>', b)!;
      if (from > to) throw new UsageError(`A must not be after B (got ${from} > ${to})`);
      const actorKind = cliKinds().get(kind)!;
      const result = await helpers.withJournal(options, async (journal) => {
        const head = await journal.headSeq(ref);
        if (to > head) return { error: `${refKey(ref)} has ${head} event(s); there is no event ${to}` };
        return { diff: await diffStates(journal, actorKind, ref, from, to) };
      });
      if ('error' in result) {
        writeErr(`ppos: ${result.error}\n`);
        process.exitCode = 1;
        return;
      }
      if (options.json) printJson(result.diff);
      else writeOut(`${formatDiff(result.diff)}\n`);
    });

  helpers
    .withConnection(
      program
        .command('watch <kind> <id>')
        .description('follow an actor\'s events live as they are journaled (either may be "*"); Ctrl-C stops'),
    )
    .option('--json', 'one JSON object per line')
    .option('--from <n>', 'first print the journaled events from seq N (needs the journal), then follow without gaps')
    .option('--count <n>', 'exit after printing this many events')
    .action(async (kind: string, id: string, options: CommandOptions & { from?: string; count?: string }) => {
      const { subject, ref } = watchTarget(kind, id);
      const from = helpers.seqOption('--from', options.from);
      const count = helpers.seqOption('--count', options.count);
      if (from !== undefined && ref === null) throw new UsageError('--from needs one actor, not a wildcard');
      await helpers.withClient(options, async (client) => {
        const sub = client.nc.subscribe(subject);
        await client.nc.flush();
        let printed = 0;
        const last = new Map<string, number>();
        const print = (line: FeedLine): boolean => {
          const key = `${line.kind}/${line.id}`;
          if (line.seq <= (last.get(key) ?? 0)) return false; // already shown (backfill overlap)
          last.set(key, line.seq);
          writeOut(options.json ? `${JSON.stringify(line)}\n` : `${formatFeedLine(line)}\n`);
          printed += 1;
          return count !== undefined && printed >= count;
        };
        const stop = (): void => sub.unsubscribe();
        void untilSignal().then(stop);
        const follow = async (journal: Journal | null): Promise<void> => {
          if (journal && ref) {
            // Subscribed first, then read: nothing journaled in between can be missed.
            for (const e of await journal.readEvents(ref, Math.max(0, from! - 1))) {
              if (print(fromJournal(ref, e))) return stop();
            }
          }
          writeErr(`watching ${subject} (Ctrl-C to stop)\n`);
          for await (const msg of sub) {
            // Anyone allowed to publish on the feed could send anything: only well-formed lines count.
            const line = parseFeedLine(msg.data);
            if (!line) continue;
            const seen = last.get(`${line.kind}/${line.id}`);
            if (journal && seen !== undefined && line.seq > seen + 1) {
              // The live feed is fire-and-forget; the journal fills any gap.
              const gapRef = { kind: line.kind, id: line.id };
              for (const e of await journal.readEvents(gapRef, seen, line.seq - 1)) {
                if (print(fromJournal(gapRef, e))) return stop();
              }
            }
            if (print(line)) return stop();
          }
        };
        if (from !== undefined) await helpers.withJournal(options, (journal) => follow(journal));
        else await follow(null);
      });
    });

  helpers
    .withConnection(program.command('kinds').description('the actor kinds the live nodes host: commands (payloads as JSON Schema), queries, state version'))
    .option('--json', 'one JSON document on stdout: each node with its kinds')
    .action(async (options: CommandOptions) => {
      const nodes = (await helpers.withClient(options, (client) => client.gather('kinds'))).sort((x, y) => String(x.node).localeCompare(String(y.node)));
      if (options.json) {
        printJson({ nodes });
        return;
      }
      const rows = new Map<string, { stateVersion: unknown; commands: string[]; queries: string[]; nodes: string[] }>();
      for (const node of nodes) {
        for (const kind of (node.kinds as { kind: string; stateVersion: unknown; commands: Record<string, unknown>; queries: string[] }[] | undefined) ?? []) {
          const row = rows.get(kind.kind) ?? { stateVersion: kind.stateVersion, commands: Object.keys(kind.commands), queries: kind.queries, nodes: [] };
          row.nodes.push(String(node.node));
          rows.set(kind.kind, row);
        }
      }
      writeOut(`${rows.size} kind(s) on ${nodes.length} node(s)\n`);
      writeOut(`${table(['kind', 'state version', 'commands', 'queries', 'nodes'], [...rows].map(([kind, r]) => [kind, r.stateVersion, r.commands.join(' '), r.queries.join(' '), r.nodes.join(' ')]))}\n`);
    });

  helpers
    .withConnection(program.command('nodes').description('every node with its counters: uptime, commands/s, latencies, activations, snapshots'))
    .option('--json', 'one JSON document on stdout')
    .action(async (options: CommandOptions) => {
      const nodes = (await helpers.withClient(options, (client) => client.gather('stats'))).sort((x, y) => String(x.node).localeCompare(String(y.node)));
      if (options.json) {
        printJson({ nodes });
        return;
      }
      const ms = (v: unknown, key: 'p50' | 'p99'): unknown => (v as Record<string, unknown> | undefined)?.[key] ?? '';
      writeOut(`${nodes.length} node(s)\n`);
      writeOut(
        `${table(
          ['node', 'uptime s', 'commands', 'cmd/s', 'p50 ms', 'p99 ms', 'append p50', 'append p99', 'active', 'mailbox', 'activations', 'passivations', 'snapshots'],
          nodes.map((n) => [
            n.node,
            n.uptimeSeconds,
            n.commands,
            n.commandsPerSecond,
            ms(n.latencyMs, 'p50'),
            ms(n.latencyMs, 'p99'),
            ms(n.appendLatencyMs, 'p50'),
            ms(n.appendLatencyMs, 'p99'),
            n.activeActors,
            n.mailboxDepth,
            n.activations,
            n.passivations,
            n.snapshotsSaved,
          ]),
        )}\n`,
      );
    });

  helpers
    .withConnection(program.command('dashboard').description('serve the live web dashboard (loopback only by default; elsewhere behind a token)'))
    .option('--port <n>', 'port to listen on (default 4280; 0 picks a free one)')
    .option('--host <address>', 'address to listen on (default 127.0.0.1; any other than loopback requires a token)')
    .option('--token <token>', 'require this token of every request (env PPOS_DASHBOARD_TOKEN; off the loopback one is generated when none is given)')
    .option('--max-streams <n>', 'live event streams open at once, at most (default 32)')
    .action(async (options: CommandOptions & { port?: string; host?: string; token?: string; maxStreams?: string }) => {
      const port = options.port === undefined ? 4280 : helpers.seqOption('--port', options.port)!;
      if (port > 65535) throw new UsageError('--port must be at most 65535');
      const host = options.host ?? '127.0.0.1';
      const maxStreams = helpers.seqOption('--max-streams', options.maxStreams);
      if (maxStreams === 0) throw new UsageError('--max-streams must be at least 1');
      // An empty variable counts as unset, as a shell's `PPOS_DASHBOARD_TOKEN=` means.
      const givenToken = options.token ?? (process.env.PPOS_DASHBOARD_TOKEN || undefined);
      if (givenToken !== undefined && !ACCESS_TOKEN_PATTERN.test(givenToken)) {
        throw new UsageError('the dashboard token (--token or PPOS_DASHBOARD_TOKEN) must be 16 to 256 characters of A-Z a-z 0-9 . _ ~ -');
      }
      const generatedToken = givenToken === undefined && !isLoopbackHost(host) ? newAccessToken() : undefined;
      const token = givenToken ?? generatedToken;
      const config = resolveConfig(options);
      const logger = createLogger({ pretty: options.pretty ?? false, level: process.env.PPOS_LOG_LEVEL ?? 'warn' });
      const opened = await openJournal(config, logger, { waitForDatabaseMs: 5_000, poolSize: 4 });
      try {
        await helpers.withClient(options, async (client) => {
          const dashboard = await startDashboard({
            client,
            journal: opened.journal,
            kinds: cliKinds(),
            host,
            port,
            logger,
            token,
            maxStreams,
            projections: () => projectionReports(opened.journal.first.pool, undefined, opened.journal.sources),
          });
          // A generated token is shown this once, in the URL to open; a given one is never echoed.
          writeOut(`ppos dashboard: ${generatedToken === undefined ? dashboard.url : `${dashboard.url}?token=${generatedToken}`}\n`);
          await untilSignal();
          await dashboard.close();
        });
      } finally {
        await opened.close();
      }
    });
}
