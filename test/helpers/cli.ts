import { execa, type ResultPromise } from 'execa';
import { join } from 'node:path';
import { projectRoot } from '../../adapters/support/project-root.js';

export const CLI = join(projectRoot(), 'dist', 'bin', 'warmvm.js');

/**
 * The e2e tests share one home so the demo guest is built once per run; each test uses its
 * own instance name. `WARMVM_E2E_HOME` moves it.
 */
export const E2E_HOME = process.env.WARMVM_E2E_HOME ?? '/tmp/warmvm-e2e';

export interface CliResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  json: Record<string, unknown>;
}

export function startCli(args: string[], env: Record<string, string> = {}): ResultPromise<{ reject: false; env: Record<string, string>; stdin: 'ignore' }> {
  return execa('node', [CLI, ...args], { reject: false, env: { WARMVM_HOME: E2E_HOME, ...env }, stdin: 'ignore' });
}

export async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const result = await startCli(args, env);
  return parse(result);
}

export function parse(result: { exitCode?: number; stdout: unknown; stderr: unknown }): CliResult {
  const stdout = String(result.stdout);
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
  } catch {
    // not JSON output
  }
  return { exitCode: result.exitCode, stdout, stderr: String(result.stderr), json };
}
