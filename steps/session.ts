import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { chooseAccelerator } from '../adapters/qemu/accel-probe.js';
import { createOverlay } from '../adapters/qemu/overlay.js';
import { prepareBootFiles, type BootFiles } from '../adapters/guest/boot-files.js';
import type { CleanupStack } from '../adapters/support/cleanup.js';
import { ensureDemoGuest } from '../adapters/guest/demo/guest.js';
import { WarmvmError } from '../adapters/support/errors.js';
import type { Exchange } from '../adapters/inspector/protocol.js';
import { fileExists } from '../adapters/support/file-exists.js';
import type { InstanceState } from '../adapters/instance/state.js';
import { captureToFile, incomingFromFile, quit, resumeVcpus } from '../adapters/qemu/migration.js';
import { homePaths, type InstancePaths } from '../adapters/instance/paths.js';
import { assertPortFree, findFreePort, isPortFree } from '../adapters/instance/ports.js';
import { buildQemuArgv, defaultCpuModel, type LaunchPlan } from '../adapters/qemu/argv.js';
import { inspectQemu, inspectQemuCached, type QemuInfo } from '../adapters/qemu/binary.js';
import { isInstanceQemu, readPidFile, removeRuntimeFiles } from '../adapters/qemu/process.js';
import { rotateSecrets } from '../adapters/vm/rotation.js';
import { hashSpec, manifestMismatch, specFacts, type SnapshotManifest } from '../adapters/snapshot/manifest.js';
import {
  commitCapture,
  createCaptureDir,
  readSnapshot,
  setAside,
  snapshotPaths,
  STATE_RAW,
  STATE_ZST,
  FROZEN_DISK,
  type SnapshotPaths,
} from '../adapters/snapshot/store.js';
import { compressSparse, decompressSparse } from '../adapters/snapshot/sparse-zstd.js';
import type { VmSpec } from '../adapters/spec/vm.js';
import { QemuExitedError, VmRunner } from '../adapters/vm/runner.js';

export interface StartSessionOptions {
  spec: VmSpec;
  paths: InstancePaths;
  home: string;
  cleanup: CleanupStack;
  logger: Logger;
  progress: (line: string) => void;
  /** Epoch ms the run's trace began at: exchanges are timed from it, like trace entries. */
  startedAt?: number;
}

/** From PATH, as QEMU itself is found: qemu-utils ships it beside qemu-system. */
const QEMU_IMG = 'qemu-img';

type Choice = { status: 'usable' } | { status: 'missing' } | { status: 'setAside'; reason: string };

/**
 * What one `start` learns as it goes (QEMU, the image, the accelerator, the ports, the snapshot)
 * and the steps the machines' actors call. It is the only place that knows which QEMU of the
 * run is which: the cold boot's, and the resume's. The machines never see it.
 */
export class StartSession {
  qemu: QemuInfo | undefined;
  boot: BootFiles | undefined;
  accel: { accel: LaunchPlan['accel']; reason: string } | undefined;
  forwards: { guest: number; host: number }[] = [];
  manifest: SnapshotManifest | undefined;
  readonly snapshot: SnapshotPaths;
  private coldRunner: VmRunner | undefined;
  private resumeRunner: VmRunner | undefined;
  private captureDir: string | undefined;
  /** The runner whose VM ended healthy, if any. */
  winner: VmRunner | undefined;
  lastFingerprint: string | undefined;
  private readonly exchangeListeners: ((exchange: Exchange) => void)[] = [];

  private readonly clockStart: number;

  constructor(readonly options: StartSessionOptions) {
    this.snapshot = snapshotPaths(homePaths(options.home).snapshots, options.paths.name);
    this.clockStart = options.startedAt ?? Date.now();
  }

  get spec(): VmSpec {
    return this.options.spec;
  }

  get paths(): InstancePaths {
    return this.options.paths;
  }

  // ---- root: preflight, image, accelerator, choosing --------------------------------------

