import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { expect } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { isProcessAlive, processCommandLine } from '../../adapters/support/process-alive.js';
import type { TraceRecord } from '../../adapters/trace/record.js';
import { E2E_HOME } from './cli.js';

/**
 * Pids of the QEMUs a run launched, in order: the output of each event that leaves a
 * `launching` state (into coldBoot.booting or resume.incoming).
 */
export function launchedPids(entries: readonly TraceRecord[]): number[] {
  return entries.flatMap((entry) => {
    const pid = (entry.event.output as { pid?: unknown } | undefined)?.pid;
    return entry.from?.endsWith('.launching') && typeof pid === 'number' ? [pid] : [];
  });
}

/**
 * Live QEMUs of the instance, found by their command line naming its QMP socket: this also
 * catches one the trace never saw (killed before its launch was recorded).
 */
export async function liveInstanceQemus(name: string, home = E2E_HOME): Promise<number[]> {
  const socket = instancePaths(home, name).qmpSocket;
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const argv = await processCommandLine(pid);
    if (argv?.some((arg) => arg.includes(`path=${socket},`)) && (await isProcessAlive(pid))) pids.push(pid);
  }
  return pids;
}

/**
 * Samples the instance's live QEMUs while a command runs (at most one may live at any time: a
 * fallback stops the failed attempt's QEMU before it launches another). `stop` returns the
 * largest set seen at once.
 */
export function watchInstanceQemus(name: string, everyMs = 50): { stop(): Promise<number[]> } {
  let most: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const live = await liveInstanceQemus(name);
      if (live.length > most.length) most = live;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return most;
    },
  };
}

/**
 * One QEMU per instance: every QEMU the run launched is gone, but `finalPid` (the one a healthy
 * run ended with, which must live), and no other QEMU of the instance runs. Returns the launched pids.
 */
export async function expectOnlyFinalQemuLeft(name: string, entries: readonly TraceRecord[], finalPid: number | undefined, context = ''): Promise<number[]> {
  const pids = launchedPids(entries);
  if (finalPid !== undefined) expect(pids.at(-1), `${context}the run ended with the last QEMU it launched`).toBe(finalPid);
  for (const pid of pids) {
    if (pid !== finalPid) expect(await isProcessAlive(pid), `${context}QEMU pid ${pid} of a failed attempt is still alive`).toBe(false);
  }
  if (finalPid !== undefined) expect(await isProcessAlive(finalPid), `${context}the final QEMU pid ${finalPid} is gone`).toBe(true);
  expect(await liveInstanceQemus(name), `${context}live QEMUs of instance "${name}"`).toEqual(finalPid === undefined ? [] : [finalPid]);
  return pids;
}

/** Nothing of a running instance is left: sockets, pidfile, state, lock. */
export function expectNoRuntimeFiles(name: string, context = ''): void {
  const paths = instancePaths(E2E_HOME, name);
  for (const file of [paths.qmpSocket, paths.qgaSocket, paths.pidFile, paths.stateFile, paths.lockFile]) expect(existsSync(file), `${context}${file} is left`).toBe(false);
}

/**
 * A cold-booted guest's RAM file (`instances/<name>/mem.raw`) is there only while that QEMU
 * runs: a capture moves it into the snapshot, a stop or a failed start removes it, and a resumed
 * instance maps the snapshot's instead.
 */
export function expectColdMemory(name: string, present: boolean, context = ''): void {
  const file = instancePaths(E2E_HOME, name).memoryFile;
  expect(existsSync(file), `${context}${file} ${present ? 'is missing: the cold-booted QEMU runs on it' : 'is left'}`).toBe(present);
}
