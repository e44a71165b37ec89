import { fromPromise, type SimulatedClock } from 'xstate';
import { captureMachine } from '../../machines/capture.js';
import { coldBootMachine } from '../../machines/cold-boot.js';
import { resumeMachine } from '../../machines/resume.js';
import { startMachine, type CaptureWait, type SnapshotChoice, type StartBounds } from '../../machines/start.js';

/** What one call of a fake actor does. `late` settles well after the call, in simulated time. */
export type Behaviour = { kind: 'ok' } | { kind: 'fail'; code: string } | { kind: 'hang' } | { kind: 'late'; ms: number } | { kind: 'qemuExits'; crash?: boolean };

/** Every actor the root machine and its children call, by the name the world knows it by. */
export const ACTOR_NAMES = [
  'preflight',
  'image',
  'accel',
  'suspended',
  'choose',
  'awaitCapture',
  'setAside',
  'pull',
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
  'capture.continue',
  'capture.rotate',
  'capture.health',
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
  /** What `choosing` finds: `capturing` is another start holding the config's capture lock. */
  snapshot: SnapshotChoice['status'];
  /** A usable snapshot's resumes in a row that failed after `cont`, found by choosing or after the wait (0 when left out). */
  failuresInARow?: number;
  /** What the other start left once it let go of the capture lock (`usable` when left out). */
  awaited?: CaptureWait['status'];
  /** Whether setAsideSnapshot gets the capture lock (true when left out; false: another start took it meanwhile). */
  setAsideCapturing?: boolean;
  /** What a pull from the config's registry gives when its call succeeds (`usable` when left out); only with the `pull` flag. */
  pulled?: 'usable' | 'failed';
  /** What `stop --suspend` left (`none` when left out): a state with fresh secrets, one without (suspended after --no-rotation), or one set aside. */
  suspended?: 'none' | 'wakeable' | 'wakeableUnrotated' | 'setAside';
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
    captureWaitMs: ms,
    setAsideMs: ms,
    pullMs: ms,
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
 * The snapshot store as one start's steps see it (steps/start.ts, capture.ts, resume.ts). The
 * default is scripted (the snapshot and the other start are what `Script` says); the clones test
 * gives each run a side on one shared store model (fake-store.ts).
 */
export interface SnapshotSide {
  /** chooseSnapshot: the config's snapshot, else (one that cannot be used set aside) the capture lock, or who holds it. */
  choose(capture: boolean): Promise<SnapshotChoice>;
  /** awaitCapture: polls the lock until its holder let go, then what it left (taking the lock when it left nothing). */
  awaitCapture(signal: AbortSignal, sleep: (ms: number) => Promise<void>): Promise<CaptureWait>;
  /** setAsideSnapshot: under the capture lock (busy: nothing done), the snapshot the run resumed set aside if it is still the one there. */
  setAside(reason: string): Promise<{ setAside: string | undefined; capturing: boolean }>;
  /** capture.pause, before the vCPUs pause: the capture lock (E_CAPTURE_BUSY when another start holds it), then a private capture folder. */
  beginCapture(): Promise<void>;
  /** capture.migrate: the device state written into the capture folder. */
  migrate(): Promise<void>;
  /** capture.store: the memory file moved in, the files frozen (until then the signal stops it), the manifest, one rename publishes it, the lock let go. */
  store(signal: AbortSignal): Promise<string>;
  /** capture.recover: the unfinished capture folder dropped. */
  recover(): Promise<void>;
  /** resume.prepare: the snapshot folder pinned, its manifest read and its files checked through the pin, the disk overlay made. */
  prepare(): Promise<void>;
  /** resume.launch, as QEMU starts: it maps the pinned memory file read-only, copy-on-write, and opens the overlay. Throws when QEMU cannot open them. */
  map(pid: number): Promise<void>;
  /** resume.incoming: QEMU reads the pinned device state file. */
  incoming(pid: number): Promise<void>;
  /** resume.cont: the guest runs and writes its RAM. */
  cont(pid: number): Promise<void>;
  /** resume.stop with `countFailure` (the guest failed after `cont`), once QEMU stopped: the failure counted in the pinned folder. */
  countFailure(): Promise<void>;
}

/** A capture step that finds the lock taken by another start: what steps/capture.ts throws. */
export function captureBusy(holder: number): Error & { code: string; hint: string } {
  return Object.assign(new Error(`another warmvm (pid ${holder}) is capturing a snapshot of this config right now`), {
    code: 'E_CAPTURE_BUSY',
    hint: 'wait for it to finish; its snapshot serves this instance too',
  });
}

/** The other start of the scripted side: it holds the lock when `choosing` says `capturing`. */
const OTHER_START = 4242;

/** The snapshot and the other start as the script says; the lock this start holds is tracked, and misuse noted. */
class ScriptedSnapshots implements SnapshotSide {
  private holdsLock = false;
  private otherHolds: boolean;

  constructor(private readonly world: World) {
    this.otherHolds = world.script.snapshot === 'capturing';
  }

  async choose(capture: boolean): Promise<SnapshotChoice> {
    const { script } = this.world;
    if (script.snapshot === 'usable') return { status: 'usable', failuresInARow: script.failuresInARow ?? 0 };
    const missing: SnapshotChoice =
      script.snapshot === 'setAside' ? { status: 'setAside', reason: 'the snapshot was taken by QEMU 9.2.0, this host runs 10.0.2' } : { status: 'missing' };
    if (!capture) return missing;
    if (this.otherHolds) return { status: 'capturing', holder: OTHER_START };
    this.holdsLock = true;
    return missing;
  }

  async awaitCapture(): Promise<CaptureWait> {
    this.otherHolds = false;
    if ((this.world.script.awaited ?? 'usable') === 'usable') return { status: 'usable', failuresInARow: this.world.script.failuresInARow ?? 0 };
    this.holdsLock = true;
    return { status: 'missing' };
  }

  async setAside(): Promise<{ setAside: string | undefined; capturing: boolean }> {
    if (!this.holdsLock && this.world.script.setAsideCapturing === false) this.otherHolds = true;
    else this.holdsLock = true;
    return { setAside: '/fake/snapshots/x.set-aside', capturing: this.holdsLock };
  }

  async beginCapture(): Promise<void> {
    if (this.holdsLock) return;
    if (this.otherHolds) throw captureBusy(OTHER_START);
    this.holdsLock = true;
  }

  async migrate(): Promise<void> {}

  async store(): Promise<string> {
    if (!this.holdsLock) this.world.violations.push('capture.store published a snapshot without holding the capture lock');
    this.holdsLock = false;
    return '/fake/snapshots/x';
  }

  async recover(): Promise<void> {}
  async prepare(): Promise<void> {}
  async map(): Promise<void> {}
  async incoming(): Promise<void> {}
  async cont(): Promise<void> {}
  async countFailure(): Promise<void> {}
}

export interface WorldOptions {
  /** The snapshot store this world's steps act on; scripted when left out. */
  snapshots?: (world: World) => SnapshotSide;
  /** The first QEMU pid of this world, so that several worlds' QEMUs read apart. */
  pidBase?: number;
}

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
  /** What choosing and awaitingCapture answered, in order. */
  readonly choices: (SnapshotChoice | CaptureWait)[] = [];
  storeVersion = 0;
  cancelled = false;
  launchesAfterCancel = 0;
  /** QEMUs that died by a crash of their own (E_QEMU_CRASHED), not killed from outside. */
  crashes = 0;
  readonly snapshots: SnapshotSide;
  private current: number | undefined;
  /** From a wakeable findSuspended until that wake's QEMU is stopped: resume calls act on the suspended state. */
  private waking = false;
  private resumeQemu: number | undefined;
  /** The current cold boot's QEMU, and whether its ports, overlay and runtime disk were made first. */
  private coldQemu: number | undefined;
  private coldPrepared = false;
  private nextPid: number;
  private readonly counts = new Map<ActorName, number>();
  onCancelPoint: (() => void) | undefined;

  constructor(
    readonly script: Script,
    private readonly clock: SimulatedClock,
    private readonly settle: Settle = async (_label, value) => value(),
    options: WorldOptions = {},
  ) {
    this.nextPid = options.pidBase ?? 1000;
    this.snapshots = options.snapshots?.(this) ?? new ScriptedSnapshots(this);
  }

  /** The root machine with every actor, its children's included, replaced by this world's fakes. */
  machine() {
    // Typed loosely on purpose: each fake stands in for an actor of the machine's own output type.
    const step = <T, I = void>(name: ActorName, effect: (input: I, signal: AbortSignal) => T | Promise<T>, options: CallOptions = {}): never =>
      fromPromise<T, I>(({ input, signal }) => this.call(name, signal, () => effect(input, signal), options)) as never;
    const side = this.snapshots;
    return startMachine.provide({
      actors: {
        preflight: step('preflight', () => ({ qemuVersion: '10.0.2', machineType: 'pc-q35-10.0' })),
        prepareImage: step('image', () => ({ image: 'demo', built: false })),
        chooseAccelerator: step('accel', () => ({ accel: 'tcg', reason: 'fake' })),
        findSuspended: step('suspended', () => this.findSuspended()),
        chooseSnapshot: step('choose', async (input: { capture: boolean }) => this.chosen(await side.choose(input.capture))),
        awaitCapture: step('awaitCapture', async (_input: undefined, signal) => this.chosen(await side.awaitCapture(signal, (ms) => this.sleep(ms, signal)))),
        setAsideSnapshot: step('setAside', (input: { reason: string }) => {
          this.setAsides.push(input.reason);
          return side.setAside(input.reason);
        }),
        pullSnapshot: step('pull', () =>
          this.script.pulled === 'failed' ? { status: 'failed', reason: 'the registry has no such tag' } : { status: 'usable', failuresInARow: 0, digest: 'sha256:fake' },
        ),
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
            // The lock and the capture folder come before the vCPUs pause: a failed pause leaves both to recover.
            pauseVm: step('capture.pause', () => ({ runstate: 'paused' }), { begin: () => side.beginCapture() }),
            migrateToFile: step('capture.migrate', async () => {
              await side.migrate();
              return { stateBytes: 1 << 20, ms: 500 };
            }),
            quitQemu: step('capture.quit', () => {
              this.kill();
              return { exited: true };
            }),
            storeSnapshot: step('capture.store', async (_input: undefined, signal) => {
              const snapshot = await side.store(signal);
              this.storeVersion += 1;
              return { snapshot, memoryDataBytes: 1 << 26 };
            }),
            recoverVm: step('capture.recover', async () => {
              await side.recover();
              this.kill();
              return { dropped: ['the capture folder'] };
            }),
            // The capture failed with the VM paused: what was half made is dropped as by recoverVm, the VM runs on.
            continueVm: step('capture.continue', async () => {
              await side.recover();
              return { runstate: 'running', pid: this.requireCurrent() };
            }),
            rotateSecrets: step('capture.rotate', () => this.rotate()),
            probeHealth: step('capture.health', () => [{ url: 'http://127.0.0.1:1/health', status: 200 }]),
          },
        }),
        resume: resumeMachine.provide({
          actors: {
            prepareState: step('resume.prepare', async () => {
              // A wake reads the instance's own state, not the store.
              if (!this.waking) await side.prepare();
              return { checked: [], forwards: 1, overlay: true };
            }),
            // QEMU maps the memory file as it starts: one it cannot open makes it exit at once.
            launchIncoming: step('resume.launch', () => ({ pid: this.requireCurrent() }), {
              launches: true,
              begin: (pid) => (this.waking ? this.wake(pid ?? -1) : side.map(pid ?? -1)),
            }),
            migrateIncoming: step('resume.incoming', async () => {
              const pid = this.requireCurrent();
              if (!this.waking) await side.incoming(pid);
              this.incoming.set(pid, this.script.incomingRunstate);
              return { runstate: this.script.incomingRunstate };
            }),
            cont: step('resume.cont', async () => {
              const pid = this.requireCurrent();
              if (this.incoming.get(pid) !== 'paused') this.violations.push(`cont sent to QEMU ${pid} whose incoming migration left runstate ${String(this.incoming.get(pid))}`);
              if (!this.waking) await side.cont(pid);
              return { runstate: 'running' };
            }),
            rotateSecrets: step('resume.rotate', () => this.rotate()),
            probeHealth: step('resume.health', () => [{ url: 'http://127.0.0.1:1/health', status: 200 }]),
            stopQemu: step('resume.stop', async (input: { countFailure: boolean }) => {
              const stopped = this.resumeQemu === undefined ? { how: 'nothing was launched' } : this.stopCurrent();
              // A failed wake sets its state aside; the start goes on to the store.
              if (this.waking) this.waking = false;
              else if (input.countFailure) await side.countFailure();
              return stopped;
            }),
          },
        }),
      },
    });
  }

  /** The QEMU a healthy run ends with, and what its guest's secrets are. */
  finalSecrets(pid: number): 'placeholder' | 'fresh' | undefined {
    return this.secrets.get(pid);
  }

  /** findSuspended: what the script left, judged; a wakeable state is what the next resume wakes. */
  private findSuspended(): { status: 'none' } | { status: 'setAside'; reason: string } | { status: 'wakeable'; suspendedAt: string; secrets: boolean } {
    const kept = this.script.suspended ?? 'none';
    if (kept === 'none') return { status: 'none' };
    if (kept === 'setAside') return { status: 'setAside', reason: 'the config changed since the suspend' };
    this.waking = true;
    return { status: 'wakeable', suspendedAt: '2026-12-02T00:00:00.000Z', secrets: kept === 'wakeable' };
  }

  /** The woken QEMU's guest has the secrets it was suspended with: fresh ones, unless it was suspended after --no-rotation. */
  private async wake(pid: number): Promise<void> {
    this.secrets.set(pid, this.script.suspended === 'wakeable' ? 'fresh' : 'placeholder');
  }

  cancel(): void {
    this.cancelled = true;
  }

  private chosen<T extends SnapshotChoice>(choice: T): T {
    this.choices.push(choice);
    return choice;
  }

  /** The real steps' sleep: on the simulated clock, cut short by the signal. */
  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(Object.assign(new Error('sleep aborted'), { code: 'E_ABORTED' }));
        return;
      }
      const onAbort = (): void => {
        this.clock.clearTimeout(timer);
        reject(Object.assign(new Error('sleep aborted'), { code: 'E_ABORTED' }));
      };
      const timer = this.clock.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        void this.settle('sleep over', () => undefined).then(() => resolve());
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * One actor call: a launch spawns QEMU at once, then `begin` runs (what the real step does
   * before it can fail); the rest of its effects happen when it settles as `ok`.
   */
  private call<T>(name: ActorName, signal: AbortSignal, effect: () => T | Promise<T>, options: CallOptions): Promise<T> {
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
    const pid = options.launches ? this.spawn(name) : undefined;
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
      const act = (): void => {
        if (signal.aborted) return;
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
            void this.settle(`${name}: QEMU ${behaviour.crash ? 'crashes' : 'exits'}`, () => undefined).then(() => {
              this.kill();
              if (behaviour.crash) this.crashes += 1;
              fail(behaviour.crash ? 'E_QEMU_CRASHED' : 'E_QEMU_EXITED');
            });
        }
      };
      if (!options.begin) {
        act();
        return;
      }
      options.begin(pid).then(act, (error: unknown) => {
        // A QEMU that cannot open what its argv names exits at once.
        if (pid !== undefined) this.live.delete(pid);
        if (!signal.aborted) reject(error);
      });
    });
  }

  private spawn(name: ActorName): number {
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
    return pid;
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

interface CallOptions {
  /** The call spawns a QEMU before anything else. */
  launches?: boolean;
  /** What the real step does first, before it can fail or hang (given the QEMU just spawned, if any). */
  begin?: (pid: number | undefined) => Promise<void>;
}
