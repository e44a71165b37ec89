import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createActor, fromPromise, waitFor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { redact } from '../../../adapters/support/redact.js';
import { TraceRecorder } from '../../../adapters/trace/recorder.js';
import { coldBootMachine, type GuestUp, type HealthResult, type PreparedBoot } from '../../../machines/cold-boot.js';
import { startMachine, type ImageResult, type StartBounds } from '../../../machines/start.js';
import { useTempDirs } from '../../helpers/temp.js';
import { uniformBounds } from '../../helpers/fake-world.js';

const temp = useTempDirs();
const bounds: StartBounds = uniformBounds(1_000);

describe('TraceRecorder', () => {
  it('records every state of the root and child machines, in order, to trace.jsonl', async () => {
    const file = join(await temp(), 'trace.jsonl');
    const recorder = new TraceRecorder(file);
    const ok = <T>(value: T) => fromPromise<T, void>(async () => value);
    const machine = startMachine.provide({
      actors: {
        preflight: ok({ qemuVersion: '10.0.2', machineType: 'pc-q35-10.0' }),
        prepareImage: ok<ImageResult>({ image: 'demo', built: false }),
        chooseAccelerator: ok({ accel: 'tcg', reason: 'test' }),
        coldBoot: coldBootMachine.provide({
          actors: {
            prepareBoot: ok<PreparedBoot>({ forwards: 1, overlay: true, runtimeDisk: true }),
            launchQemu: ok({ pid: 7 }),
            waitForGuest: fromPromise<GuestUp, void>(async () => {
              throw Object.assign(new Error('agent never answered'), { code: 'E_QGA_TIMEOUT', secret: 'abc' });
            }),
            rotateSecrets: ok({ secrets: 0, exitCode: 0 }),
            probeHealth: ok<HealthResult[]>([]),
            stopQemu: ok({ how: 'terminated' }),
          },
        }),
      },
    });
    const actor = createActor(machine, { input: { bounds, forceCold: true, capture: false, rotation: false }, inspect: recorder.inspect });
    actor.start();
    await waitFor(actor, (snapshot) => snapshot.status === 'done');
    const lines = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { state: string; event: { type: string; error?: unknown } });
    expect(lines.map((line) => line.state)).toEqual([
      'start.preflight',
      'start.image',
      'start.accelerator',
      'start.suspended',
      'start.choosing',
      'start.coldBoot',
      'coldBoot.preparing',
      'coldBoot.launching',
      'coldBoot.booting',
      'coldBoot.stopping',
      'coldBoot.failed',
      'start.failed',
    ]);
    const stopping = lines.find((line) => line.state === 'coldBoot.stopping');
    expect(stopping?.event.error).toEqual({ code: 'E_QGA_TIMEOUT', message: 'agent never answered' });
    expect(Object.keys(recorder.durations())).toContain('coldBoot.booting');
  });

  it('redacts secret-named fields at any depth', () => {
    expect(redact({ a: { apiSecret: 'x', list: [{ token: 'y', ok: 1 }] }, 'input-data': 'z' }, 0)).toEqual({
      a: { apiSecret: '[redacted]', list: [{ token: '[redacted]', ok: 1 }] },
      'input-data': '[redacted]',
    });
  });
});
