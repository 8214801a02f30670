// Trace context (CONTRACT.md section 9): a W3C `traceparent` NATS header on a request is
// carried into the journal row, the reply, and every saga step the command causes, so one
// client request can be followed across actors. Spans go through `@opentelemetry/api`: with no
// SDK installed they cost next to nothing and the incoming context passes through unchanged;
// with one, a command is a span (receive → decide → journal commit → reply) and each saga step
// is a span of its own, parent of the command it causes on the other actor.
//
// The header is parsed by OpenTelemetry's W3C propagator, never by hand: a malformed or
// all-zero `traceparent` from a peer is ignored (as the W3C spec asks), never stored.
import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type Span, type TextMapGetter } from '@opentelemetry/api';
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

/**
 * The `traceparent` that names `context`'s span; undefined when it carries no valid trace. Written
 * here, not by the propagator's inject: that one writes flags of 0x10 and above as three digits
 * (`-0ff`), a header no parser accepts, and it would be journaled and passed on. Version 00
 * defines one flag, sampled; the others are not carried.
 */
export function traceparentOf(context: Context): string | undefined {
  const span = trace.getSpanContext(context);
  if (!span || !trace.isSpanContextValid(span)) return undefined;
  return `00-${span.traceId}-${span.spanId}-${span.traceFlags & TraceFlags.SAMPLED ? '01' : '00'}`;
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

/** NATS headers that carry a trace (a context's, or its traceparent already written) to the next hop; undefined when there is none. */
export function traceHeaders(trace: Context | string | undefined): MsgHdrs | undefined {
  const traceparent = typeof trace === 'string' || trace === undefined ? trace : traceparentOf(trace);
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

// A user's SDK runs inside these calls: whatever it throws must never cost a command its reply
// (or, thrown in a promise callback, take the node down). So none of them throws.

function startIn(parent: Context, name: string, kind: SpanKind, attributes?: Record<string, string | number>): Trace {
  try {
    const span = tracer.startSpan(name, { kind, ...(attributes ? { attributes } : {}) }, parent);
    return { context: trace.setSpan(parent, span), span };
  } catch {
    return { context: parent, span: trace.wrapSpanContext(INVALID_SPAN_CONTEXT) };
  }
}

/** Names a command's span once its kind and type are known (names the node knows only), with its message id. */
export function nameCommandSpan(span: Span, kind: string, type: string, messageId: string): void {
  try {
    if (!span.isRecording()) return;
    span.updateName(`ppos.command ${kind} ${type}`);
    span.setAttribute('messaging.message.id', messageId);
  } catch {
    // see above
  }
}

/** Ends a span with the outcome of what it covered. */
export function endSpan(span: Span, outcome: { readonly ok: boolean; readonly code?: string; readonly message?: string }): void {
  try {
    if (span.isRecording()) {
      if (outcome.code) span.setAttribute('ppos.outcome', outcome.code);
      if (!outcome.ok) span.setStatus({ code: SpanStatusCode.ERROR, ...(outcome.message ? { message: outcome.message } : {}) });
    }
    span.end();
  } catch {
    // see above
  }
}

export { SpanKind };
