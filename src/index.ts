// ppos as a library (CONTRACT.md section 10): `import { ... } from 'ppos'`. Importing it starts
// nothing and changes nothing global; see docs/library.md for the API on one page.
export { defineKind } from '../actors/define-kind.js';
export type { DecideContext, DefinedKind, EventEvolution, EventOf, KindBehaviour, KindShape, ObjectSchemas, Outcome, SagaBehaviour, SagaCommand, TagSchema } from '../actors/define-kind.js';
export type { ActorContext, ActorKind, CrossFailure, DomainEvent } from '../actors/kind.js';
export { inventory, inventoryCommands } from '../actors/inventory.js';
export { workorder, workorderCommands } from '../actors/workorder.js';
export { startPposNode } from './library/start.js';
export type { NodeOptions, StartOptions } from './library/start.js';
export type { RunningNode } from './node.js';
export { PposClient, NoAnswerError } from './client.js';
export type { RetryOptions, SendOptions } from './client.js';
export { KindClient, clientFor } from './library/typed-client.js';
export type { CommandArgs, KindCommands } from './library/typed-client.js';
export type { ErrorCode, Reply, ReplyError } from '../runtime/envelope.js';