  /** Refuse a second running copy, clean a crash's leftovers, check QEMU, take ports. */
  async preflight(signal: AbortSignal): Promise<{ qemuVersion: string; machineType: string }> {
    const pid = await readPidFile(this.paths.pidFile);
    if (pid !== undefined && (await isInstanceQemu(pid, this.paths.qmpSocket))) {
      throw new WarmvmError('E_ALREADY_RUNNING', `instance "${this.paths.name}" is already running (QEMU pid ${pid})`, {
        hint: `"warmvm status --name ${this.paths.name}" shows it; "warmvm stop --name ${this.paths.name}" stops it; or start another with --name`,
      });
    }
    // The secrets of a VM that is gone: a start that does not rotate must not leave them looking current.
    await removeRuntimeFiles([this.paths.pidFile, this.paths.stateFile, this.paths.qmpSocket, this.paths.qgaSocket, this.paths.secretsFile]);
    this.qemu = await inspectQemuCached(join(this.options.home, 'qemu-info.json'), undefined, signal);
    for (const forward of this.spec.ports) {
      if (forward.host !== undefined) await assertPortFree(forward.host, `forwarded to guest port ${forward.guest}`);
    }
    return { qemuVersion: this.qemu.version.text, machineType: this.qemu.machineType };
  }

  async prepareImage(signal: AbortSignal): Promise<{ image: string; built: boolean }> {
    this.boot = await prepareBootFiles(this.spec.boot, {
      imagesDir: homePaths(this.options.home).images,
      overlay: this.paths.overlay,
      signal,
      logger: this.options.logger,
      onProgress: (line) => this.options.progress(`  image: ${line}`),
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
      cacheFile: join(this.options.home, 'accel-probe.json'),
      signal,
    });
    this.accel = { accel: verdict.accel, reason: verdict.reason };
    return { accel: verdict.accel, reason: verdict.reason };
  }

  /** A snapshot that matches this host and spec is usable; one that cannot match is set aside. */
  async chooseSnapshot(forceCold: boolean): Promise<Choice> {
    if (forceCold) return { status: 'missing' };
    const found = await readSnapshot(this.snapshot);
    if (found.kind === 'missing') return { status: 'missing' };
    if (found.kind === 'unreadable') return await this.setAsideWith(found.reason);
    const mismatch = manifestMismatch(found.manifest, this.hostFacts());
    if (mismatch) return await this.setAsideWith(mismatch);
    for (const forward of found.manifest.forwards) {
      if (!(await isPortFree(forward.host))) {
        // The snapshot is good; the host is not ready for it. Keep it for a later start.
        throw new WarmvmError('E_PORT_TAKEN', `host port ${forward.host}, which the snapshot forwards to guest port ${forward.guest}, is in use`, {
          hint: `stop what listens on ${forward.host}, or "warmvm start --cold" (the snapshot is kept), or "warmvm reset --snapshot" to capture anew`,
        });
      }
    }
    this.manifest = found.manifest;
    return { status: 'usable' };
  }

  async setAsideSnapshot(reason: string): Promise<{ setAside: string | undefined }> {
    return { setAside: await setAside(this.snapshot, reason) };
  }

  private async setAsideWith(reason: string): Promise<Choice> {
    await setAside(this.snapshot, reason);
    return { status: 'setAside', reason };
  }

  private hostFacts() {
    const qemu = this.require(this.qemu, 'QEMU');
    const accel = this.require(this.accel, 'the accelerator').accel;
    return {
      qemuVersion: qemu.version.text,
      machineType: qemu.machineType,
      accel,
      cpuModel: this.spec.cpuModel ?? defaultCpuModel(accel),
      specHash: this.specHash(),
      spec: specFacts(this.specParts()),
    };
  }

  /** What the VM's state depends on: not bounds, health checks or rotation. */
  specHash(): string {
    return hashSpec(this.specParts());
  }

  private specParts(): Record<string, unknown> {
    const boot = this.require(this.boot, 'the boot files');
    const { memoryMb, cpus, cpuModel, ports, agent } = this.spec;
    return { memoryMb, cpus, cpuModel, ports, agent, image: boot.description, append: boot.append, disk: boot.disk !== undefined, seed: boot.seed, settings: this.spec.settings };
  }

  // ---- cold boot ---------------------------------------------------------------------------

  /** The cold boot's runner: host ports are chosen now (fixed from here on, snapshot included). */
  async cold(): Promise<VmRunner> {
    if (this.coldRunner) return this.coldRunner;
    this.forwards = [];
    for (const forward of this.spec.ports) this.forwards.push({ guest: forward.guest, host: forward.host ?? (await findFreePort()) });
    await this.writeRuntimeDisk();
    // Over the image itself, even when a failed resume left an overlay over its snapshot's disk.
    const base = this.require(this.boot, 'the boot files').overlayBase;
    if (base) await createOverlay({ qemuImg: QEMU_IMG, base: base.path, format: base.format, overlay: this.paths.overlay });
    this.coldRunner = this.runner(buildQemuArgv(this.plan()));
    return this.coldRunner;
  }

