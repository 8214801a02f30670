#!/usr/bin/env node
// The `ppos` command (CONTRACT.md section 1). Exit codes: 0 ok, 1 refused/failed, 2 bad usage.
import { Command, CommanderError, Option } from 'commander';
import { cliKinds, loadCliKinds } from './cli-kinds.js';
import { ACTOR_ID_PATTERN } from '../actors/schema.js';
import { refKey, type ActorRef } from '../persistence/journal.js';
import { loadState } from '../runtime/recovery.js';
import { traceIdOf } from '../runtime/tracing.js';
import { persistState } from '../actors/state.js';
import { verifyJournals } from '../runtime/verify.js';
import { crossActorChecks } from '../runtime/cross-checks.js';
import { NoAnswerError, PposClient } from './client.js';
import { resolveConfig, UsageError, type RawOptions } from './config.js';
import { openJournal } from './database.js';
import { runDemo } from './demo.js';
import { keyValues, printJson, table, writeErr, writeOut } from './format.js';
import { liveNodes, type LiveNodes } from './live-state.js';
import { describeServers } from './nats.js';
import { createLogger } from './logger.js';
import { startNode } from './node.js';
import { registerInspectionTools } from './commands/inspect-tools.js';
import { registerProjectionCommands } from './commands/projections.js';
import { auditProjection } from '../runtime/projection-audit.js';
import { ProjectionStore } from '../persistence/projection-store.js';
import { builtInProjections } from '../persistence/projections/index.js';
import type { ShardedJournal } from '../persistence/sharded-journal.js';

interface CommonOptions extends RawOptions {
  readonly pretty?: boolean;
  readonly json?: boolean;
}

function withConnection(command: Command): Command {
  return command
    .option('--nats <url>', 'NATS server URL(s), comma-separated; nats://user:pass@host or nats://token@host log in, tls:// requires TLS (env PPOS_NATS_URL; default nats://127.0.0.1:4222)')
    .option('--nats-creds <file>', 'NATS .creds file: user JWT and NKEY seed (env PPOS_NATS_CREDS)')
    .option('--nats-nkey <file>', 'file holding a NATS NKEY user seed (env PPOS_NATS_NKEY)')
    .option('--nats-tls-ca <file>', 'CA certificate(s) to trust for NATS; implies TLS (env PPOS_NATS_TLS_CA)')
    .option('--nats-tls-cert <file>', 'client certificate for mutual TLS; implies TLS (env PPOS_NATS_TLS_CERT)')
    .option('--nats-tls-key <file>', "the client certificate's key (env PPOS_NATS_TLS_KEY)")
    .option('--nats-inbox-prefix <prefix>', 'prefix of this process\'s reply subjects, e.g. _INBOX.alice (env PPOS_NATS_INBOX_PREFIX; default _INBOX)')
    .option('--db <urls>', 'PostgreSQL URL of the journal, or several separated by commas that its shards spread over (env PPOS_DATABASE_URL; default: the embedded PostgreSQL)')
    .option('--data-dir <dir>', 'folder of the embedded default (env PPOS_DATA_DIR; default .ppos)')
    .option('--pretty', 'human-readable logs on stderr')
    .option('--kinds <module>', 'an ES module exporting your own actor kinds (defineKind), known besides the built-in ones (env PPOS_KINDS)');
}

function actorRef(kind: string, id: string): ActorRef {
  if (!cliKinds().has(kind)) throw new UsageError(`unknown kind ${JSON.stringify(kind)}; use one of: ${[...cliKinds().keys()].join(', ')} (your own: --kinds <module>)`);
  if (!ACTOR_ID_PATTERN.test(id)) throw new UsageError(`actor id ${JSON.stringify(id)} must match [A-Za-z0-9_-]{1,128}`);
  return { kind, id };
}

/** The kinds the live nodes advertise (ppos.nodes.kinds): none when no node answers or this user may not ask. */
async function advertisedKinds(options: CommonOptions): Promise<Map<string, string[]>> {
  const byKind = new Map<string, string[]>();
  const answers = await withClient(options, (client) => client.gather('kinds', 500)).catch(() => []);
  for (const answer of answers) {
    for (const described of (answer.kinds as { kind?: unknown }[] | undefined) ?? []) {
      if (typeof described.kind !== 'string') continue;
      byKind.set(described.kind, [...(byKind.get(described.kind) ?? []), String(answer.node)]);
    }
  }
  return byKind;
}

