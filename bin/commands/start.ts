import { createActor, waitFor } from 'xstate';
import { chooseAccelerator } from '../../adapters/accel-probe.js';
import { CleanupStack } from '../../adapters/cleanup.js';
import { loadConfigFile } from '../../adapters/config.js';
import { ensureDemoGuest } from '../../adapters/demo-guest.js';
import { WarmvmError } from '../../adapters/errors.js';
import { acquireInstanceLock } from '../../adapters/instance-lock.js';
import { writeInstanceState } from '../../adapters/instance-state.js';
import type { Logger } from '../../adapters/logger.js';
import { ensureInstanceDir, homePaths, type InstancePaths } from '../../adapters/paths.js';
import { prepareBootFiles, type BootFiles } from '../../adapters/boot-files.js';
import { assertPortFree, findFreePort } from '../../adapters/ports.js';
import { inspectQemu, type QemuInfo } from '../../adapters/qemu-binary.js';
import { defaultCpuModel, type LaunchPlan } from '../../adapters/qemu-argv.js';
import { isInstanceQemu, readPidFile, removeRuntimeFiles } from '../../adapters/qemu-process.js';
import { TraceRecorder } from '../../adapters/trace-recorder.js';
import { defaultSpec, type VmSpec } from '../../adapters/vm-spec.js';
import { VmRunner } from '../../adapters/vm-runner.js';
import { coldBootActors } from '../../actors/cold-boot-actors.js';
import { startActors } from '../../actors/start-actors.js';
import { coldBootMachine } from '../../machines/cold-boot.js';
import { startMachine, type StartBounds } from '../../machines/start.js';
import { seconds, type Output } from '../output.js';
import { onInterrupt } from '../interrupt.js';

export interface StartOptions {
  name: string;
  config: string | undefined;
  cold: boolean;
  home: string;
  logger: Logger;
  output: Output;
}

/** Phases reported in `seconds`, by the state path the trace records. */
const PHASES: Record<string, string> = {
  'start.preflight': 'preflight',
  'start.image': 'image',
  'start.accelerator': 'accelerator',
  'coldBoot.launching': 'launching',
  'coldBoot.booting': 'booting',
  'coldBoot.probing': 'probing',
};

/** Runs the root machine for one instance; resolves with the process exit code. */
export async function startCommand(options: StartOptions): Promise<number> {
  const { output, logger } = options;
  const spec: VmSpec = options.config ? await loadConfigFile(options.config) : defaultSpec();
  const paths = await ensureInstanceDir(options.home, options.name);
  const cleanup = new CleanupStack(logger);
  // The lock comes before anything of the instance is touched: a refused start changes nothing.
  const lock = await acquireInstanceLock(paths.lockFile, paths.name);
  cleanup.add('release the instance lock', () => lock.release());
  try {
    await removeRuntimeFiles([paths.traceFile]);
    const trace = new TraceRecorder(paths.traceFile);
    const session = new StartSession(spec, paths, options, cleanup);
    trace.onEntry((entry) => {
      const phase = entry.from ? PHASES[entry.from] : undefined;
      if (phase && entry.ms !== undefined) output.progress(`  ${phase.padEnd(12)} ${(entry.ms / 1000).toFixed(2)} s`);
    });

    const bounds: StartBounds = { ...spec.bounds, preflightMs: 30_000, imageMs: 15 * 60_000, accelMs: 30_000 };
    const machine = startMachine.provide({
      actors: {
        ...startActors(session),
        coldBoot: coldBootMachine.provide({ actors: coldBootActors(() => session.runner()) }),
      },
    });
    output.progress(`warmvm: starting instance "${options.name}" (cold boot)`);
    const actor = createActor(machine, { input: { bounds }, inspect: trace.inspect });
    const stopListening = onInterrupt(() => {
      output.progress('warmvm: interrupted; stopping what was started (Ctrl-C again to force)');
      actor.send({ type: 'CANCEL' });
    }, async () => {
      await cleanup.runAll();
    });
    actor.start();
    const final = await waitFor(actor, (snapshot) => snapshot.status !== 'active', { timeout: Infinity });
    stopListening();
    const result = final.output;
    const durations = trace.durations();
    const phaseSeconds: Record<string, number | undefined> = { total: seconds(trace.elapsedMs()) };
    for (const [state, phase] of Object.entries(PHASES)) if (durations[state] !== undefined) phaseSeconds[phase] = seconds(durations[state]);

    if (result?.outcome === 'running') {
      const runner = session.runner();
      const state = session.instanceState(result.pid);
      await writeInstanceState(paths.stateFile, state);
      await runner.handOff();
      await cleanup.runAll();
      const health = result.health.map((answer) => ({ url: answer.url, status: answer.status }));
      output.result(
        { name: options.name, outcome: 'healthy', path: 'cold', pid: result.pid, accel: state.accel, seconds: phaseSeconds, health, instanceDir: paths.dir },
        [
          `warmvm: instance "${options.name}" is healthy (cold boot, ${phaseSeconds.total?.toFixed(2)} s, ${state.accel}, QEMU pid ${result.pid})`,
          ...health.map((answer) => `  ${answer.url}  → ${answer.status}`),
          `  stop it with: warmvm stop --name ${options.name}`,
        ].join('\n'),
      );
      return 0;
    }
    await cleanup.runAll();
    const failure = result?.outcome === 'failed' ? result.failure : { state: 'start', code: 'E_UNEXPECTED', message: 'start ended without a result', hint: undefined };
    const stopNote = result?.outcome === 'failed' && result.stopError ? ` (and stopping QEMU failed: ${result.stopError})` : '';
    output.error(new WarmvmError(failure.code, `start failed in ${failure.state}: ${failure.message}${stopNote}`, { hint: failure.hint ?? `see the trace: ${paths.traceFile}` }), {
      name: options.name,
      path: 'cold',
      seconds: phaseSeconds,
      failedState: failure.state,
    });
    return failure.code === 'E_INTERRUPTED' ? 130 : 1;
  } finally {
    await cleanup.runAll();
  }
}

