// A NATS message cannot be larger than the server's max_payload (1 MiB by default), and
// publishing a larger one throws. An actor's state can outgrow that (an inventory actor with
// tens of thousands of open reservations), yet its commands are applied and journaled: the
// client must still get an answer, and one oversized reply must not stop the replies after it
// (or, thrown inside a promise callback, take the node down). So a body that does not fit is
// sent in its smaller form, which names what was left out and where to read it in full.

export interface Respondable {
  respond(data?: string): boolean;
}

export const OMITTED_HINT = 'too large for one NATS message (the server\'s max_payload); read it with `ppos state <kind> <id>`, which reads the journal';

/**
 * Sends `body`, or `smaller()` when publishing `body` fails (nats-core refuses a payload over
 * the server's max_payload before writing anything). Never throws: a reply that cannot be
 * sent at all is reported to `onFailure`.
 */
export function respondWithin(msg: Respondable, body: string, smaller: () => string, onFailure: (error: Error) => void): void {
  try {
    msg.respond(body);
    return;
  } catch {
    // too large (or the connection is closing): try the smaller form
  }
  try {
    msg.respond(smaller());
  } catch (error) {
    onFailure(error as Error);
  }
}
