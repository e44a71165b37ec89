import { fromPromise, type SimulatedClock } from 'xstate';
import { captureMachine } from '../../machines/capture.js';
import { coldBootMachine } from '../../machines/cold-boot.js';
import { resumeMachine } from '../../machines/resume.js';
import { startMachine, type SnapshotChoice, type StartBounds } from '../../machines/start.js';

/** What one call of a fake actor does. `late` settles well after the call, in simulated time. */
export type Behaviour = { kind: 'ok' } | { kind: 'fail'; code: string } | { kind: 'hang' } | { kind: 'late'; ms: number } | { kind: 'qemuExits' };

/** Every actor the root machine and its children call, by the name the world knows it by. */
export const ACTOR_NAMES = [
  'preflight',
  'image',
  'accel',
  'choose',
  'setAside',
  'cold.prepare',
  'cold.launch',
  'cold.guest',
  'cold.rotate',
  'cold.health',
  'cold.stop',
  'capture.pause',
  'capture.migrate',
  'capture.quit',
  'capture.store',
  'capture.recover',
  'resume.prepare',
  'resume.launch',
  'resume.incoming',
  'resume.cont',
  'resume.rotate',
  'resume.health',
  'resume.stop',
] as const;
export type ActorName = (typeof ACTOR_NAMES)[number];

/** Failure codes a resume treats as damage to the snapshot itself (set aside, captured anew). */
export const DAMAGE_CODES = ['E_SNAPSHOT_CORRUPT', 'E_SNAPSHOT_MISSING', 'E_MIGRATION_INCOMING', 'E_NOT_PAUSED'];
export const OTHER_CODES = ['E_QMP', 'E_ROTATE', 'E_HEALTH', 'E_IO', 'E_QEMU_EXITED'];

export interface Script {
  /** Per actor, what its successive calls do; a call past the list succeeds. */
  behaviours: Partial<Record<ActorName, Behaviour[]>>;
  snapshot: SnapshotChoice['status'];
  /** The runstate QEMU reports when migrate-incoming settles. */
  incomingRunstate: string;
  /** Ctrl-C right after this actor call (1-based), if any. */
  cancelAtCall: number | undefined;
}

export const BOUND_MS = 1_000;

export function uniformBounds(ms = BOUND_MS): StartBounds {
  return {
    preflightMs: ms,
    imageMs: ms,
    accelMs: ms,
    chooseMs: ms,
    setAsideMs: ms,
    launchMs: ms,
    bootMs: ms,
    rotateMs: ms,
    healthMs: ms,
    stopMs: ms,
    prepareMs: ms,
    coldPrepareMs: ms,
    incomingMs: ms,
    contMs: ms,
    pauseMs: ms,
    migrateMs: ms,
    quitMs: ms,
    storeMs: ms,
    recoverMs: ms,
  };
}

/** Decides when a settled fake's result reaches the machine; the race tests hand this to fc.scheduler. */
export type Settle = <T>(label: string, value: () => T) => Promise<T>;

/**
 * The system the fakes act on: QEMU processes, the guest's secrets, the snapshot store. Each fake
 * changes it as the real adapter would, and notes every broken rule in `violations`, so the
 * invariants of DESIGN.md can be checked on the world as well as on the trace.
 */
export class World {
  readonly calls: ActorName[] = [];
  readonly violations: string[] = [];
  readonly live = new Set<number>();
  readonly launched: number[] = [];
  /** Per QEMU: whether the guest holds fresh secrets or the placeholders it booted or was captured with. */
  readonly secrets = new Map<number, 'placeholder' | 'fresh'>();
  /** Per incoming QEMU: whether migrate-incoming completed, and the runstate it left. */
  readonly incoming = new Map<number, string | undefined>();
  /** Every secret value a rotation generated: none may appear in a trace. */
  readonly secretValues: string[] = [];
  /** Reasons passed to setAsideSnapshot. */
  readonly setAsides: string[] = [];
  storeVersion = 0;
  cancelled = false;
  launchesAfterCancel = 0;
  private current: number | undefined;
  private resumeQemu: number | undefined;
  /** The current cold boot's QEMU, and whether its ports, overlay and runtime disk were made first. */
  private coldQemu: number | undefined;
  private coldPrepared = false;
  private nextPid = 1000;
  private readonly counts = new Map<ActorName, number>();
  onCancelPoint: (() => void) | undefined;