/**
 * What one `start` learns as it goes (QEMU, the image, the accelerator, the ports) and the
 * runner it builds from them. The actors read and fill it; the machines never see it.
 */
export class StartSession {
  qemu: QemuInfo | undefined;
  boot: BootFiles | undefined;
  accel: { accel: LaunchPlan['accel']; reason: string } | undefined;
  forwards: { guest: number; host: number }[] = [];
  private vmRunner: VmRunner | undefined;

  constructor(
    readonly spec: VmSpec,
    readonly paths: InstancePaths,
    readonly options: StartOptions,
    readonly cleanup: CleanupStack,
  ) {}

  /** Refuse a second running copy, clean a crash's leftovers, check QEMU, take ports. */
  async preflight(signal: AbortSignal): Promise<{ qemuVersion: string; machineType: string }> {
    const pid = await readPidFile(this.paths.pidFile);
    if (pid !== undefined && (await isInstanceQemu(pid, this.paths.qmpSocket))) {
      throw new WarmvmError('E_ALREADY_RUNNING', `instance "${this.paths.name}" is already running (QEMU pid ${pid})`, {
        hint: `"warmvm status --name ${this.paths.name}" shows it; "warmvm stop --name ${this.paths.name}" stops it; or start another with --name`,
      });
    }
    await removeRuntimeFiles([this.paths.pidFile, this.paths.stateFile, this.paths.qmpSocket, this.paths.qgaSocket]);
    this.qemu = await inspectQemu(undefined, signal);
    this.forwards = [];
    for (const forward of this.spec.ports) {
      if (forward.host !== undefined) await assertPortFree(forward.host, `forwarded to guest port ${forward.guest}`);
      this.forwards.push({ guest: forward.guest, host: forward.host ?? (await findFreePort()) });
    }
    return { qemuVersion: this.qemu.version.text, machineType: this.qemu.machineType };
  }

  async prepareImage(signal: AbortSignal): Promise<{ image: string; built: boolean }> {
    this.boot = await prepareBootFiles(this.spec.boot, {
      imagesDir: homePaths(this.options.home).images,
      overlay: this.paths.overlay,
      qemuImg: 'qemu-img',
      signal,
      logger: this.options.logger,
      onProgress: (line) => this.options.output.progress(`  image: ${line}`),
    });
    return { image: this.boot.description, built: this.boot.built };
  }

  async chooseAccelerator(signal: AbortSignal): Promise<{ accel: string; reason: string }> {
    const qemu = this.require(this.qemu, 'QEMU');
    const boot = this.require(this.boot, 'the boot files');
    const verdict = await chooseAccelerator({
      choice: this.spec.accel,
      qemuBinary: qemu.binary,
      qemuVersion: qemu.version.text,
      machineType: qemu.machineType,
      accelerators: qemu.accelerators,
      kernel: async () => boot.kernel ?? (await ensureDemoGuest({ imagesDir: homePaths(this.options.home).images, signal })).kernel,
      cacheFile: `${homePaths(this.options.home).home}/accel-probe.json`,
      signal,
    });
    this.accel = { accel: verdict.accel, reason: verdict.reason };
    return { accel: verdict.accel, reason: verdict.reason };
  }

  /** The runner for this start, built once everything before the boot is known. */
  runner(): VmRunner {
    if (this.vmRunner) return this.vmRunner;
    const qemu = this.require(this.qemu, 'QEMU');
    const boot = this.require(this.boot, 'the boot files');
    const accel = this.require(this.accel, 'the accelerator').accel;
    const plan: LaunchPlan = {
      instanceName: this.paths.name,
      binary: qemu.binary,
      machineType: qemu.machineType,
      accel,
      cpuModel: this.spec.cpuModel ?? defaultCpuModel(accel),
      memoryMb: this.spec.memoryMb,
      cpus: this.spec.cpus,
      kernel: boot.kernel,
      initrd: boot.initrd,
      append: boot.append,
      disk: boot.disk,
      forwards: this.forwards,
      qmpSocket: this.paths.qmpSocket,
      qgaSocket: this.spec.agent ? this.paths.qgaSocket : undefined,
      serialLog: this.paths.serialLog,
    };
    this.vmRunner = new VmRunner({
      plan,
      paths: this.paths,
      health: this.healthChecks(),
      agent: this.spec.agent,
      bounds: this.spec.bounds,
      cleanup: this.cleanup,
      logger: this.options.logger,
    });
    return this.vmRunner;
  }

  healthChecks(): { url: string; expectStatus: number }[] {
    return this.spec.health.map((check) => {
      const host = this.forwards.find((forward) => forward.guest === check.port)?.host;
      return { url: `http://127.0.0.1:${host}${check.path}`, expectStatus: check.status };
    });
  }

  instanceState(pid: number) {
    const qemu = this.require(this.qemu, 'QEMU');
    return {
      name: this.paths.name,
      pid,
      startedAt: new Date().toISOString(),
      path: 'cold',
      accel: this.require(this.accel, 'the accelerator').accel,
      qemuVersion: qemu.version.text,
      machineType: qemu.machineType,
      qmpSocket: this.paths.qmpSocket,
      forwards: this.forwards,
      health: this.healthChecks(),
    };
  }

  private require<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw new WarmvmError('E_STATE', `${what} is not known yet at this point of the start`, { hint: 'this is a warmvm bug; please report it' });
    return value;
  }
}
