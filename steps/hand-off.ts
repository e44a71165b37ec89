import { writeFile } from 'node:fs/promises';
import { writeInstanceState, type InstanceState } from '../adapters/instance/state.js';
import { clearResumeFailures } from '../adapters/snapshot/resume-failures.js';
import { need, type Run } from './run.js';
import { instanceState } from './vm.js';
import { finishWake } from './wake.js';

/** A healthy run: record the QEMU that ended healthy in state.json and let it run on, detached. */
export async function handOffHealthy(run: Run, pid: number, path: string): Promise<InstanceState> {
  const woken = path === 'wake';
  const resumed = woken || path.endsWith('resume');
  const runner = resumed ? need(run.resumed, 'the resumed VM') : need(run.cold, 'the cold-booted VM');
  const state = instanceState(run, pid, path, runner);
  await writeInstanceState(run.paths.stateFile, state);
  if (woken) await finishWake(run);
  else if (resumed) {
    await clearResumeFailures(need(run.pinned, 'the pinned snapshot'));
    await noteSnapshotKey(run, need(run.snapshot, 'the snapshot').key);
  }
  await runner.handOff();
  return state;
}

/** Which config's snapshot this instance ran from or captured: `reset --snapshot` removes that one. */
export async function noteSnapshotKey(run: Run, key: string): Promise<void> {
  await writeFile(run.paths.snapshotKeyFile, `${key}\n`);
}
