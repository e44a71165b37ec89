import { writeInstanceState, type InstanceState } from '../adapters/instance/state.js';
import { need, type Run } from './run.js';
import { instanceState } from './vm.js';

/** A healthy run: record the QEMU that ended healthy in state.json and let it run on, detached. */
export async function handOffHealthy(run: Run, pid: number, path: string): Promise<InstanceState> {
  const runner = path.endsWith('resume') ? need(run.resumed, 'the resumed VM') : need(run.cold, 'the cold-booted VM');
  const state = instanceState(run, pid, path, runner);
  await writeInstanceState(run.paths.stateFile, state);
  await runner.handOff();
  return state;
}
