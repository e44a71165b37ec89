import { Writable } from 'node:stream';
import { pino, type Logger, type DestinationStream } from 'pino';
import { LOG_REDACT_PATHS, REDACTED } from './redact.js';

export interface LoggerOptions {
  level?: string;
  /** Where lines go (tests pass a stream to read them; a terminal, prettyStderr()). Defaults to stderr, as JSON lines. */
  destination?: DestinationStream;
}

/** The process-wide logger; modules take `logger.child({ module })`. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.WARMVM_LOG ?? 'warn';
  const base = { level, redact: { paths: LOG_REDACT_PATHS, censor: REDACTED }, base: undefined };
  // process.stderr, not pino.destination(2): that one fsyncs stderr when the process exits (~10 ms
  // of every command's exit here), and writes to stderr are synchronous on files, pipes and terminals.
  return pino(base, options.destination ?? process.stderr);
}

/**
 * Human lines on stderr, for a terminal. pino-pretty runs in this thread, not as a pino transport
 * (a worker thread): a worker costs each start its own startup, and the CLI's bundle keeps pino
 * inside it, where a transport's worker file cannot be found. Loaded only when asked for.
 */
export async function prettyStderr(options: { colorize: boolean; writeLine?: (line: string) => void }): Promise<DestinationStream> {
  const { default: pretty } = await import('pino-pretty');
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

/** A logger that drops everything, for callers that pass none. */
// Its own no-op stream: pino's default (a SonicBoom on stdout) would fsync stdout at every exit.
export const silentLogger: Logger = pino({ level: 'silent' }, { write: () => undefined });
