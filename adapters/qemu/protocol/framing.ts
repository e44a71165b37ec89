import { truncate } from '../../support/redact.js';

/**
 * The wire QMP and the guest agent share: JSON objects, one per line, in both directions.
 * QEMU ends its lines with "\r\n", qemu-ga with "\n"; both are accepted. Pretty-printed QMP
 * (`-qmp ...,pretty=on`) spreads an object over many lines and is not supported: warmvm writes
 * the QEMU command line itself and never turns it on.
 */

/** A JSON object as it comes off the wire: every message either side sends is one. */
export type JsonObject = { [key: string]: unknown };

/** One line off the wire: a JSON object, or something that was not one (kept for the log). */
export type Frame = { kind: 'object'; value: JsonObject } | { kind: 'malformed'; text: string; reason: string };

const NEWLINE = 0x0a;
/**
 * The guest agent writes 0xFF right before its reply to `guest-sync-delimited`. The byte never
 * occurs in UTF-8 text, so wherever it appears it marks a clean start: whatever came before it
 * is stale or a half-written line.
 */
const SENTINEL = 0xff;

/** Cuts socket chunks into JSON objects, whatever way the chunks split the lines. */
export class JsonStreamDecoder {
  /** Bytes of the line in progress, in arrival order; concatenated once the line is complete. */
  private partial: Buffer[] = [];
  private discarding = false;

  /** Feeds one chunk; returns every frame completed by it, in order. */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i += 1) {
      const byte = chunk[i];
      if (byte === SENTINEL) {
        // Anything before the sentinel, complete or not, belongs to an older exchange.
        this.partial = [];
        this.discarding = false;
        start = i + 1;
      } else if (byte === NEWLINE) {
        if (!this.discarding) {
          this.partial.push(chunk.subarray(start, i));
          const frame = parseLine(Buffer.concat(this.partial));
          if (frame) frames.push(frame);
        }
        this.partial = [];
        start = i + 1;
      }
    }
    if (!this.discarding && start < chunk.length) this.partial.push(chunk.subarray(start));
    return frames;
  }

  /**
   * Drops everything until the next 0xFF byte, then resumes. Call it right before sending
   * `guest-sync-delimited`, so replies still in flight from an earlier (timed-out) request
   * never reach a caller.
   */
  resync(): void {
    this.partial = [];
    this.discarding = true;
  }

  /** True while waiting for the 0xFF that ends a resync. */
  get resyncing(): boolean {
    return this.discarding;
  }

  /** Bytes held for an incomplete line (for diagnostics: a peer that stops mid-line). */
  get bufferedBytes(): number {
    return this.partial.reduce((sum, part) => sum + part.length, 0);
  }
}

function parseLine(line: Buffer): Frame | undefined {
  const text = line.toString('utf8').trim();
  if (text === '') return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (isJsonObject(value)) return { kind: 'object', value };
    return { kind: 'malformed', text: truncate(text), reason: 'not a JSON object' };
  } catch (error) {
    return { kind: 'malformed', text: truncate(text), reason: error instanceof Error ? error.message : String(error) };
  }
}

/** True for a plain JSON object (not null, not an array): what every field check starts with. */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * One line to send. `bigint` values are written as plain JSON integers: the agent's
 * `guest-set-time` takes nanoseconds since the epoch, which a double cannot hold exactly.
 */
export function encodeMessage(message: JsonObject): string {
  let hasBigint = false;
  const text = JSON.stringify(message, (_key, value: unknown) => {
    if (typeof value !== 'bigint') return value;
    hasBigint = true;
    return `${BIGINT_MARK}${value.toString()}`;
  });
  const line = hasBigint ? text.replace(BIGINT_PATTERN, '$1') : text;
  return `${line}\n`;
}

// A marker no real string contains (a NUL byte and a fixed tag), swapped for the digits afterwards.
const BIGINT_MARK = '\u0000warmvm-bigint:';
const BIGINT_PATTERN = /"\\u0000warmvm-bigint:(-?\d+)"/g;
