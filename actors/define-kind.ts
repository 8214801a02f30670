// A user's actor kind from one declaration (CONTRACT.md section 10): zod schemas for its
// commands and events, a plain-JSON state, how each event evolves the state, how each command
// decides. The commands, events and state are typed from that one declaration, so a handler
// that reads a field its schema does not have, emits an event of another shape, or a client
// that sends an unknown command or a wrong payload, does not compile. The runtime sees an
// ordinary ActorKind: an XState machine with one transition per event type, built here.
import { assign, setup, type AnyMachineSnapshot } from 'xstate';
import type { z } from 'zod';
import type { ActorContext, ActorKind, AnswerPayload, Command, CrossFailure, Decision, DomainEvent, InvariantFailure, OutboundCommand, SagaSettlement } from './kind.js';
import { describeIssues, parseWith, type PayloadSchemas } from './schema.js';

/** Zod object schemas by name: a kind's commands, or its events (their data, without `type`). */
export type ObjectSchemas = Readonly<Record<string, z.ZodObject<z.ZodRawShape>>>;

/** An object type without index signatures (zod types `z.object({})` as `Record<string, never>`). */
type Fields<T> = { [P in keyof T as string extends P ? never : P]: T[P] };

/** An event of the kind, as its handlers see it: `type` plus the fields of its schema. */
export type EventOf<E extends ObjectSchemas> = { [K in keyof E & string]: { readonly type: K } & Fields<z.output<E[K]>> }[keyof E & string];

/** What a command decides: one event, a rejection, or nothing to journal (`null`, an accepted no-op). */
export type Outcome<E extends ObjectSchemas> =
  | { readonly emit: EventOf<E> }
  | { readonly reject: { readonly reason: string; readonly message: string } }
  | null;

export interface DecideContext {
  /** The actor's id. */
  readonly actorId: string;
  /** The id of the message being decided. */
  readonly messageId: string;
}

/** How old events of one type are brought to its current shape. */
export interface EventEvolution {
  /** The version events of this type are written at now (versions start at 1). */
  readonly version: number;
  /** By version v: turns the data of a version-v event into version v + 1's. */
  readonly upcast: Readonly<Record<number, (data: Record<string, unknown>) => Record<string, unknown>>>;
}

/** What a kind is made of: its name, state, commands and events. */
export interface KindShape<S extends Record<string, unknown>, C extends ObjectSchemas, E extends ObjectSchemas, T extends TagSchema = TagSchema> {
  /** The kind's name, its subject token: `[a-z][a-z0-9_-]{0,31}`. */
  readonly name: string;
  /** Bump when the state's shape changes: snapshots of other versions are then not used. */
  readonly stateVersion?: number;
  /** At least this many events between snapshots (default: the node's `--snapshot-every`). */
  readonly snapshotEvery?: number;
  /** The state of an actor no event has touched yet (plain JSON). */
  readonly initial: S;
  readonly commands: C;
  /** Commands answered from the state (with `view`) without journaling anything. */
  readonly queries?: readonly (keyof C & string)[];
  readonly events: E;
  /** For a kind with sagas: the tag each of its commands to other actors carries, echoed in the answer. */
  readonly sagaTag?: T;
}

/** The schema of a saga step's tag. */
export type TagSchema = z.ZodObject<z.ZodRawShape>;

/** How a kind behaves, typed by its shape. */
export interface KindBehaviour<S extends Record<string, unknown>, C extends ObjectSchemas, E extends ObjectSchemas, T extends TagSchema = TagSchema> {
  /** The state after each event: pure. The returned state replaces the old one. */
  readonly evolve: { readonly [K in keyof E & string]: (state: S, event: { readonly type: K } & Fields<z.output<E[K]>>) => S };
  /** Each command that is not a query: pure, over the state and the parsed payload. */
  readonly decide: { readonly [K in keyof C & string]?: (state: S, payload: Fields<z.output<C[K]>>, context: DecideContext) => Outcome<E> };
  /** What a reply and inspection show; keep it bounded (default: the whole state). */
  readonly view?: (state: S) => Record<string, unknown>;
  /** Checked after every event by the runtime and `ppos verify`: a message when broken, else null. */
  readonly invariants?: Readonly<Record<string, (state: S) => string | null>>;
  /** Invariants across actors (of any kinds) that `verify --all` checks: failures, or none. */
  readonly crossInvariants?: Readonly<Record<string, (actors: Iterable<ActorContext>) => CrossFailure[]>>;
  /** Event types whose shape changed since events were journaled. */
  readonly evolution?: { readonly [K in keyof E & string]?: EventEvolution };
  /** Sagas (the shape names `sagaTag`): commands this kind sends other actors, and what their answers do. */
  readonly saga?: SagaBehaviour<S, E, T>;
}

