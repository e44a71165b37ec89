/**
 * What a long step tells the person waiting for it. The CLI draws it to suit where it runs: on a
 * terminal one bar or spinner per step, on a pipe or in CI a few plain lines, with --quiet nothing.
 */
export interface Progress {
  /** A line that stays: what happens now, a choice made. */
  line(text: string): void;
  /** Bytes a long step named `what` has moved; `total` undefined when not known. One bar per `what`. */
  bytes(what: string, done: number, total: number | undefined): void;
  /** A long step without a byte count (a guest build): one spinner per `what`, showing its latest news. */
  activity(what: string, news: string): void;
  /** The current bar or spinner ends, leaving `summary` (or its last state) as a line. */
  done(summary?: string): void;
}

/** Progress nobody sees: --quiet, --json on a pipe, a benchmark. */
export const SILENT_PROGRESS: Progress = {
  line() {},
  bytes() {},
  activity() {},
  done() {},
};
