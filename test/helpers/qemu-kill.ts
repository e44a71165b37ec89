import { watch } from 'node:fs';
import { basename } from 'node:path';
import { expect } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { isInstanceQemu, readPidFile } from '../../adapters/qemu/process.js';
import { E2E_HOME, parse, startCli, type CliResult } from './cli.js';
import { currentRun, currentState } from './trace-watch.js';

export interface KilledRun {
  result: CliResult;
  /** The QEMU killed: the pid in qemu.pid when it was. */
  killed: number;
  /** The state the run was in right after the kill, by its trace: `state`, unless the kill came late. */
  landedIn: string | undefined;
}

/**
 * Resolves once the run that began at or after `since` enters `state`; undefined when `ended()`
 * turns true first. Woken by inotify on the instance folder as each trace line is appended (the
 * recorder writes synchronously on entry), with a poll underneath: resume states last only tens of
 * milliseconds now (the RAM is mapped, not loaded), so the kill must follow the entry closely.
 */
async function enteredState(name: string, state: string, since: number, ended: () => boolean, boundMs = 120_000): Promise<boolean> {
  const { dir, traceFile } = instancePaths(E2E_HOME, name);
  const traceName = basename(traceFile);
  const deadline = Date.now() + boundMs;
  return await new Promise<boolean>((resolve, reject) => {
    let done = false;
    let watcher: ReturnType<typeof watch> | undefined;
    let timer: NodeJS.Timeout | undefined;
    const finish = (value: boolean | Error): void => {
      if (done) return;
      done = true;
      watcher?.close();
      if (timer) clearTimeout(timer);
      if (value instanceof Error) reject(value);
      else resolve(value);
    };
    const check = (): void => {
      if (done) return;
      if (currentRun(name, since).some((entry) => entry.state === state)) finish(true);
      else if (ended()) finish(false);
      else if (Date.now() > deadline) finish(new Error(`instance "${name}" did not enter ${state} within ${boundMs} ms`));
    };
    const watchFolder = (): void => {
      try {
        watcher = watch(dir, (_event, file) => {
          if (file === null || file === traceName) check();
        });
        watcher.on('error', () => undefined);
      } catch {
        // The folder is made by the start itself: until then, the poll alone.
      }
    };
    const poll = (): void => {
      if (!watcher) watchFolder();
      check();
      if (!done) timer = setTimeout(poll, watcher ? 20 : 2);
    };
    poll();
  });
}

/**
 * `warmvm start --name NAME --json ...args`, and a SIGKILL of the instance's QEMU `delayMs` after
 * the run's trace enters `state` (a state of the machine that owns that QEMU at the time). With
 * `freeze`, QEMU is first stopped (SIGSTOP) as the state is entered, so that a state lasting
 * milliseconds (a capture's) waits there on it, and killed `delayMs` later. `signal`: another
 * signal than SIGKILL (SIGABRT: QEMU dies as when it crashes by itself).
 */
export async function startKillingQemuAt(
  name: string,
  args: string[],
  state: string,
  delayMs = 0,
  options: { freeze?: boolean; signal?: NodeJS.Signals } = {},
): Promise<KilledRun> {
  const since = Date.now();
  let ended = false;
  const run = startCli(['start', '--name', name, '--json', ...args]);
  void run.finally(() => (ended = true)).catch(() => undefined);
  const entered = await enteredState(name, state, since, () => ended);
  expect(entered, `the start of "${name}" never entered ${state}`).toBe(true);
  const paths = instancePaths(E2E_HOME, name);
  const qemu = async (): Promise<number> => {
    const pid = await readPidFile(paths.pidFile);
    expect(pid !== undefined && (await isInstanceQemu(pid, paths.qmpSocket)), `no QEMU of "${name}" in ${paths.pidFile} in ${state}`).toBe(true);
    return pid as number;
  };
  const frozen = options.freeze ? await qemu() : undefined;
  if (frozen !== undefined) process.kill(frozen, 'SIGSTOP');
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  const pid = frozen ?? (await qemu());
  process.kill(pid, options.signal ?? 'SIGKILL');
  const landedIn = currentState(name, since, state.split('.')[0] as string);
  return { result: parse(await run), killed: pid, landedIn };
}
