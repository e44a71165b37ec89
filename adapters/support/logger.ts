import { pino, type Logger, type DestinationStream } from 'pino';
import { LOG_REDACT_PATHS, REDACTED } from './redact.js';

export interface LoggerOptions {
  level?: string;
  /** Where lines go; tests pass a stream to read them. Defaults to stderr. */
  destination?: DestinationStream;
  /** Pretty, human lines (on a terminal) instead of JSON lines. */
  pretty?: boolean;
}

/** The process-wide logger; modules take `logger.child({ module })`. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.WARMVM_LOG ?? 'warn';
  const base = { level, redact: { paths: LOG_REDACT_PATHS, censor: REDACTED }, base: undefined };
  if (options.destination) return pino(base, options.destination);
  if (options.pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, ignore: 'time' } },
    });
  }
  return pino(base, pino.destination(2));
}

export function moduleLogger(logger: Logger, module: string): Logger {
  return logger.child({ module });
}

/** A logger that drops everything, for callers that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
