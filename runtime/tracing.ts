// Trace context (CONTRACT.md section 9): a W3C `traceparent` NATS header on a request is
// carried into the journal row, the reply, and every saga step the command causes, so one
// client request can be followed across actors. Spans go through `@opentelemetry/api`: with no
// SDK installed they cost next to nothing and the incoming context passes through unchanged;
// with one, a command is a span (receive → decide → journal commit → reply) and each saga step
// is a span of its own, parent of the command it causes on the other actor.
//
// The header is parsed by OpenTelemetry's W3C propagator, never by hand: a malformed or
// all-zero `traceparent` from a peer is ignored (as the W3C spec asks), never stored.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';

export const TRACEPARENT_HEADER = 'traceparent';

const propagator = new W3CTraceContextPropagator();
const tracer = trace.getTracer('ppos');

const fromNats: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => (carrier ? [...carrier.keys()] : []),
  get: (carrier, key) => {
    const value = carrier?.get(key);
    return value === undefined || value === '' ? undefined : value;
  },
};
const toRecord: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};
const fromRecord: TextMapGetter<Record<string, string | undefined>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/**
 * The trace a message belongs to: the span that handles it (a no-op span without an SDK, or
 * without a parent) inside its context.
 */
export interface Trace {
  readonly context: Context;
  readonly span: Span;
}

/** The `traceparent` that names `context`'s span; undefined when it carries no valid trace. */
export function traceparentOf(context: Context): string | undefined {
  const carrier: Record<string, string> = {};
  propagator.inject(context, carrier, toRecord);
  return carrier[TRACEPARENT_HEADER];
}

/** The context a stored or received `traceparent` names (the root context when it is absent or malformed). */
export function contextOf(traceparent: string | null | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { [TRACEPARENT_HEADER]: traceparent }, fromRecord);
}

/** The trace id a `traceparent` names (32 hex digits); undefined when it is absent or malformed. */
export function traceIdOf(traceparent: string | null | undefined): string | undefined {
  const spanContext = trace.getSpanContext(contextOf(traceparent));
  return spanContext && trace.isSpanContextValid(spanContext) ? spanContext.traceId : undefined;
}

/** NATS headers that carry `context`'s trace to the next hop; undefined when there is none. */
export function traceHeaders(context: Context): MsgHdrs | undefined {
  const traceparent = traceparentOf(context);
  if (traceparent === undefined) return undefined;
  const carried = natsHeaders();
  carried.set(TRACEPARENT_HEADER, traceparent);
  return carried;
}

/** Starts the span of one command received over NATS, child of the request's `traceparent` if it has one. */
export function receiveSpan(requestHeaders: MsgHdrs | undefined, name: string, attributes?: Record<string, string | number>): Trace {
  const parent = requestHeaders ? propagator.extract(ROOT_CONTEXT, requestHeaders, fromNats) : ROOT_CONTEXT;
  return startIn(parent, name, SpanKind.SERVER, attributes);
}

/** Starts a span as a child of `parent`'s span. */
export function childSpan(parent: Context, name: string, kind: SpanKind = SpanKind.INTERNAL, attributes?: Record<string, string | number>): Trace {
  return startIn(parent, name, kind, attributes);
}

function startIn(parent: Context, name: string, kind: SpanKind, attributes?: Record<string, string | number>): Trace {
  const span = tracer.startSpan(name, { kind, ...(attributes ? { attributes } : {}) }, parent);
  return { context: trace.setSpan(parent, span), span };
}

/** Ends a span with the outcome of what it covered. */
export function endSpan(span: Span, outcome: { readonly ok: boolean; readonly code?: string; readonly message?: string }): void {
  if (!span.isRecording()) {
    span.end();
    return;
  }
  if (outcome.code) span.setAttribute('ppos.outcome', outcome.code);
  if (!outcome.ok) span.setStatus({ code: SpanStatusCode.ERROR, ...(outcome.message ? { message: outcome.message } : {}) });
  span.end();
}

export { SpanKind };
