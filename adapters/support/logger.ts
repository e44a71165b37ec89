import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/** Field paths whose values are secrets: pino replaces them before anything is written. */
export const REDACTED_PATHS = [
  'secret',
  'secrets',
  'inputData',
  'input-data',
  '*.secret',
  '*.secrets',
  '*.inputData',
  '*["input-data"]',
  'arguments["input-data"]',
  '*.arguments["input-data"]',
];

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
  const base = { level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, base: undefined };
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