  async rotate(runner: VmRunner, signal: AbortSignal): Promise<{ secrets: number; exitCode: number }> {
    const rotation = this.spec.rotation;
    if (!rotation) return { secrets: 0, exitCode: 0 };
    const qga = await runner.agent(this.spec.bounds.rotateMs, signal);
    const started = Date.now();
    const result = await runner
      .whileRunning('rotating secrets', rotateSecrets(qga, rotation, { secretsFile: this.paths.secretsFile, timeoutMs: this.spec.bounds.rotateMs, signal }))
      .catch((error: unknown) => {
        // The error's message is secret-free: rotateSecrets redacts the guest's stderr.
        this.exchange({ channel: 'exec', what: rotation.command, ok: false, summary: (error as Error).message, ms: Date.now() - started });
        throw error;
      });
    this.exchange({ channel: 'exec', what: rotation.command, ok: true, summary: `exit ${result.exitCode}, ${result.secrets} secrets in${result.clockSet ? ', clock set' : ''}`, ms: Date.now() - started });
    this.lastFingerprint = result.fingerprint;
    return { secrets: result.secrets, exitCode: result.exitCode };
  }

  // ---- capture -----------------------------------------------------------------------------

  /**
   * For `warmvm capture`: the QEMU a previous start left running becomes this session's VM, with
   * the argv, ports and accelerator it was started with. A failed capture lets it run on.
   */
  async adoptRunning(state: InstanceState, signal: AbortSignal): Promise<void> {
    this.qemu = await inspectQemu(undefined, signal);
    if (this.qemu.version.text !== state.qemuVersion) {
      throw new WarmvmError('E_QEMU_CHANGED', `QEMU changed since instance "${state.name}" started (${state.qemuVersion} → ${this.qemu.version.text})`, {
        hint: 'restart the instance (warmvm stop, warmvm start) and capture again',
      });
    }
    this.accel = { accel: state.accel as LaunchPlan['accel'], reason: 'as started' };
    this.forwards = state.forwards;
    this.keepVmOnFailedCapture = true;
    this.coldRunner = this.runner(state.argv);
    await this.coldRunner.attach(state.pid, signal);
  }

  private keepVmOnFailedCapture = false;

  async pauseVm(signal: AbortSignal): Promise<{ runstate: string }> {
    const runner = this.require(this.coldRunner, 'the cold-booted VM');
    const qmp = runner.qmpConnection();
    this.captureDir = await createCaptureDir(this.snapshot);
    const dir = this.captureDir;
    this.options.cleanup.add('drop an unfinished capture', () => rm(dir, { recursive: true, force: true }));
    await runner.whileRunning('pausing for capture', qmp.execute('stop', undefined, { signal }));
    const status = await qmp.execute<{ status: string }>('query-status', undefined, { signal });
    return { runstate: status.status };
  }

  async migrateToFile(signal: AbortSignal): Promise<{ apparentBytes: number; ms: number }> {
    const runner = this.require(this.coldRunner, 'the cold-booted VM');
    const file = join(this.require(this.captureDir, 'the capture folder'), STATE_RAW);
    const result = await runner.whileRunning(
      'migrating to file',
      captureToFile(runner.qmpConnection(), file, {
        timeoutMs: this.spec.bounds.captureMs,
        signal,
        onProgress: (p) => this.options.progress(`  capture: ${p.status}${p.transferredBytes !== undefined ? ` ${(p.transferredBytes / 1e6).toFixed(0)} MB` : ''}`),
      }),
    );
    const apparentBytes = (await stat(file)).size;
    return { apparentBytes, ms: result.ms };
  }

  async quitQemu(signal: AbortSignal): Promise<{ exited: boolean }> {
    const runner = this.require(this.coldRunner, 'the cold-booted VM');
    await quit(runner.qmpConnection(), { timeoutMs: this.spec.bounds.stopMs, signal });
    await runner.waitExit(this.spec.bounds.stopMs);
    return { exited: true };
  }

