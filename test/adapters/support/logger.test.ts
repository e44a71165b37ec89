import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, moduleLogger } from '../../../adapters/support/logger.js';

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
});