  constructor(
    readonly script: Script,
    private readonly clock: SimulatedClock,
    private readonly settle: Settle = async (_label, value) => value(),
  ) {}

  /** The root machine with every actor, its children's included, replaced by this world's fakes. */
  machine() {
    // Typed loosely on purpose: each fake stands in for an actor of the machine's own output type.
    const step = <T, I = void>(name: ActorName, effect: (input: I) => T, options: { launches?: boolean } = {}): never =>
      fromPromise<T, I>(({ input, signal }) => this.call(name, signal, () => effect(input), options.launches ?? false)) as never;
    return startMachine.provide({
      actors: {
        preflight: step('preflight', () => ({ qemuVersion: '10.0.2', machineType: 'pc-q35-10.0' })),
        prepareImage: step('image', () => ({ image: 'demo', built: false })),
        chooseAccelerator: step('accel', () => ({ accel: 'tcg', reason: 'fake' })),
        chooseSnapshot: step('choose', (): SnapshotChoice => this.choice()),
        setAsideSnapshot: step('setAside', (input: { reason: string }) => {
          this.setAsides.push(input.reason);
          return { setAside: '/fake/snapshots/x.set-aside' };
        }),
        coldBoot: coldBootMachine.provide({
          actors: {
            prepareBoot: step('cold.prepare', () => {
              this.coldPrepared = true;
              return { forwards: 1, overlay: true, runtimeDisk: true };
            }),
            launchQemu: step('cold.launch', () => ({ pid: this.requireCurrent() }), { launches: true }),
            waitForGuest: step('cold.guest', () => ({ runstate: 'running', agent: true })),
            rotateSecrets: step('cold.rotate', () => this.rotate()),
            probeHealth: step('cold.health', () => [{ url: 'http://127.0.0.1:1/health', status: 200 }]),
            stopQemu: step('cold.stop', () => (this.coldQemu === undefined ? { how: 'nothing was launched' } : this.stopCurrent())),
          },
        }),
        capture: captureMachine.provide({
          actors: {
            pauseVm: step('capture.pause', () => ({ runstate: 'paused' })),
            migrateToFile: step('capture.migrate', () => ({ apparentBytes: 1 << 28, ms: 500 })),
            quitQemu: step('capture.quit', () => {
              this.kill();
              return { exited: true };
            }),
            storeSnapshot: step('capture.store', () => {
              this.storeVersion += 1;
              return { snapshot: '/fake/snapshots/x', compressedBytes: 1 << 20 };
            }),
            recoverVm: step('capture.recover', () => {
              this.kill();
              return { dropped: ['the capture folder'] };
            }),
          },
        }),
        resume: resumeMachine.provide({
          actors: {
            prepareState: step('resume.prepare', () => ({ stateFile: '/fake/state.raw', decompressed: false })),
            launchIncoming: step('resume.launch', () => ({ pid: this.requireCurrent() }), { launches: true }),
            migrateIncoming: step('resume.incoming', () => {
              this.incoming.set(this.requireCurrent(), this.script.incomingRunstate);
              return { runstate: this.script.incomingRunstate };
            }),
            cont: step('resume.cont', () => {
              const pid = this.requireCurrent();
              if (this.incoming.get(pid) !== 'paused') this.violations.push(`cont sent to QEMU ${pid} whose incoming migration left runstate ${String(this.incoming.get(pid))}`);
              return { runstate: 'running' };
            }),
            rotateSecrets: step('resume.rotate', () => this.rotate()),
            probeHealth: step('resume.health', () => [{ url: 'http://127.0.0.1:1/health', status: 200 }]),
            stopQemu: step('resume.stop', () => (this.resumeQemu === undefined ? { how: 'nothing was launched' } : this.stopCurrent())),
          },
        }),
      },
    });
  }

  /** The QEMU a healthy run ends with, and what its guest's secrets are. */
  finalSecrets(pid: number): 'placeholder' | 'fresh' | undefined {
    return this.secrets.get(pid);
  }

