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
