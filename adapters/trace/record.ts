/**
 * The shapes of trace.jsonl's lines and of the exchanges they carry: the recorder writes them, the
 * readers (`trace show`, `trace check`, `warmvm inspect`) read them back, the inspector page gets
 * them live, and the VM runner and steps make the exchanges. A leaf: it imports nothing.
 */

/**
 * A state line as read back: a state entered. Structural and loose on purpose (`t`, `from`, `ms`
 * may be missing in a hand-written trace), so the recorder's own entries can be checked and shown
 * without a round trip through a file.
 */
export interface TraceRecord {
  /** Wall time of entry (ISO). */
  t?: string;
  /** Milliseconds since the run began. */
  at: number;
  machine: string;
  /** Full dotted path, machine id first: `resume.incoming`. */
  state: string;
  /** The state this machine left, and how long it spent there. */
  from?: string;
  ms?: number;
  /** The event that caused the entry, summarized and secret-free: its `type`, `output`, `error`. */
  event: Record<string, unknown>;
  /** Set when the state entered carries a warning (its `meta.warning`), e.g. rotation turned off. */
  warning?: string;
}

/** A state line as the recorder writes it: every field set, `from` and `ms` undefined on a machine's first entry. */
export interface TraceEntry extends TraceRecord {
  t: string;
  from: string | undefined;
  ms: number | undefined;
}

/** A last exchange with QEMU, the guest agent or the health checks: already secret-free. */
export interface Exchange {
  /** Milliseconds since the run began. */
  at: number;
  channel: 'qmp' | 'qga' | 'exec' | 'health';
  /** The command (`migrate-incoming`), the guest program, or the URL. */
  what: string;
  ok: boolean;
  /** The reply, the exit and stderr, or the HTTP status, in a few words. */
  summary: string;
  ms?: number;
}

/** An exchange line of trace.jsonl: it has no `state`, so readers of states skip it. */
export interface ExchangeLine {
  /** Wall time of the exchange (ISO). */
  t: string;
  /** The same as `exchange.at`, so every line of a trace can be ordered by `at`. */
  at: number;
  exchange: Exchange;
}