  /** Compress, freeze the disk overlay, write the manifest, then rename into place. */
  async storeSnapshot(signal: AbortSignal): Promise<{ snapshot: string; compressedBytes: number }> {
    const dir = this.require(this.captureDir, 'the capture folder');
    const qemu = this.require(this.qemu, 'QEMU');
    const accel = this.require(this.accel, 'the accelerator').accel;
    const raw = join(dir, STATE_RAW);
    const zst = await compressSparse(raw, join(dir, STATE_ZST), { signal });
    let disk: SnapshotManifest['files']['disk'];
    if (this.boot?.disk) {
      // The overlay the RAM belongs to, frozen: resumes run on fresh overlays over it.
      await rename(this.paths.overlay, join(dir, FROZEN_DISK));
      disk = { name: FROZEN_DISK, bytes: (await stat(join(dir, FROZEN_DISK))).size };
    }
    const manifest: SnapshotManifest = {
      format: 1,
      createdAt: new Date().toISOString(),
      instance: this.paths.name,
      qemuVersion: qemu.version.text,
      machineType: qemu.machineType,
      accel,
      cpuModel: this.spec.cpuModel ?? defaultCpuModel(accel),
      cpus: this.spec.cpus,
      memoryMb: this.spec.memoryMb,
      argv: this.require(this.coldRunner, 'the cold-booted VM').argv,
      specHash: this.specHash(),
      spec: specFacts(this.specParts()),
      forwards: this.forwards,
      files: {
        state: { name: STATE_RAW, apparentBytes: zst.apparentBytes, dataBytes: zst.dataBytes, sha256: zst.sha256 },
        stateZst: { name: STATE_ZST, bytes: zst.compressedBytes, sha256: zst.sha256 },
        disk,
      },
    };
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    await commitCapture(dir, this.snapshot);
    this.captureDir = undefined;
    this.manifest = manifest;
    return { snapshot: this.snapshot.dir, compressedBytes: zst.compressedBytes };
  }

  /** After a failed capture: drop what was half made and the cold QEMU (the fallback boots anew). */
  async recoverVm(): Promise<{ dropped: string[] }> {
    const dropped: string[] = [];
    if (this.captureDir) {
      await rm(this.captureDir, { recursive: true, force: true });
      dropped.push(this.captureDir);
      this.captureDir = undefined;
    }
    if (this.coldRunner && this.keepVmOnFailedCapture) {
      // Not ours to stop: if it was only paused, let it run on.
      const resumed = await this.coldRunner
        .qmpConnection()
        .execute('cont', undefined, { timeoutMs: 5_000 })
        .then(() => true, () => false);
      if (resumed) dropped.push('nothing: the VM runs on');
      await this.coldRunner.handOff();
    } else if (this.coldRunner) {
      await this.coldRunner.stop();
      dropped.push('the cold-booted QEMU');
    }
    return { dropped };
  }

  // ---- resume ------------------------------------------------------------------------------

  /** The sparse raw state, decompressed once from the .zst when missing or not whole; a fresh overlay. */
  async prepareState(signal: AbortSignal): Promise<{ stateFile: string; decompressed: boolean }> {
    const manifest = this.require(this.manifest, 'the snapshot manifest');
    const rawSize = (await stat(this.snapshot.stateRaw).catch(() => undefined))?.size;
    let decompressed = false;
    if (rawSize !== manifest.files.state.apparentBytes) {
      if (!(await fileExists(this.snapshot.stateZst))) {
        throw new WarmvmError('E_SNAPSHOT_MISSING', `the snapshot's state is missing: neither a whole ${STATE_RAW} nor ${STATE_ZST} in ${this.snapshot.dir}`, {
          hint: 'the cold boot runs instead and captures a new snapshot',
        });
      }
      this.options.progress('  resume: decompressing the snapshot state (once)');
      await decompressSparse(this.snapshot.stateZst, this.snapshot.stateRaw, { signal });
      decompressed = true;
    }
    // The snapshot's argv names this instance's settings disk; the guest read it when it booted.
    await this.writeRuntimeDisk();
    if (manifest.files.disk) await createOverlay({ qemuImg: QEMU_IMG, base: this.snapshot.disk, format: 'qcow2', overlay: this.paths.overlay, signal });
    return { stateFile: this.snapshot.stateRaw, decompressed };
  }

  async launchIncoming(signal: AbortSignal): Promise<{ pid: number }> {
    const manifest = this.require(this.manifest, 'the snapshot manifest');
    this.forwards = manifest.forwards;
    this.resumeRunner = this.runner([...manifest.argv, '-incoming', 'defer']);
    return await this.resumeRunner.launch(signal);
  }