/**
 * For commands that only talk to nodes (send, get, inspect): a kind this process was not built
 * with is fine when a live node hosts it; the node validates the command itself.
 */
async function hostedActorRef(options: CommonOptions, kind: string, id: string): Promise<ActorRef> {
  if (cliKinds().has(kind)) return actorRef(kind, id);
  const advertised = await advertisedKinds(options);
  if (!advertised.has(kind)) {
    const known = [...new Set([...cliKinds().keys(), ...advertised.keys()])];
    throw new UsageError(`unknown kind ${JSON.stringify(kind)}: no live node hosts it; known: ${known.join(', ')} (your own: --kinds <module>)`);
  }
  if (!ACTOR_ID_PATTERN.test(id)) throw new UsageError(`actor id ${JSON.stringify(id)} must match [A-Za-z0-9_-]{1,128}`);
  return { kind, id };
}

interface PageOptions {
  readonly after?: string;
  readonly limit?: string;
}

/** `--after` / `--limit` as a page request, or undefined when neither is given. */
function pageRequest(options: PageOptions): { after?: string; limit?: number } | undefined {
  if (options.after === undefined && options.limit === undefined) return undefined;
  const limit = seqOption('--limit', options.limit);
  if (limit !== undefined && (limit < 1 || limit > 1000)) throw new UsageError('--limit must be between 1 and 1000');
  return { ...(options.after !== undefined ? { after: options.after } : {}), ...(limit !== undefined ? { limit } : {}) };
}

function seqOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${name} must be a whole number >= 0, got ${JSON.stringify(value)}`);
  return n;
}

async function withClient<T>(options: CommonOptions, work: (client: PposClient) => Promise<T>): Promise<T> {
  const config = resolveConfig(options);
  const client = await PposClient.connect(config.nats);
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

async function withJournal<T>(options: CommonOptions, work: (journal: Awaited<ReturnType<typeof openJournal>>['journal']) => Promise<T>): Promise<T> {
  const config = resolveConfig(options);
  const logger = createLogger({ pretty: options.pretty ?? false, level: process.env.PPOS_LOG_LEVEL ?? 'warn' });
  const opened = await openJournal(config, logger, { waitForDatabaseMs: 5_000, poolSize: 2 });
  try {
    return await work(opened.journal);
  } finally {
    await opened.close();
  }
}

async function auditAll(journal: ShardedJournal) {
  const store = new ProjectionStore(journal.first.pool);
  const known = new Set((await store.rows()).map((row) => row.name));
  const audits = [];
  for (const handler of builtInProjections.values()) if (known.has(handler.name)) audits.push(await auditProjection(journal.first.pool, store, handler, journal.sources));
  return audits;
}

export function buildProgram(): Command {
  const program = new Command('ppos')
    .description('ppos: durable, exactly-once actors for work orders and inventory, over NATS and PostgreSQL')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride()
    // Before any command runs: the user's kinds, so that every command below knows them.
    .hook('preAction', async (_program, command) => {
      await loadCliKinds((command.opts() as { kinds?: string }).kinds ?? process.env.PPOS_KINDS);
    });

  withConnection(program.command('start').description('run one runtime node in the foreground until SIGINT/SIGTERM'))
    .option('--node <id>', 'node id (env PPOS_NODE_ID; default a fresh ULID)')
    .option('--snapshot-every <n>', 'events between snapshots (env PPOS_SNAPSHOT_EVERY; default 100)')
    .option('--mailbox-size <n>', 'bounded mailbox capacity per actor (env PPOS_MAILBOX_SIZE; default 1000)')
    .option('--passivate-after-ms <ms>', 'unload actors idle this long (env PPOS_PASSIVATE_AFTER_MS; default 120000)')
    .option('--max-active <n>', 'most actors in memory, least recently used unloaded first (env PPOS_MAX_ACTIVE; default 100000)')
    .option('--dedupe-retention-hours <h>', 'forget message ids older than this (env PPOS_DEDUPE_RETENTION_HOURS; default: keep for ever)')
    .option('--shards <n>', 'shards actor ids hash into, fixed per journal (env PPOS_SHARDS; default 256)')
    .option('--lease-ms <ms>', 'shard lease length; renewed every third of it (env PPOS_LEASE_MS; default 6000)')
    .option('--commit-batch <n>', 'group commit: most appends per journal commit, up to 4096 (env PPOS_COMMIT_BATCH; default 256)')
    .option('--commit-linger-ms <ms>', 'group commit: wait this long to collect appends, up to 100 (env PPOS_COMMIT_LINGER_MS; default 0)')
    .option('--commit-in-flight <n>', 'group commit: most commits at once, up to 32 (env PPOS_COMMIT_IN_FLIGHT; default 4)')
    .option('--followers <names>', 'journal followers this node may run: stock,workorders,export (default), a subset, or none (env PPOS_FOLLOWERS)')
    .option('--http <host:port>', 'serve /metrics (Prometheus), /healthz and /readyz here; a bare port listens on the loopback (env PPOS_HTTP; default off)')
    .option('--lag-budget <name=ms>', 'lag a projection or the export may have, repeatable (env PPOS_LAG_BUDGETS; defaults stock=2000, workorders=5000, export=2000)', (value: string, previous: string[] = []) => [...previous, value])
    .action(async (options: CommonOptions) => {
      const config = resolveConfig(options);
      const logger = createLogger({ pretty: options.pretty ?? false });
      const node = await startNode(config, logger, { kinds: cliKinds() });
      const signalled = new Promise<void>((resolve) => {
        const onSignal = (signal: string): void => {
          logger.info({ signal }, 'stopping');
          resolve();
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      });
      // A node that stopped on its own (fenced out by a process with its id, or refused by NATS): exit 1, saying why.
      const halted = await Promise.race([signalled.then(() => null), node.halted]);
      await node.stop();
      if (halted !== null) throw new Error(halted);
    });

  withConnection(program.command('send <kind> <id> <type> [payload-json]').description('send one command and print the reply'))
    .option('--id <msgid>', 'message id (default a fresh ULID); resend with the same id to retry safely')
    .option('--timeout <ms>', 'give up after this long, retrying with the same id meanwhile (default 10000)')
    .option('--correlation-id <id>', 'correlation id carried into the journal')
    .option('--causation-id <id>', 'causation id carried into the journal')
    .option('--traceparent <header>', 'a W3C traceparent (00-<trace id>-<span id>-<flags>): the command, its events and its saga steps join that trace')
    .action(async (kind: string, id: string, type: string, payloadJson: string | undefined, options: CommonOptions & { id?: string; correlationId?: string; causationId?: string; traceparent?: string }) => {
      if (options.traceparent !== undefined && traceIdOf(options.traceparent) === undefined) {
        throw new UsageError(`--traceparent ${JSON.stringify(options.traceparent)} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>, not all zeros)`);
      }
      await hostedActorRef(options, kind, id);
      let payload: Record<string, unknown> | undefined;
      if (payloadJson !== undefined) {
        try {
          payload = JSON.parse(payloadJson) as Record<string, unknown>;
        } catch (error) {
          throw new UsageError(`payload is not JSON: ${(error as Error).message}`);
        }
        if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) throw new UsageError('payload must be a JSON object');
      }
      const timeoutMs = seqOption('--timeout', options.timeout) ?? 10_000;
      const reply = await withClient(options, (client) =>
        client.sendWithRetry(kind, id, type, payload, {
          ...(options.id ? { messageId: options.id } : {}),
          ...(options.correlationId ? { correlationId: options.correlationId } : {}),
          ...(options.causationId ? { causationId: options.causationId } : {}),
          ...(options.traceparent ? { traceparent: options.traceparent } : {}),
          timeoutMs: Math.min(timeoutMs, 5_000),
          deadlineMs: timeoutMs,
        }),
      );
      printJson(reply);
      process.exitCode = reply.ok ? 0 : 1;
    });

  withConnection(program.command('get <kind> <id>').description("print the actor's public state"))
    .option('--json', 'one JSON document on stdout')
    .option('--after <reservation>', 'inventory: the page of open reservations after this id (the reply\'s `next`)')
    .option('--limit <n>', 'inventory: open reservations in the page (default 100, at most 1000)')
    .action(async (kind: string, id: string, options: CommonOptions & PageOptions) => {
      await hostedActorRef(options, kind, id);
      const page = pageRequest(options);
      const payload = page ? { reservations: page } : undefined;
      const reply = await withClient(options, (client) => client.sendWithRetry(kind, id, 'Get', payload, { deadlineMs: 10_000 }));
      if (!reply.ok) {
        printJson(reply);
        process.exitCode = 1;
        return;
      }
      if (options.json) printJson({ kind, id, seq: reply.seq, state: reply.state });
      else writeOut(`${kind}/${id} at seq ${reply.seq}\n${keyValues(reply.state)}\n`);
    });

  withConnection(program.command('inspect <kind> <id>').description('live view of one actor: status, seq, mailbox, machine state'))
    .option('--json', 'one JSON document on stdout')
    .option('--after <reservation>', 'inventory: the page of open reservations after this id')
    .option('--limit <n>', 'inventory: open reservations in the page (default 100, at most 1000)')
    .option('--hash', 'also the sha256 of the whole state (what verify compares)')
    .action(async (kind: string, id: string, options: CommonOptions & PageOptions & { hash?: boolean }) => {
      await hostedActorRef(options, kind, id);
      const page = pageRequest(options);
      const request = { ...(page ? { page: { reservations: page } } : {}), ...(options.hash ? { hash: true } : {}) };
      const view = await withClient(options, (client) => client.inspect(kind, id, 5_000, request));
      if (options.json) printJson(view);
      else writeOut(`${keyValues(view)}\n`);
      if ((view as { ok?: boolean }).ok === false) process.exitCode = 1;
    });

  withConnection(program.command('actors').description('every active actor on every node, with mailbox depth'))
    .option('--json', 'one JSON document on stdout')
    .addOption(new Option('--sort <column>', 'order rows by mailbox depth, messages handled, seq or last use (busiest first)').choices(['mailbox', 'messages', 'seq', 'recent']))
    .action(async (options: CommonOptions & { sort?: 'mailbox' | 'messages' | 'seq' | 'recent' }) => {
      // Each node answers in pages; the client follows every node's pages to the end.
      const nodes = await withClient(options, (client) => client.activeActors());
      const rows = nodes.flatMap((n) => n.actors.map((a): Record<string, unknown> => ({ node: n.node, ...a })));
      const sortKey = { mailbox: 'mailboxDepth', messages: 'messages', seq: 'seq', recent: 'lastUsedAt' }[options.sort ?? 'seq'];
      if (options.sort) rows.sort((x, y) => String(y[sortKey] ?? '').localeCompare(String(x[sortKey] ?? ''), 'en', { numeric: true }));
      if (options.json) printJson({ nodes: nodes.map((n) => n.node), actors: rows });
      else {
        writeOut(`${nodes.length} node(s), ${rows.length} active actor(s)\n`);
        writeOut(
          `${table(
            ['node', 'kind', 'id', 'seq', 'mailbox', 'messages', 'activated'],
            rows.map((r) => [r.node, r.kind, r.id, r.seq, r.mailboxDepth, r.messages, r.activatedAt]),
          )}\n`,
        );
      }
    });

  withConnection(program.command('history <kind> <id>').description("the actor's journaled events, in order"))
    .option('--from <n>', 'first seq (default 1)')
    .option('--to <n>', 'last seq (default the latest)')
    .option('--limit <n>', 'at most this many events (a page); prints where the next page starts')
    .option('--json', 'one JSON document on stdout')
    .action(async (kind: string, id: string, options: CommonOptions & { from?: string; to?: string; limit?: string }) => {
      const ref = actorRef(kind, id);
      const from = seqOption('--from', options.from) ?? 1;
      const to = seqOption('--to', options.to);
      const limit = seqOption('--limit', options.limit);
      if (limit === 0) throw new UsageError('--limit must be at least 1');
      // One event past the page says whether there is a next one.
      const pageTo = limit === undefined ? to : Math.min(to ?? Number.MAX_SAFE_INTEGER, Math.max(0, from - 1) + limit + 1);
      const read = await withJournal(options, (journal) => journal.readEvents(ref, Math.max(0, from - 1), pageTo));
      const events = limit === undefined ? read : read.slice(0, limit);
      const next = limit !== undefined && read.length > limit ? read[limit]!.seq : null;
      if (options.json) {
        printJson(limit === undefined ? { kind, id, events } : { kind, id, events, next });
        return;
      }
      writeOut(
        `${table(
          ['seq', 'type', 'data', 'message id', 'trace', 'recorded at'],
          events.map((e) => {
            const { type, ...data } = e.event;
            return [e.seq, type, data, e.messageId, traceIdOf(e.traceparent) ?? '', e.recordedAt];
          }),
        )}\n`,
      );
      if (next !== null) writeOut(`next page: ppos history ${kind} ${id} --from ${next}${to === undefined ? '' : ` --to ${to}`} --limit ${limit}\n`);
    });

  withConnection(program.command('trace <trace-id>').description('every event one traced request wrote, across actors, in append order (the id: 32 hex digits, or a whole traceparent)'))
    .option('--limit <n>', 'at most this many events (default 1000)')
    .option('--json', 'one JSON document on stdout')
    .action(async (given: string, options: CommonOptions & { limit?: string }) => {
      const traceId = traceIdOf(given) ?? (/^[0-9a-f]{32}$/.test(given) && !/^0+$/.test(given) ? given : undefined);
      if (traceId === undefined) throw new UsageError(`${JSON.stringify(given)} is neither a trace id (32 lowercase hex digits, not all zeros) nor a W3C traceparent`);
      const limit = seqOption('--limit', options.limit) ?? 1_000;
      if (limit === 0) throw new UsageError('--limit must be at least 1');
      const events = await withJournal(options, (journal) => journal.eventsOfTrace(traceId, limit));
      if (options.json) {
        printJson({ traceId, events });
        return;
      }
      writeOut(
        `${table(
          ['actor', 'seq', 'type', 'message id', 'correlation', 'causation', 'recorded at'],
          events.map((e) => [`${e.kind}/${e.id}`, e.seq, e.event.type, e.messageId, e.correlationId ?? '', e.causationId ?? '', e.recordedAt]),
        )}\n`,
      );
      if (events.length === limit) writeOut(`(the first ${limit}; --limit for more)\n`);
    });

  withConnection(program.command('state <kind> <id>').description('the state the actor had right after its event N (time travel); without --at, its latest journaled state'))
    .option('--at <n>', 'event seq (default: the latest)')
    .option('--json', 'one JSON document on stdout')
    .action(async (kind: string, id: string, options: CommonOptions & { at?: string }) => {
      const ref = actorRef(kind, id);
      const requested = seqOption('--at', options.at);
      const actorKind = cliKinds().get(kind)!;
      const result = await withJournal(options, async (journal) => {
        const head = await journal.headSeq(ref);
        const at = requested ?? head;
        if (at > head) return { error: `${refKey(ref)} has ${head} event(s); there is no event ${at}` };
        return { loaded: await loadState(journal, actorKind, ref, at) };
      });
      if ('error' in result) {
        writeErr(`${result.error}\n`);
        process.exitCode = 1;
        return;
      }
      const { loaded } = result;
      const view = {
        kind,
        id,
        seq: loaded.seq,
        fromSnapshotSeq: loaded.snapshotSeq,
        value: loaded.state.value,
        state: actorKind.view(loaded.state),
        // The whole state, as snapshots store it: a journal read, not bounded like a reply.
        context: persistState(actorKind, loaded.state).context,
        // The timers pending at that moment (at most 100, soonest first).
        timers: (actorKind.pendingTimers?.(loaded.state) ?? [])
          .sort((a, b) => a.dueAt - b.dueAt)
          .slice(0, 100)
          .map((t) => ({ dueAt: new Date(t.dueAt).toISOString(), key: t.key, command: t.command })),
      };
      if (options.json) printJson(view);
      else writeOut(`${kind}/${id} right after event ${loaded.seq}\n${keyValues(view.state)}\n`);
    });

  withConnection(program.command('verify [kind] [id]').description('replay journals, check invariants, print a recovery evidence record'))
    .option('--all', 'every actor in the journal (the default without kind and id)')
    .option('--live', "also compare every active actor's memory with its replay (default: when a node answers on NATS)")
    .option('--no-live', 'the journal alone, even when nodes are running')
    .option('--json', 'evidence record as JSON (always printed as JSON)')
    .action(async (kind: string | undefined, id: string | undefined, options: CommonOptions & { all?: boolean; live?: boolean }) => {
      if ((kind === undefined) !== (id === undefined)) throw new UsageError('give both <kind> and <id>, or --all');
      if (kind !== undefined && options.all) throw new UsageError('give either <kind> <id> or --all, not both');
      const actors = kind !== undefined && id !== undefined ? [actorRef(kind, id)] : undefined;
      // Live comparison needs a node: asked for (--live), a node must answer; by default it is
      // used when one does, and silently skipped when NATS or every node is down.
      let client: PposClient | undefined;
      let live: LiveNodes | undefined;
      if (options.live !== false) {
        const config = resolveConfig(options);
        client = await PposClient.connect(config.nats, 'ppos-verify', options.live ? 3_000 : 500).catch((error: Error) => {
          if (options.live) throw new Error(`--live: ${error.message}`);
          return undefined;
        });
        live = client ? await liveNodes(client) : undefined;
        if (options.live && !live?.nodes) {
          await client?.close();
          throw new Error(`--live: no ppos node answers on ${describeServers(config.nats)}`);
        }
        if (live && live.nodes > 0) writeErr(`comparing ${live.active} active actor(s) on ${live.nodes} live node(s) with their replay\n`);
      }
      const liveView = live && live.nodes > 0 ? live : undefined;
      try {
        const record = await withJournal(options, (journal) =>
          verifyJournals({
            journal,
            kinds: cliKinds(),
            ...(actors ? { actors } : { crossChecks: crossActorChecks(cliKinds()) }),
            ...(liveView ? { liveState: (ref: ActorRef) => liveView.liveState(ref) } : {}),
            duplicatesAnswered: () => journal.duplicatesAnswered(),
            // Every projection against the journal up to its checkpoint (with --all only).
            ...(actors ? {} : { projections: () => auditAll(journal) }),
          }),
        );
        printJson(record);
        process.exitCode = record.confidence_status === 'trusted' ? 0 : 1;
      } finally {
        await client?.close();
      }
    });

  withConnection(program.command('demo').description('the main job on embedded defaults: a node, a realistic workload, a crash, a summary'))
    .option('--skus <n>', 'inventory actors (default 300)')
    .option('--commands <n>', 'reserve/release/consume commands (default 4000)')
    .option('--work-orders <n>', 'work orders driven through their life (default 40)')
    .option('--seed <n>', 'workload seed (default 42)')
    .addOption(new Option('--json', 'summary as one JSON document'))
    .action(async (options: CommonOptions & { skus?: string; commands?: string; workOrders?: string; seed?: string }) => {
      const summary = await runDemo({
        raw: options,
        skus: seqOption('--skus', options.skus) ?? 300,
        commands: seqOption('--commands', options.commands) ?? 4000,
        workOrders: seqOption('--work-orders', options.workOrders) ?? 40,
        seed: seqOption('--seed', options.seed) ?? 42,
        json: options.json ?? false,
        pretty: options.pretty ?? false,
      });
      process.exitCode = summary.ok ? 0 : 1;
    });

  registerInspectionTools(program, { withConnection, actorRef, seqOption, withClient, withJournal });
  registerProjectionCommands(program, { withConnection, actorRef, seqOption, withClient, withJournal });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? 0 : 2;
    }
    if (error instanceof UsageError) {
      writeErr(`ppos: ${error.message}\n`);
      return 2;
    }
    if (error instanceof NoAnswerError) {
      writeErr(`ppos: ${error.message}\n`);
      return 1;
    }
    writeErr(`ppos: ${(error as Error).message}\n`);
    return 1;
  }
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
    // Long-lived handles (pg pools, NATS) are closed above; do not wait on stray timers.
    setTimeout(() => process.exit(code), 100).unref();
  },
  (error: unknown) => {
    writeErr(`ppos: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
