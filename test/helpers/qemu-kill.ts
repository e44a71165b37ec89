import { expect } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { isInstanceQemu, readPidFile } from '../../adapters/qemu/process.js';
import { E2E_HOME, parse, startCli, type CliResult } from './cli.js';
import { currentState, waitForState } from './trace-watch.js';

export interface KilledRun {
  result: CliResult;
  /** The QEMU killed: the pid in qemu.pid when it was. */
  killed: number;
  /** The state the run was in right after the kill, by its trace: `state`, unless the kill came late. */
  landedIn: string | undefined;
}

/**
 * `warmvm start --name NAME --json ...args`, and a SIGKILL of the instance's QEMU `delayMs` after
 * the run's trace enters `state` (a state of the machine that owns that QEMU at the time).
 */
export async function startKillingQemuAt(name: string, args: string[], state: string, delayMs = 0): Promise<KilledRun> {
  const since = Date.now();
  let ended = false;
  const run = startCli(['start', '--name', name, '--json', ...args]);
  void run.finally(() => (ended = true)).catch(() => undefined);
  const entered = await waitForState(name, state, since, () => ended);
  expect(entered, `the start of "${name}" never entered ${state}`).toBeDefined();
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  const paths = instancePaths(E2E_HOME, name);
  const pid = await readPidFile(paths.pidFile);
  expect(pid !== undefined && (await isInstanceQemu(pid, paths.qmpSocket)), `no QEMU of "${name}" in ${paths.pidFile} in ${state}`).toBe(true);
  process.kill(pid as number, 'SIGKILL');
  const landedIn = currentState(name, since, state.split('.')[0] as string);
  return { result: parse(await run), killed: pid as number, landedIn };
}
