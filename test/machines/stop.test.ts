import { createActor, fromPromise, waitFor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { stopMachine, type StopOutput, type Suspended } from '../../machines/stop.js';
import { errorWithCode } from '../helpers/fake-actors.js';

const bounds = { checkMs: 1_000, termMs: 1_000, killMs: 1_000, cleanMs: 1_000, suspendMs: 1_000 };

async function stop(suspend: boolean, suspendFails = false): Promise<{ output: StopOutput; calls: string[] }> {
  const calls: string[] = [];
  const step = <T>(name: string, value: T): never =>
    fromPromise<T, unknown>(async () => {
      calls.push(name);
      return value;
    }) as never;
  const machine = stopMachine.provide({
    actors: {
      findInstance: step('find', { pid: 7, running: true, leftovers: [] }),
      terminate: step('terminate', { gone: true }),
      kill: step('kill', { gone: true }),
      clean: step('clean', { removed: ['/i/qemu.pid'] }),
      suspend: fromPromise<Suspended, { pid: number }>(async () => {
        calls.push('suspend');
        if (suspendFails) throw errorWithCode('suspending instance "a" failed: No space left on device', 'E_SUSPEND');
        return { dir: '/i/suspended', stateBytes: 10, ms: 5 };
      }),
    },
  });
  const actor = createActor(machine, { input: { bounds, suspend } });
  actor.start();
  const final = await waitFor(actor, (snapshot) => snapshot.status === 'done', { timeout: 2_000 });
  return { output: final.output as StopOutput, calls };
}

describe('stop machine', () => {
  it('without --suspend: SIGTERM, then the runtime files', async () => {
    const { output, calls } = await stop(false);
    expect(output).toMatchObject({ outcome: 'stopped', pid: 7, how: 'terminated' });
    expect(calls).toEqual(['find', 'terminate', 'clean']);
  });

  it('--suspend writes the VM out instead of signalling it, then cleans its runtime files', async () => {
    const { output, calls } = await stop(true);
    expect(output).toMatchObject({ outcome: 'suspended', pid: 7, suspended: { dir: '/i/suspended', stateBytes: 10 }, removed: ['/i/qemu.pid'] });
    expect(calls).toEqual(['find', 'suspend', 'clean']);
  });

  it('a suspend that fails sends no signal and removes nothing: the VM runs on', async () => {
    const { output, calls } = await stop(true, true);
    expect(output).toMatchObject({ outcome: 'failed', failure: { state: 'stop.suspending', code: 'E_SUSPEND' } });
    expect(calls).toEqual(['find', 'suspend']);
  });
});
