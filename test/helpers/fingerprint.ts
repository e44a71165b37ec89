import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import type { CliResult } from './cli.js';

export const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * What a started guest's app says its secrets hash to: the first health URL of `warmvm start
 * --json` with `healthPath` swapped for `fingerprintPath` (the workload's own: /secret-fingerprint).
 */
export async function secretFingerprint(result: CliResult, healthPath = '/health', fingerprintPath = '/secret-fingerprint'): Promise<string> {
  const url = (result.json.health as { url: string }[])[0]?.url.replace(healthPath, fingerprintPath) as string;
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return (await response.text()).trim();
}