  cancel(): void {
    this.cancelled = true;
  }

  private choice(): SnapshotChoice {
    if (this.script.snapshot === 'setAside') return { status: 'setAside', reason: 'the snapshot was taken by QEMU 9.2.0, this host runs 10.0.2' };
    return { status: this.script.snapshot };
  }

  /** One actor call: its effects happen when it settles as `ok`; a launch spawns QEMU at once. */
  private call<T>(name: ActorName, signal: AbortSignal, effect: () => T, launches: boolean): Promise<T> {
    this.calls.push(name);
    const nth = this.counts.get(name) ?? 0;
    this.counts.set(name, nth + 1);
    if (this.calls.length === this.script.cancelAtCall) queueMicrotask(() => this.onCancelPoint?.());
    // Each resume and each cold boot starts with no QEMU of its own.
    if (name === 'resume.prepare') this.resumeQemu = undefined;
    if (name === 'cold.prepare') {
      this.coldQemu = undefined;
      this.coldPrepared = false;
    }
    // Spawning comes before anything can fail: a failed launch may still have left a QEMU running.
    if (launches) this.spawn(name);
    const behaviour = this.script.behaviours[name]?.[nth] ?? { kind: 'ok' };
    const failure = (code: string) =>
      Object.assign(new Error(`fake ${name} failed: ${code}`), { code, hint: 'fake', inputData: this.secretValues.join(','), secrets: [...this.secretValues] });
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(Object.assign(new Error(`${name} aborted`), { code: 'E_ABORTED' }));
      signal.addEventListener('abort', onAbort, { once: true });
      const done = (): void => {
        if (signal.aborted) return;
        try {
          resolve(effect());
        } catch (error) {
          reject(error);
        }
      };
      const fail = (code: string): void => {
        if (signal.aborted) return;
        reject(failure(code));
      };
      switch (behaviour.kind) {
        case 'ok':
          void this.settle(`${name} ok`, () => undefined).then(done);
          return;
        case 'fail':
          void this.settle(`${name} fails ${behaviour.code}`, () => undefined).then(() => fail(behaviour.code));
          return;
        case 'hang':
          return;
        case 'late': {
          const timer = this.clock.setTimeout(() => void this.settle(`${name} late`, () => undefined).then(done), behaviour.ms);
          signal.addEventListener('abort', () => this.clock.clearTimeout(timer), { once: true });
          return;
        }
        case 'qemuExits':
          void this.settle(`${name}: QEMU exits`, () => undefined).then(() => {
            this.kill();
            fail('E_QEMU_EXITED');
          });
      }
    });
  }

  private spawn(name: ActorName): void {
    if (this.live.size > 0) this.violations.push(`${name} launched a QEMU while ${[...this.live].join(', ')} still ran`);
    if (this.cancelled) this.launchesAfterCancel += 1;
    const pid = (this.nextPid += 1);
    this.live.add(pid);
    this.launched.push(pid);
    this.current = pid;
    if (name === 'resume.launch') this.resumeQemu = pid;
    if (name === 'cold.launch') {
      // QEMU's argv names the host ports, the overlay and the runtime disk: all must exist before it.
      if (!this.coldPrepared) this.violations.push(`cold.launch launched QEMU ${pid} before cold.prepare had made its ports, overlay and runtime disk`);
      this.coldQemu = pid;
    }
    this.secrets.set(pid, 'placeholder');
  }

  private requireCurrent(): number {
    if (this.current === undefined || !this.live.has(this.current)) throw Object.assign(new Error('no QEMU runs'), { code: 'E_QEMU_EXITED' });
    return this.current;
  }

  private kill(): void {
    if (this.current !== undefined) this.live.delete(this.current);
  }

  private stopCurrent(): { how: string } {
    this.kill();
    return { how: 'terminated' };
  }

  private rotate(): { secrets: number; exitCode: number } {
    const pid = this.requireCurrent();
    const value = `${(this.secretValues.length + 1).toString(16).padStart(8, '0')}${'c0ffee'.repeat(9)}`;
    this.secretValues.push(value);
    this.secrets.set(pid, 'fresh');
    return { secrets: 1, exitCode: 0 };
  }
}
