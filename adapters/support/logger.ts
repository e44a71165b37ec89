import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import type { DestinationStream, Logger as PinoLogger, pino as pinoFactory } from 'pino';
import { WarmvmError } from './errors.js';
import { LOG_REDACT_PATHS, REDACTED } from './redact.js';

/** What warmvm logs through: pino's calls that it uses, pino behind them. */
export interface Logger {
  child(bindings: Record<string, unknown>): Logger;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  flush?(): void;
}

interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface LoggerOptions {
  level?: string;
  /**
   * Where lines go (tests pass a stream to read them; a terminal, prettyStderr). A function is
   * called when the first line is written. Defaults to stderr, as JSON lines.
   */
  destination?: DestinationStream | (() => DestinationStream);
}

/** pino's levels by number: a call below the logger's level is dropped before pino is even loaded. */
const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Number.POSITIVE_INFINITY };
type Level = 'debug' | 'info' | 'warn' | 'error';

// pino (and pino-pretty) are loaded from node_modules the first time a line is written: loading
// them cost every command ~10 ms bundled (~30 ms as files), and at the default level, warn, most
// runs write no line at all.
const load = createRequire(import.meta.url);

/** The process-wide logger; modules take `logger.child({ module })`. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.WARMVM_LOG ?? 'warn';
  const threshold = LEVELS[level];
  // As pino would at once: a level it does not know is a mistake to say now, not at the first line.
  if (threshold === undefined) {
    throw new WarmvmError('E_USAGE', `unknown log level "${level}"`, { hint: `set WARMVM_LOG to one of ${Object.keys(LEVELS).join(', ')} (default warn)` });
  }
  let real: PinoLogger | undefined;
  const root: Root = {
    threshold,
    get() {
      if (!real) {
        const { pino } = load('pino') as { pino: typeof pinoFactory };
        const base = { level, redact: { paths: LOG_REDACT_PATHS, censor: REDACTED }, base: undefined };
        const destination = typeof options.destination === 'function' ? options.destination() : options.destination;
        // process.stderr, not pino.destination(2): that one fsyncs stderr when the process exits (~10 ms
        // of every command's exit here), and writes to stderr are synchronous on files, pipes and terminals.
        real = pino(base, destination ?? process.stderr);
      }
      return real;
    },
    flush: () => real?.flush(),
  };
  return lazyLogger(root, []);
}

/** The one pino logger behind a logger and its children, made when first asked for. */
interface Root {
  threshold: number;
  get(): PinoLogger;
  /** Flushes pino if it was ever made. */
  flush(): void;
}

/** A logger whose children and lines reach pino only when a line at an enabled level is written. */
function lazyLogger(root: Root, bindings: Record<string, unknown>[]): Logger {
  let mine: PinoLogger | undefined;
  const target = (): PinoLogger => {
    mine ??= bindings.reduce<PinoLogger>((logger, binding) => logger.child(binding), root.get());
    return mine;
  };
  const at =
    (level: Level): LogFn =>
    (first: object | string, msg?: string) => {
      if ((LEVELS[level] ?? 0) < root.threshold) return;
      if (typeof first === 'string') target()[level](first);
      else target()[level](first, msg);
    };
  return {
    child: (binding) => lazyLogger(root, [...bindings, binding]),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    flush: root.flush,
  };
}

/**
 * Human lines on stderr, for a terminal. pino-pretty runs in this thread, not as a pino transport
 * (a worker thread): a worker costs each start its own startup. Loaded when the first line is.
 */
export function prettyStderr(options: { colorize: boolean; writeLine?: (line: string) => void }): DestinationStream {
  const pretty = load('pino-pretty') as (options: Record<string, unknown>) => DestinationStream;
  const { writeLine } = options;
  // Through the progress renderer, a log line goes above a spinner instead of through it.
  const destination = writeLine
    ? new Writable({
        write(chunk: Buffer, _encoding, done) {
          writeLine(chunk.toString('utf8').replace(/\n$/, ''));
          done();
        },
      })
    : 2;
  return pretty({ destination, colorize: options.colorize, ignore: 'time', sync: true });
}

export function moduleLogger(logger: Logger, module: string): Logger {
  return logger.child({ module });
}

/** A logger that drops everything, for callers that pass none: pino is never loaded for it. */
export const silentLogger: Logger = createLogger({ level: 'silent' });
