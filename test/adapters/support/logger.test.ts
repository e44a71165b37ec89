import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createLogger, moduleLogger } from '../../../adapters/support/logger.js';

const BUILT_LOGGER = fileURLToPath(new URL('../../../dist/adapters/support/logger.js', import.meta.url));

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('logger', () => {
  it('tags each line with its module and redacts secret fields', () => {
    const { stream, lines } = capture();
    const log = moduleLogger(createLogger({ level: 'info', destination: stream }), 'qga');
    log.info({ secrets: { API_KEY: 'deadbeef' }, arguments: { path: '/x', 'input-data': 'QVBJX0tFWT0=' }, secret: 's' }, 'rotating');
    const [line] = lines();
    expect(line).toMatchObject({ module: 'qga', msg: 'rotating', secrets: '[redacted]', secret: '[redacted]', arguments: { path: '/x', 'input-data': '[redacted]' } });
    expect(JSON.stringify(line)).not.toContain('deadbeef');
    expect(JSON.stringify(line)).not.toContain('QVBJX0tFWT0=');
  });

  it('refuses a level pino does not know at once, naming the levels it does', () => {
    expect(() => createLogger({ level: 'verbose' })).toThrow(
      expect.objectContaining({ code: 'E_USAGE', message: 'unknown log level "verbose"', hint: expect.stringContaining('debug') }),
    );
  });

  it('loads pino only when a line at an enabled level is written', async () => {
    // A process of its own, on the compiled module (npm test builds first): vitest's may have pino loaded.
    const script = `
      import { createRequire } from 'node:module';
      const { createLogger } = await import(${JSON.stringify(BUILT_LOGGER)});
      const cache = createRequire(import.meta.url).cache;
      const pinoLoaded = () => Object.keys(cache).some((path) => path.includes('/node_modules/pino/'));
      const log = createLogger({ level: 'warn' }).child({ module: 'm' });
      log.debug({ a: 1 }, 'dropped');
      log.info('dropped too');
      const before = pinoLoaded();
      log.warn({ b: 2 }, 'written');
      console.log(JSON.stringify({ before, after: pinoLoaded() }));
    `;
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
    expect(JSON.parse(stdout)).toEqual({ before: false, after: true });
    expect(JSON.parse(stderr)).toMatchObject({ level: 40, module: 'm', b: 2, msg: 'written' });
  });
});
