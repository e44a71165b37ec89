import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { getStatus, HealthTimeoutError, waitHealthy } from '../../../adapters/vm/health-probe.js';
import { findFreePort } from '../../../adapters/instance/ports.js';

let servers: Server[] = [];
afterEach(async () => {
  for (const server of servers) await new Promise((resolve) => server.close(resolve));
  servers = [];
});

async function serve(handler: (path: string, hits: number) => number | 'hang'): Promise<string> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits += 1;
    const answer = handler(req.url ?? '/', hits);
    if (answer === 'hang') return;
    res.statusCode = answer;
    res.end('x');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}

describe('health probe', () => {
  it('waits through 503s until every check answers as expected', async () => {
    const a = await serve((_path, hits) => (hits < 3 ? 503 : 200));
    const b = await serve(() => 204);
    const rounds: number[] = [];
    const answers = await waitHealthy(
      [
        { url: `${a}/health`, expectStatus: 200 },
        { url: `${b}/ready`, expectStatus: 204 },
      ],
      { attemptTimeoutMs: 500, overallMs: 5_000, initialBackoffMs: 5, onAttempt: () => rounds.push(1) },
    );
    expect(answers.map((answer) => answer.status)).toEqual([200, 204]);
    expect(rounds.length).toBe(3);
  });

  it('gives up at its bound and keeps the last answers for the message', async () => {
    const url = await serve(() => 500);
    const error = await waitHealthy([{ url: `${url}/health`, expectStatus: 200 }], { attemptTimeoutMs: 200, overallMs: 300, initialBackoffMs: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HealthTimeoutError);
    expect((error as HealthTimeoutError).answers[0]?.status).toBe(500);
    expect((error as Error).message).toContain('→ 500');
  });

  it('bounds each attempt: a server that never answers is a timeout, not a hang', async () => {
    const url = await serve(() => 'hang');
    const answer = await getStatus(`${url}/health`, 100);
    expect(answer.status).toBeUndefined();
    expect(answer.error).toMatch(/no answer within 100 ms/);
  });

  it('reports a refused connection', async () => {
    const port = await findFreePort();
    const answer = await getStatus(`http://127.0.0.1:${port}/health`, 500);
    expect(answer).toMatchObject({ status: undefined, error: 'ECONNREFUSED' });
  });

  it('stops when its signal fires', async () => {
    const url = await serve(() => 503);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(waitHealthy([{ url, expectStatus: 200 }], { attemptTimeoutMs: 100, overallMs: 10_000, signal: controller.signal })).rejects.toMatchObject({ code: 'E_ABORTED' });
  });
});
