// Recognising a message seen before. The journal's dedupe table is the authority (it is
// written in the same statement as the events); this cache only saves a round trip for
// recent repeats, and holds nothing that was not committed.
import { createHash } from 'node:crypto';
import stringify from 'safe-stable-stringify';
import { decodeTime } from 'ulid';
import type { Reply } from './envelope.js';

/** Same command, same fingerprint: key order in the payload does not matter. */
export function fingerprint(type: string, payload: Record<string, unknown>): string {
  return createHash('sha256')
    .update(stringify({ type, payload }) ?? '')
    .digest('base64url')
    .slice(0, 32);
}

export interface RememberedReply {
  readonly fingerprint: string;
  readonly reply: Reply;
}

/** A small LRU of the actor's latest replies by message id. */
export class RecentReplies {
  private readonly entries = new Map<string, RememberedReply>();

  constructor(private readonly capacity: number) {}

  get(messageId: string): RememberedReply | undefined {
    return this.entries.get(messageId);
  }

  remember(messageId: string, entry: RememberedReply): void {
    this.entries.delete(messageId);
    this.entries.set(messageId, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  /** Newest first. */
  recentIds(limit: number): string[] {
    return [...this.entries.keys()].slice(-limit).reverse();
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The answer to a message id seen before: the first reply, or ID_REUSED when the command differs. */
export function answerRepeat(entry: RememberedReply, incomingFingerprint: string, messageId: string): Reply {
  if (entry.fingerprint !== incomingFingerprint) {
    return {
      ok: false,
      duplicate: true,
      error: { code: 'ID_REUSED', message: `message id ${messageId} was already used here for a different command` },
    };
  }
  return { ...entry.reply, duplicate: true };
}

const ULID_PATTERN = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/i;

/**
 * The time a message id carries: a ULID's first 48 bits (the CLI and PposClient use ULIDs).
 * Dedupe retention ages records by it; an id without one is remembered for ever.
 */
export function messageIdTime(messageId: string): Date | undefined {
  return ULID_PATTERN.test(messageId) ? new Date(decodeTime(messageId)) : undefined;
}

/** A set that forgets its least recently added members beyond `capacity`: memory stays bounded. */
export class RecentSet {
  private readonly members = new Set<string>();

  constructor(private readonly capacity: number) {}

  has(key: string): boolean {
    return this.members.has(key);
  }

  add(key: string): void {
    this.members.delete(key);
    this.members.add(key);
    if (this.members.size > this.capacity) this.members.delete(this.members.values().next().value!);
  }
}
