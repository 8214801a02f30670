// Every NATS subject ppos uses, in one place (CONTRACT.md section 2). Public subjects are what
// clients and operators may use; everything that passes between nodes lives under
// `ppos.internal.>`, which only the node role may publish or subscribe. Node-to-node subjects
// address a node's *incarnation* (one per process), never its node id: two processes started
// with the same id must never both receive what is meant for one of them.

/** Commands: request/reply on ppos.cmd.<kind>.<id>, served by a queue group of every node. */
export const COMMAND_SUBJECT_PREFIX = 'ppos.cmd';
/** Live views of one actor: ppos.inspect.<kind>.<id>. */
export const INSPECT_SUBJECT_PREFIX = 'ppos.inspect';
/** Journaled events, published after commit for live watchers: ppos.events.<kind>.<id>. */
export const EVENTS_SUBJECT_PREFIX = 'ppos.events';
/** Queries of the projections: ppos.query.<projection>, served by a queue group of every node. */
export const QUERY_SUBJECT_PREFIX = 'ppos.query';
/** Operator listings, answered by every node: ppos.nodes.actors, ppos.nodes.stats, ppos.nodes.kinds. */
export const NODES_SUBJECT = 'ppos.nodes';
/** The queue group of the command and inspection subscriptions. */
export const QUEUE_GROUP = 'ppos';

export const INTERNAL_PREFIX = 'ppos.internal';

export const commandSubject = (kind: string, id: string): string => `${COMMAND_SUBJECT_PREFIX}.${kind}.${id}`;
export const inspectSubject = (kind: string, id: string): string => `${INSPECT_SUBJECT_PREFIX}.${kind}.${id}`;
export const eventsSubject = (kind: string, id: string): string => `${EVENTS_SUBJECT_PREFIX}.${kind}.${id}`;

/** One node's page of its actor listing (the scatter-gather answer names where the next page is). */
export const nodeActorsSubject = (incarnation: string): string => `${NODES_SUBJECT}.actors.${incarnation}`;

/**
 * Saga steps: a command one actor sends another, on ppos.internal.step.<kind>.<id> (queue group,
 * routed to the target's owner like a client command). Only nodes may send here, so only here
 * may a message id carry the runtime's reserved `ppos:` prefix.
 */
export const STEP_SUBJECT_PREFIX = `${INTERNAL_PREFIX}.step`;
export const stepSubject = (kind: string, id: string): string => `${STEP_SUBJECT_PREFIX}.${kind}.${id}`;

/** Where a message came in: a client's command, or a saga step from another node. */
export type Origin = 'cmd' | 'step';

/** A command passed on to the owner's process: ppos.internal.fwd.<incarnation>.<origin>.<kind>.<id>. */
export const forwardPrefix = (incarnation: string): string => `${INTERNAL_PREFIX}.fwd.${incarnation}`;
export const forwardSubject = (incarnation: string, origin: Origin, kind: string, id: string): string =>
  `${forwardPrefix(incarnation)}.${origin}.${kind}.${id}`;

/** An inspection passed on to the owner's process: ppos.internal.inspect.<incarnation>.<kind>.<id>. */
export const inspectForwardPrefix = (incarnation: string): string => `${INTERNAL_PREFIX}.inspect.${incarnation}`;

/** A node joined, handed shards over or left: the others read the lease table now. */
export const CLUSTER_CHANGED_SUBJECT = `${INTERNAL_PREFIX}.cluster.changed`;