  async migrateIncoming(signal: AbortSignal): Promise<{ runstate: string }> {
    const runner = this.require(this.resumeRunner, 'the resuming VM');
    try {
      const result = await runner.whileRunning(
        'loading the snapshot',
        incomingFromFile(runner.qmpConnection(), this.snapshot.stateRaw, { timeoutMs: this.spec.bounds.incomingMs, signal }),
      );
      return { runstate: result.runstate };
    } catch (error) {
      // QEMU exits when it cannot load a state: that is the snapshot's fault, not a kill's.
      if (error instanceof QemuExitedError && /load of migration failed|Failed to load|Unknown savevm section|mapped-ram/i.test(error.message)) {
        throw new WarmvmError('E_MIGRATION_INCOMING', `QEMU could not load the snapshot: ${error.message}`, { hint: 'the snapshot is set aside and captured anew', cause: error });
      }
      throw error;
    }
  }

  async cont(signal: AbortSignal): Promise<{ runstate: string }> {
    const runner = this.require(this.resumeRunner, 'the resuming VM');
    await runner.whileRunning('resuming the vCPUs', resumeVcpus(runner.qmpConnection(), { timeoutMs: this.spec.bounds.incomingMs, signal }));
    return { runstate: 'running' };
  }

  resumed(): VmRunner {
    return this.require(this.resumeRunner, 'the resuming VM');
  }

  resumedIfLaunched(): VmRunner | undefined {
    return this.resumeRunner;
  }

  coldBooted(): VmRunner {
    return this.require(this.coldRunner, 'the cold-booted VM');
  }

  // ---- shared --------------------------------------------------------------------------------

  private async writeRuntimeDisk(): Promise<void> {
    if (!this.spec.settings) return;
    const { writeRuntimeDisk } = await import('../adapters/guest/runtime-disk.js');
    await writeRuntimeDisk(this.paths.runtimeIso, this.paths.name, this.spec.settings);
  }

  private plan(): LaunchPlan {
    const qemu = this.require(this.qemu, 'QEMU');
    const boot = this.require(this.boot, 'the boot files');
    const accel = this.require(this.accel, 'the accelerator').accel;
    return {
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
      seed: boot.seed,
      runtime: this.spec.settings ? this.paths.runtimeIso : undefined,
      forwards: this.forwards,
      qmpSocket: this.paths.qmpSocket,
      qgaSocket: this.spec.agent ? this.paths.qgaSocket : undefined,
      serialLog: this.paths.serialLog,
    };
  }

  /** The last exchanges with QEMU, the agent and the health checks, for the inspector. Secret-free. */
  onExchange(listener: (exchange: Exchange) => void): void {
    this.exchangeListeners.push(listener);
  }

  private exchange(exchange: Omit<Exchange, 'at'>): void {
    for (const listener of this.exchangeListeners) listener({ at: Date.now() - this.clockStart, ...exchange });
  }

  private runner(argv: string[]): VmRunner {
    const qemu = this.require(this.qemu, 'QEMU');
    return new VmRunner({
      onHealthAttempt: (answers) => {
        for (const answer of answers) this.exchange({ channel: 'health', what: answer.url, ok: answer.status !== undefined && answer.status < 400, summary: answer.status !== undefined ? `HTTP ${answer.status}` : `no answer (${answer.error ?? 'refused'})` });
      },
      onExchange: (exchange) => this.exchange(exchange),
      binary: qemu.binary,
      argv,
      qgaSocket: this.spec.agent ? this.paths.qgaSocket : undefined,
      paths: this.paths,
      health: this.healthChecks(),
      agent: this.spec.agent,
      readyMarker: this.spec.readyMarker,
      bounds: this.spec.bounds,
      cleanup: this.options.cleanup,
      logger: this.options.logger,
    });
  }

  healthChecks(): { url: string; expectStatus: number }[] {
    return this.spec.health.map((check) => {
      const host = this.forwards.find((forward) => forward.guest === check.port)?.host;
      return { url: `http://127.0.0.1:${host}${check.path}`, expectStatus: check.status };
    });
  }

  instanceState(pid: number, path: string, runner: VmRunner): InstanceState {
    const qemu = this.require(this.qemu, 'QEMU');
    const argv = runner.argv.at(-2) === '-incoming' ? runner.argv.slice(0, -2) : runner.argv;
    return {
      name: this.paths.name,
      pid,
      startedAt: new Date().toISOString(),
      path,
      accel: this.require(this.accel, 'the accelerator').accel,
      qemuVersion: qemu.version.text,
      machineType: qemu.machineType,
      qmpSocket: this.paths.qmpSocket,
      argv,
      specHash: this.specHash(),
      forwards: this.forwards,
      health: this.healthChecks(),
    };
  }

  private require<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw new WarmvmError('E_STATE', `${what} is not known yet at this point of the start`, { hint: 'this is a warmvm bug; please report it' });
    return value;
  }
}
