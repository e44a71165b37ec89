import { request } from 'node:http';
import { WarmvmError } from '../support/errors.js';
import { sleep } from '../support/sleep.js';

export interface HealthCheck {
  url: string;
  expectStatus: number;
}

export interface HealthAnswer {
  url: string;
  /** The HTTP status, or undefined when no answer came (refused, reset, timed out). */
  status: number | undefined;
  error: string | undefined;
}

export interface ProbeOptions {
  /** The bound on one request. */
  attemptTimeoutMs: number;
  /** The bound on all of it. */
  overallMs: number;
  /** First pause between rounds; it doubles up to `maxBackoffMs`. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  signal?: AbortSignal;
  onAttempt?: (answers: HealthAnswer[]) => void;
}

export class HealthTimeoutError extends WarmvmError {
  constructor(
    readonly answers: HealthAnswer[],
    overallMs: number,
  ) {
    super('E_HEALTH_TIMEOUT', `health checks did not pass within ${Math.round(overallMs / 1000)} s; last answers: ${describeAnswers(answers)}`, {
      hint: 'look at the guest console log (serial.log in the instance folder) for why the workload is not answering',
    });
  }
}

export function describeAnswers(answers: HealthAnswer[]): string {
  return answers.map((answer) => `${answer.url} → ${answer.status ?? answer.error ?? 'no answer'}`).join('; ');
}

/** One GET, bounded; never throws: the failure is in the answer. */
export async function getStatus(url: string, timeoutMs: number, signal?: AbortSignal): Promise<HealthAnswer> {
  return await new Promise((resolve) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs, signal, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ url, status: res.statusCode, error: undefined }));
      res.on('error', (error) => resolve({ url, status: res.statusCode, error: error.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ url, status: undefined, error: error.code ?? error.message }));
    req.end();
  });
}

/**
 * Polls every check until each answers its expected status in the same round. Rounds back
 * off; the last answers go into the error so a person sees what the guest said.
 */
export async function waitHealthy(checks: HealthCheck[], options: ProbeOptions): Promise<HealthAnswer[]> {
  const deadline = Date.now() + options.overallMs;
  let backoff = options.initialBackoffMs ?? 10;
  const maxBackoff = options.maxBackoffMs ?? 100;
  let answers: HealthAnswer[] = checks.map((check) => ({ url: check.url, status: undefined, error: 'not tried yet' }));
  for (;;) {
    if (options.signal?.aborted) throw new WarmvmError('E_ABORTED', 'health probing was cancelled', { cause: options.signal.reason });
    const remaining = deadline - Date.now();
    const timeout = Math.max(1, Math.min(options.attemptTimeoutMs, remaining));
    answers = await Promise.all(checks.map((check) => getStatus(check.url, timeout, options.signal)));
    options.onAttempt?.(answers);
    if (answers.every((answer, index) => answer.status === checks[index]?.expectStatus)) return answers;
    if (Date.now() + backoff >= deadline) throw new HealthTimeoutError(answers, options.overallMs);
    await sleep(backoff, options.signal);
    backoff = Math.min(backoff * 2, maxBackoff);
  }
}
