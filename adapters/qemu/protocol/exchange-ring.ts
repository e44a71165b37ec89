import { redactedJson } from '../../support/redact.js';

/** One message in or out, as the inspector and error reports show it. */
export interface Exchange {
  /** ISO time it was sent or received. */
  at: string;
  direction: 'sent' | 'received';
  kind: 'greeting' | 'command' | 'return' | 'error' | 'event' | 'unmatched' | 'malformed';
  /** The command or event name, when there is one. */
  name: string | undefined;
  /** The message as JSON text, secrets redacted, cut to a readable length. */
  text: string;
}

/** The last few exchanges on a connection, oldest first: what a person reads when a start is stuck. */
export class ExchangeRing {
  private readonly entries: Exchange[] = [];
  private readonly listeners = new Set<(exchange: Exchange) => void>();

  constructor(private readonly capacity = 20) {}

  /** Keeps one message, redacted (guest-exec's input-data never reaches the ring), and tells subscribers. */
  record(direction: Exchange['direction'], kind: Exchange['kind'], name: string | undefined, message: unknown): void {
    const exchange: Exchange = { at: new Date().toISOString(), direction, kind, name, text: redactedJson(message) };
    this.entries.push(exchange);
    if (this.entries.length > this.capacity) this.entries.shift();
    for (const listener of this.listeners) listener({ ...exchange });
  }

  /** Every exchange from now on, as recorded (redacted): for the inspector. */
  subscribe(listener: (exchange: Exchange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Copies of what the ring holds, oldest first. */
  list(): Exchange[] {
    return this.entries.map((entry) => ({ ...entry }));
  }
}
