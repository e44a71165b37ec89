import type { Logger } from 'pino';
import type { CleanupHandle, CleanupStack } from './cleanup.js';
import { WarmvmError } from './errors.js';
import { waitHealthy, type HealthAnswer, type HealthCheck } from './health-probe.js';
import type { InstancePaths } from './paths.js';
import { QgaClient } from './qga-client.js';
import { buildQemuArgv, type LaunchPlan } from './qemu-argv.js';
import { QmpClient } from './qmp-client.js';
import { removeRuntimeFiles, spawnQemu, stopProcess, tailLog, type QemuExit, type QemuProcess } from './qemu-process.js';

export interface VmRunnerOptions {
  plan: LaunchPlan;
  paths: InstancePaths;
  health: HealthCheck[];
  agent: boolean;
  bounds: { launchMs: number; bootMs: number; healthMs: number; stopMs: number };
  cleanup: CleanupStack;
  logger: Logger;
  /** Each health round's answers, for progress and the inspector. */
  onHealthAttempt?: (answers: HealthAnswer[]) => void;
}

export class QemuExitedError extends WarmvmError {
  constructor(readonly exit: QemuExit, during: string, logTail: string) {
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code ?? 'unknown'}`;
    super('E_QEMU_EXITED', `QEMU exited (${how}) while ${during}${logTail ? `; it said:\n${logTail}` : ''}`, {
      hint: 'see qemu.log and serial.log in the instance folder',
    });
  }
}

/**
 * One QEMU of one instance, through its life on the cold path: launch, wait for the guest,
 * probe health, stop or hand off. Every wait races QEMU's exit, so a crash fails the state at
 * once instead of at its bound. The actors call one method each.
 */
export class VmRunner {
  private qemu: QemuProcess | undefined;
  private spawning: Promise<QemuProcess> | undefined;
  private qmp: QmpClient | undefined;
  private qga: QgaClient | undefined;
  private qemuCleanup: CleanupHandle | undefined;
  private readonly log: Logger;

  constructor(private readonly options: VmRunnerOptions) {
    this.log = options.logger.child({ module: 'vm-runner' });
  }

  get pid(): number | undefined {
    return this.qemu?.pid;
  }

  get qmpClient(): QmpClient | undefined {
    return this.qmp;
  }

  get qgaClient(): QgaClient | undefined {
    return this.qga;
  }

  /** Starts QEMU and connects to QMP. Cleanup to stop it is registered before anything can fail. */
  async launch(signal?: AbortSignal): Promise<{ pid: number }> {
    const { plan, paths } = this.options;
    await removeRuntimeFiles([paths.qmpSocket, paths.qgaSocket]);
    const argv = buildQemuArgv(plan);
    this.log.info({ binary: plan.binary, argv }, 'launching QEMU');
    // Registered before the spawn: a Ctrl-C that lands while QEMU is being started must still stop it.
    this.qemuCleanup = this.options.cleanup.add('stop QEMU', () => this.stopNow());
    this.spawning = spawnQemu({ binary: plan.binary, argv, logFile: paths.qemuLog, pidFile: paths.pidFile });
    const qemu = await this.spawning;
    this.qemu = qemu;
    this.qmp = await this.raceExit('opening its QMP socket', QmpClient.connectWhenReady(paths.qmpSocket, { deadlineMs: this.options.bounds.launchMs, signal, logger: this.log }));
    return { pid: qemu.pid };
  }

  /** The VM runs and, when the guest has an agent, the agent answers. */
  async waitForGuest(signal?: AbortSignal): Promise<{ runstate: string; agent: boolean }> {
    const qmp = this.requireQmp();
    const status = await this.raceExit('reporting its status', qmp.execute<{ status: string }>('query-status', undefined, { signal }));
    if (status.status !== 'running') {
      throw new WarmvmError('E_NOT_RUNNING', `QEMU's runstate is "${status.status}", not "running", after launch`, { hint: 'see qemu.log in the instance folder' });
    }
    if (!this.options.agent || !this.options.plan.qgaSocket) return { runstate: status.status, agent: false };
    this.qga = await this.raceExit(
      'waiting for the guest agent',
      QgaClient.connectWhenReady(this.options.plan.qgaSocket, { deadlineMs: this.options.bounds.bootMs, signal }),
    );
    return { runstate: status.status, agent: true };
  }

  async probeHealth(signal?: AbortSignal): Promise<HealthAnswer[]> {
    return await this.raceExit(
      'answering health checks',
      waitHealthy(this.options.health, {
        attemptTimeoutMs: 2_000,
        overallMs: this.options.bounds.healthMs,
        signal,
        onAttempt: this.options.onHealthAttempt,
      }),
    );
  }

  /** Stops QEMU (SIGTERM, then SIGKILL) and removes its sockets and pidfile. */
  async stop(): Promise<{ how: string }> {
    if (this.qemuCleanup) {
      await this.qemuCleanup.run();
      return { how: this.lastStop ?? 'stopped' };
    }
    await this.closeClients();
    return { how: 'nothing was running' };
  }

  /** Success: QEMU keeps running detached; warmvm lets go of it and its sockets. */
  async handOff(): Promise<void> {
    this.qemuCleanup?.release();
    await this.closeClients();
  }

  private lastStop: string | undefined;

  private async stopNow(): Promise<void> {
    await this.closeClients();
    const qemu = this.qemu ?? (await this.spawning?.catch(() => undefined));
    if (qemu) {
      this.lastStop = await stopProcess(qemu.pid, { graceMs: Math.min(5_000, this.options.bounds.stopMs), exited: qemu.exited });
      this.log.info({ pid: qemu.pid, how: this.lastStop }, 'QEMU stopped');
    }
    const { paths } = this.options;
    await removeRuntimeFiles([paths.qmpSocket, paths.qgaSocket, paths.pidFile]);
  }

  private async closeClients(): Promise<void> {
    await this.qga?.close().catch(() => undefined);
    await this.qmp?.close().catch(() => undefined);
    this.qga = undefined;
    this.qmp = undefined;
  }

  private requireQmp(): QmpClient {
    if (!this.qmp) throw new WarmvmError('E_STATE', 'QMP is not connected: QEMU was not launched', { hint: 'this is a warmvm bug; please report it' });
    return this.qmp;
  }

  /** Whatever comes first: the work, or QEMU's death (with the end of its log in the error). */
  private async raceExit<T>(during: string, work: Promise<T>): Promise<T> {
    const qemu = this.qemu;
    if (!qemu) return await work;
    const died = qemu.exited.then(async (exit) => {
      throw new QemuExitedError(exit, during, await tailLog(this.options.paths.qemuLog));
    });
    work.catch(() => undefined);
    return await Promise.race([work, died]);
  }
}
