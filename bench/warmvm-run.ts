import { join } from 'node:path';
import { execa } from 'execa';
import { projectRoot } from '../adapters/support/project-root.js';

export const CLI = join(projectRoot(), 'dist', 'bin', 'warmvm.js');

/** One `warmvm … --json` that must end healthy: its wall time, the phases it reports, its path. */
export interface Started {
  wall: number;
  seconds: Record<string, number>;
  path: string;
}

export async function startedHealthy(home: string, args: string[]): Promise<Started> {
  const began = performance.now();
  const result = await execa('node', [CLI, ...args, '--json'], { reject: false, env: { WARMVM_HOME: home } });
  const wall = (performance.now() - began) / 1000;
  const json = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { outcome?: string; seconds?: Record<string, number>; path?: string; error?: unknown };
  if (json.outcome !== 'healthy') throw new Error(`warmvm ${args.join(' ')} failed: ${JSON.stringify(json.error ?? result.stderr)}`);
  return { wall, seconds: json.seconds ?? {}, path: json.path ?? '?' };
}

/** Bounds each `warmvm` call of warmvmJson: a hung start or stop must not hang the whole bench. */
const CLI_TIMEOUT_MS = 1_800_000;

/** One `warmvm … --json` whatever its outcome: its wall time, its last stdout line as JSON, the tail of its stderr. */
export interface CliRun {
  wall: number;
  json: Record<string, unknown>;
  stderr: string;
}

/**
 * Runs `cli` (this tree's or another build's) against `home`, for the commands startedHealthy
 * cannot run: a stop or capture (whose outcome is never `healthy`), or a start whose failure or
 * extra fields the caller reads. Unparsable output and a timeout become the JSON's `outcome`.
 */
export async function warmvmJson(cli: string, home: string, args: string[]): Promise<CliRun> {
  const began = performance.now();
  const result = await execa('node', [cli, ...args, '--json'], { reject: false, timeout: CLI_TIMEOUT_MS, env: { WARMVM_HOME: home } });
  const wall = (performance.now() - began) / 1000;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
  } catch {
    json = { outcome: 'unparsable', stdout: result.stdout.slice(-2000) };
  }
  if (result.timedOut) json = { ...json, outcome: 'timed-out' };
  return { wall, json, stderr: result.stderr.slice(-4000) };
}