/**
 * A kind that talks to other actors. Everything derives from the journaled state, so a saga
 * interrupted by a crash or an ownership move goes on where it was: the runtime sends what
 * `effects` lists (again until answered, each under its deterministic id), brings each answer
 * back through `answer`, and when `open` goes from a message id to null, replies to that
 * client command with `settled`'s outcome.
 */
export interface SagaBehaviour<S, E extends ObjectSchemas, T extends TagSchema> {
  /**
   * The commands this actor still owes other actors in `state`. Each `messageId` is fixed by
   * the state (the same step, the same id, every time) and starts with `ppos:`, at most 120
   * characters.
   */
  effects(state: S, actorId: string): readonly SagaCommand<z.output<T>>[];
  /** An answer to one of its commands. */
  answer(state: S, answer: { readonly tag: z.output<T>; readonly ok: boolean; readonly reason?: string }): Outcome<E>;
  /** The message id of the client command whose saga is open in `state` (set by its decision), or null. */
  open(state: S): string | null;
  /** The reply of the command whose saga `before → after` ended (default: ok). */
  settled?(before: S, after: S): SagaSettlement['outcome'];
}

export interface SagaCommand<Tag> {
  readonly kind: string;
  readonly id: string;
  readonly messageId: string;
  readonly type: string;
  readonly payload: Record<string, unknown>;
  readonly tag: Tag;
}

/** An actor kind declared with `defineKind`: an ActorKind that also carries its types. */
export interface DefinedKind<S extends Record<string, unknown>, C extends ObjectSchemas, E extends ObjectSchemas> extends ActorKind {
  readonly commandSchemas: C;
  readonly eventSchemas: E;
  /** Types only (never set at run time): the state, commands and events of the kind. */
  readonly types?: { readonly state: S; readonly commands: C; readonly events: E };
}

const KIND_NAME = /^[a-z][a-z0-9_-]{0,31}$/;
/** A context key holding the user's state, so that replacing it whole is one assignment. */
const STATE = 'state';

/**
 * Declares a kind in two steps of one expression: its shape (which fixes the types), then its
 * behaviour, whose handlers are typed by that shape:
 * `defineKind({ name, initial, commands, events }).behaviour({ evolve, decide })`.
 */
export function defineKind<S extends Record<string, unknown>, C extends ObjectSchemas, E extends ObjectSchemas, T extends TagSchema = TagSchema>(
  shape: KindShape<S, C, E, T>,
): { behaviour(behaviour: KindBehaviour<S, C, E, T>): DefinedKind<S, C, E> } {
  return { behaviour: (behaviour) => buildKind(shape as KindShape<S, C, E>, behaviour as unknown as KindBehaviour<S, C, E>) };
}

function buildKind<S extends Record<string, unknown>, C extends ObjectSchemas, E extends ObjectSchemas>(shape: KindShape<S, C, E>, behaviour: KindBehaviour<S, C, E>): DefinedKind<S, C, E> {
  const declaration = { ...shape, ...behaviour };
  const { name, commands, events } = declaration;
  if (!KIND_NAME.test(name)) throw new Error(`kind name ${JSON.stringify(name)} must match ${KIND_NAME.source}`);
  const queries = new Set<string>(declaration.queries ?? []);
  // Names of the runtime's own commands (saga answers) are not the kind's to take.
  for (const type of Object.keys(commands)) if (type.startsWith('@')) throw new Error(`${name}: command ${type}: names starting with @ are the runtime's`);
  for (const type of Object.keys(commands)) {
    if (!queries.has(type) && !Object.hasOwn(declaration.decide, type)) throw new Error(`${name}: command ${type} is neither a query nor decided`);
  }
  for (const type of Object.keys(events)) {
    if (!Object.hasOwn(declaration.evolve, type)) throw new Error(`${name}: event ${type} has no evolve handler`);
  }
  const evolution = (declaration.evolution ?? {}) as Readonly<Record<string, EventEvolution | undefined>>;
  for (const [type, declared] of Object.entries(evolution)) {
    if (!declared) continue;
    for (let version = 1; version < declared.version; version += 1) {
      if (typeof declared.upcast[version] !== 'function') throw new Error(`${name}: event ${type} is at version ${declared.version} but has no upcaster from version ${version}`);
    }
  }

  // The handlers, keyed by plain strings: the declaration's mapped types are for its author.
  const evolveByType = declaration.evolve as unknown as Readonly<Record<string, (state: S, event: DomainEvent) => S>>;
  const decideByType = declaration.decide as unknown as Readonly<Record<string, ((state: S, payload: unknown, context: DecideContext) => Outcome<E>) | undefined>>;
  const stateOf = (snapshot: AnyMachineSnapshot): S => (snapshot.context as Record<string, S>)[STATE]!;

  const machine = setup({ types: { context: {} as Record<string, S>, events: {} as DomainEvent } }).createMachine({
    id: name,
    context: { [STATE]: declaration.initial },
    on: Object.fromEntries(
      Object.keys(events).map((type) => [type, { actions: assign(({ context, event }) => ({ [STATE]: evolveByType[type]!(context[STATE]!, event) })) }]),
    ),
  });

  const eventSchemas = events as Readonly<Record<string, z.ZodObject<z.ZodRawShape>>>;
  const invariants = Object.entries(declaration.invariants ?? {});
  const saga = declaration.saga;
  if (saga && !declaration.sagaTag) throw new Error(`${name}: a saga needs sagaTag in the kind's shape`);

  /** A handler's outcome as the runtime's decision; an event its schema refuses is the handler's bug, caught before it is journaled. */
  function decision(decidedBy: string, outcome: Outcome<E>): Decision {
    if (outcome === null) return { outcome: 'accept', event: null };
    if ('reject' in outcome) return { outcome: 'reject', reason: outcome.reject.reason, message: outcome.reject.message };
    const { type, ...data } = outcome.emit as DomainEvent;
    const schema = Object.hasOwn(eventSchemas, type) ? eventSchemas[type] : undefined;
    if (!schema) throw new Error(`${name}: ${decidedBy} emitted ${JSON.stringify(type)}, which is not one of its events`);
    const parsed = schema.safeParse(data);
    if (!parsed.success) throw new Error(`${name}: ${decidedBy} emitted ${type} that does not match its schema: ${describeIssues(parsed.error)}`);
    return { outcome: 'accept', event: { ...(parsed.data as Record<string, unknown>), type } };
  }

  function sagaMembers(behaviour: SagaBehaviour<S, E, TagSchema>, tag: TagSchema): Pick<ActorKind, 'answers' | 'pendingEffects' | 'openSaga' | 'settlement'> {
    return {
      answers: {
        tag: tag as unknown as z.ZodType<Record<string, unknown>>,
        decide: (snapshot, answer: AnswerPayload) => decision('an answer', behaviour.answer(stateOf(snapshot), answer as Parameters<typeof behaviour.answer>[1])),
      },
      pendingEffects: (snapshot, actorId): OutboundCommand[] =>
        behaviour.effects(stateOf(snapshot), actorId).map((effect) => {
          if (!effect.messageId.startsWith('ppos:') || effect.messageId.length > 120) {
            throw new Error(`${name}: saga step id ${JSON.stringify(effect.messageId)} must start with ppos: and have at most 120 characters`);
          }
          return { ...effect, tag: effect.tag as Record<string, unknown> };
        }),
      openSaga: (snapshot) => behaviour.open(stateOf(snapshot)),
      settlement(before, after): SagaSettlement | null {
        const open = behaviour.open(stateOf(before));
        if (open === null || behaviour.open(stateOf(after)) !== null) return null;
        return { messageId: open, outcome: behaviour.settled ? behaviour.settled(stateOf(before), stateOf(after)) : { ok: true } };
      },
    };
  }

  return {
    kind: name,
    machineVersion: declaration.stateVersion ?? 1,
    ...(declaration.snapshotEvery === undefined ? {} : { snapshotEvery: declaration.snapshotEvery }),
    crossInvariants: Object.entries(declaration.crossInvariants ?? {}).map(([invariant, check]) => ({ name: invariant, check })),
    machine,
    evolve: (context, event) => (Object.hasOwn(events, event.type) ? { [STATE]: evolveByType[event.type]!(context[STATE] as S, event) } : undefined),
    queries,
    commands: new Set(Object.keys(commands)),
    commandSchemas: commands,
    eventSchemas: events,
    parseCommand: (type, payload) => parseWith(name, commands as unknown as PayloadSchemas, type, payload),
    decide(snapshot: AnyMachineSnapshot, command: Command, actorId: string, messageId: string): Decision {
      const handler = decideByType[command.type];
      if (!handler) return { outcome: 'reject', reason: 'UNKNOWN_COMMAND', message: `${name} does not decide ${command.type}` };
      return decision(command.type, handler(stateOf(snapshot), command.payload, { actorId, messageId }));
    },
    ...(saga ? sagaMembers(saga, declaration.sagaTag!) : {}),
    view: (snapshot) => (declaration.view ? declaration.view(stateOf(snapshot)) : stateOf(snapshot)),
    eventVersion: (type) => evolution[type]?.version ?? 1,
    upcast(event: DomainEvent, fromVersion: number): DomainEvent {
      const step = evolution[event.type]?.upcast[fromVersion];
      if (!step) throw new Error(`${name} has no upcaster for ${event.type} from version ${fromVersion}`);
      const { type, ...data } = event;
      return { ...step(data), type };
    },
    invariants: invariants.map(([invariant]) => invariant),
    invariantFailures(snapshot: AnyMachineSnapshot): InvariantFailure[] {
      const state = stateOf(snapshot);
      const failures: InvariantFailure[] = [];
      for (const [invariant, check] of invariants) {
        const detail = check(state);
        if (detail !== null) failures.push({ invariant, detail });
      }
      return failures;
    },
  };
}
