import type { Logger } from '../support/logger.js';
import type { CleanupHandle, CleanupStack } from '../support/cleanup.js';
import { WarmvmError } from '../support/errors.js';
import type { Exchange } from '../trace/record.js';
import { waitHealthy, type HealthAnswer, type HealthCheck } from './health-probe.js';
import type { InstancePaths } from '../instance/paths.js';
import { QgaClient } from '../qemu/protocol/qga-client.js';
import { QmpClient } from '../qemu/protocol/qmp-client.js';
import { isProcessAlive } from '../support/process-alive.js';
import { readPidFile, removeRuntimeFiles, spawnQemu, stopProcess, tailLog, type QemuExit, type QemuProcess } from '../qemu/process.js';
import { QemuExitedError } from './qemu-exited.js';
import { waitForSerialMarker } from './serial-marker.js';

export interface VmRunnerOptions {
  binary: string;
  /** QEMU's argv: built from a plan for a cold boot, the snapshot's own (+ -incoming defer) for a resume. */
  argv: string[];
  qgaSocket: string | undefined;
  paths: InstancePaths;
  health: HealthCheck[];
  agent: boolean;
  /** Waited for on the serial console after the agent answers (see VmSpec.readyMarker). */
  readyMarker?: string | undefined;
  bounds: { launchMs: number; bootMs: number; healthMs: number; stopMs: number };
  cleanup: CleanupStack;
  logger: Logger;
  /** Each health round's answers, for progress and the inspector. */
  onHealthAttempt?: (answers: HealthAnswer[]) => void;
  /** Each QMP and guest-agent command and its answer, for the inspector. */
  onExchange?: (exchange: Omit<Exchange, 'at'>) => void;
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
  /** An agent connection begun by connectAgentSoon, not yet taken by agent(). */
  private agentEarly: { pending: Promise<QgaClient>; abort: AbortController } | undefined;
  private qemuCleanup: CleanupHandle | undefined;
  private readonly log: Logger;

  constructor(private readonly options: VmRunnerOptions) {
    this.log = options.logger.child({ module: 'vm-runner' });
  }

  get argv(): string[] {
    return this.options.argv;
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

  /**
   * Takes over a QEMU that an earlier `start` left running (for `warmvm capture`): its exit is
   * noticed by polling, since it is not our child, and no cleanup stops it: it is the user's.
   */
  async attach(pid: number, signal?: AbortSignal): Promise<void> {
    let gone = false;
    const exited = new Promise<QemuExit>((resolve) => {
      const poll = (): void => {
        void isProcessAlive(pid).then((alive) => {
          if (alive) setTimeout(poll, 100).unref();
          else {
            gone = true;
            resolve({ code: undefined, signal: undefined });
          }
        });
      };
      poll();
    });
    this.qemu = { pid, exited, hasExited: () => gone };
    this.qmp = await this.raceExit(
      'accepting a QMP connection',
      QmpClient.connect(this.options.paths.qmpSocket, { timeoutMs: this.options.bounds.launchMs, signal, logger: this.log }),
    );
    this.observe(this.qmp, 'qmp');
  }

  /** Starts QEMU and connects to QMP. Cleanup to stop it is registered before anything can fail. */
  async launch(signal?: AbortSignal): Promise<{ pid: number }> {
    const { binary, argv, paths } = this.options;
    await removeRuntimeFiles([paths.qmpSocket, paths.qgaSocket]);
    this.log.info({ binary, argv }, 'launching QEMU');
    // Registered before the spawn: a Ctrl-C that lands while QEMU is being started must still stop it.
    this.qemuCleanup = this.options.cleanup.add('stop QEMU', () => this.stopNow());
    this.spawning = spawnQemu({ binary, argv, logFile: paths.qemuLog, pidFile: paths.pidFile });
    const qemu = await this.spawning;
    this.qemu = qemu;
    this.qmp = await this.raceExit(
      'opening its QMP socket',
      QmpClient.connectWhenReady(paths.qmpSocket, { deadlineMs: this.options.bounds.launchMs, signal: this.untilExit(signal), logger: this.log }),
    );
    this.observe(this.qmp, 'qmp');
    return { pid: qemu.pid };
  }

  /** The VM runs and, when the guest has an agent, the agent answers. */
  async waitForGuest(signal?: AbortSignal): Promise<{ runstate: string; agent: boolean }> {
    const qmp = this.requireQmp();
    const status = await this.raceExit('reporting its status', qmp.execute<{ status: string }>('query-status', undefined, { signal }));
    if (status.status !== 'running') {
      throw new WarmvmError('E_NOT_RUNNING', `QEMU's runstate is "${status.status}", not "running", after launch`, { hint: 'see qemu.log in the instance folder' });
    }
    const agent = Boolean(this.options.agent && this.options.qgaSocket);
    if (agent) await this.agent(this.options.bounds.bootMs, signal);
    if (this.options.readyMarker)
      await this.raceExit(
        `printing "${this.options.readyMarker}" on its serial console`,
        waitForSerialMarker(this.options.paths.serialLog, this.options.readyMarker, this.untilExit(signal)),
      );
    return { runstate: status.status, agent };
  }

  /** The guest agent, connected and in sync (connecting first when needed). */
  async agent(deadlineMs: number, signal?: AbortSignal): Promise<QgaClient> {
    if (this.qga && !this.qga.closed) return this.qga;
    if (!this.options.qgaSocket)
      throw new WarmvmError('E_NO_AGENT', 'this guest has no guest agent configured', { hint: 'set "agent": true in the config and run qemu-ga in the guest' });
    const early = this.agentEarly;
    this.agentEarly = undefined;
    if (early && signal) {
      if (signal.aborted) early.abort.abort(signal.reason);
      else signal.addEventListener('abort', () => early.abort.abort(signal.reason), { once: true });
    }
    const connecting = early?.pending ?? QgaClient.connectWhenReady(this.options.qgaSocket, { deadlineMs, signal: this.untilExit(signal) });
    this.qga = await this.raceExit('waiting for the guest agent', connecting);
    this.observe(this.qga, 'qga');
    return this.qga;
  }

  /**
   * Begins connecting to the agent now, while the VM may still be paused: the socket is QEMU's, and
   * the sync waits in it until the guest runs and answers. The next agent() takes this connection
   * instead of starting one then. Nothing happens without an agent or with one connected.
   */
  connectAgentSoon(deadlineMs: number): void {
    if (this.agentEarly || (this.qga && !this.qga.closed) || !this.options.qgaSocket) return;
    const abort = new AbortController();
    const pending = QgaClient.connectWhenReady(this.options.qgaSocket, { deadlineMs, signal: this.untilExit(abort.signal) });
    // Its failure is agent()'s to report; until then it is nobody's.
    pending.catch(() => undefined);
    this.agentEarly = { pending, abort };
  }

  /** QMP of the running QEMU; raced against its exit by the caller through `whileRunning`. */
  qmpConnection(): QmpClient {
    return this.requireQmp();
  }

  /** Runs `work` unless QEMU dies first, in which case the error says so, with QEMU's last words. */
  async whileRunning<T>(during: string, work: Promise<T>): Promise<T> {
    return await this.raceExit(during, work);
  }

  /** QEMU has exited on its own terms (a `quit`): wait for it and forget it. */
  async waitExit(boundMs: number): Promise<void> {
    const qemu = this.qemu;
    if (!qemu) return;
    await this.closeClients();
    const exited = await Promise.race([qemu.exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), boundMs).unref())]);
    if (!exited) throw new WarmvmError('E_QEMU_QUIT', `QEMU (pid ${qemu.pid}) did not exit within ${boundMs} ms of quit`, { hint: 'see qemu.log in the instance folder' });
    await this.removeOwnRuntimeFiles(qemu.pid);
    // Gone by its own quit: nothing is left for the cleanup to stop.
    this.qemuCleanup?.release();
  }

  async probeHealth(signal?: AbortSignal): Promise<HealthAnswer[]> {
    return await this.raceExit(
      'answering health checks',
      waitHealthy(this.options.health, {
        attemptTimeoutMs: 2_000,
        overallMs: this.options.bounds.healthMs,
        signal: this.untilExit(signal),
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
    await this.removeOwnRuntimeFiles(qemu?.pid);
  }

  /**
   * Sockets and pidfile are the instance's, shared by every QEMU a start launches in turn: remove
   * them only while the pidfile still names this runner's QEMU (or nobody's).
   */
  private async removeOwnRuntimeFiles(pid: number | undefined): Promise<void> {
    const holder = await readPidFile(this.options.paths.pidFile);
    if (holder !== undefined && holder !== pid) return;
    const { paths } = this.options;
    await removeRuntimeFiles([paths.qmpSocket, paths.qgaSocket, paths.pidFile]);
  }

  private async closeClients(): Promise<void> {
    const early = this.agentEarly;
    this.agentEarly = undefined;
    if (early) {
      early.abort.abort(new WarmvmError('E_ABORTED', 'the VM is being stopped'));
      await (await early.pending.catch(() => undefined))?.close().catch(() => undefined);
    }
    await this.qga?.close().catch(() => undefined);
    await this.qmp?.close().catch(() => undefined);
    this.qga = undefined;
    this.qmp = undefined;
  }

  /** Reports each answer (and QMP event) to the inspector, with the time since its command went out. */
  private observe(client: QmpClient | QgaClient, channel: 'qmp' | 'qga'): void {
    const report = this.options.onExchange;
    if (!report) return;
    const sentAt = new Map<string, number>();
    client.observeExchanges((exchange) => {
      if (exchange.direction === 'sent') {
        if (exchange.name) sentAt.set(exchange.name, Date.now());
        return;
      }
      if (exchange.kind === 'greeting') return;
      const started = exchange.kind === 'event' || !exchange.name ? undefined : sentAt.get(exchange.name);
      report({
        channel,
        what: exchange.kind === 'event' ? `event ${exchange.name ?? '?'}` : (exchange.name ?? exchange.kind),
        ok: exchange.kind !== 'error' && exchange.kind !== 'malformed',
        summary: summarizeReply(exchange.text),
        ...(started !== undefined ? { ms: Date.now() - started } : {}),
      });
    });
  }

  private requireQmp(): QmpClient {
    if (!this.qmp) throw new WarmvmError('E_STATE', 'QMP is not connected: QEMU was not launched', { hint: 'this is a warmvm bug; please report it' });
    return this.qmp;
  }

  /**
   * Whatever comes first: the work, or QEMU's death (with the end of its log in the error). A
   * dropped QMP connection usually beats the exit notice by a moment: when the work fails, give
   * the exit a moment to show, so the error names the real cause.
   */
  /**
   * The caller's signal, also aborted once QEMU has exited. raceExit gives up on work when QEMU
   * dies, and nothing aborts it after (an actor's signal is not aborted once its promise settled):
   * a connect loop left running would take the next QEMU's socket, at the same path, for itself.
   */
  private untilExit(signal: AbortSignal | undefined): AbortSignal | undefined {
    const qemu = this.qemu;
    if (!qemu) return signal;
    const exited = new AbortController();
    void qemu.exited.then(() => exited.abort(new WarmvmError('E_ABORTED', 'QEMU exited')));
    return signal ? AbortSignal.any([signal, exited.signal]) : exited.signal;
  }

  private async raceExit<T>(during: string, work: Promise<T>): Promise<T> {
    const qemu = this.qemu;
    if (!qemu) return await work;
    const died = async (exit: QemuExit): Promise<never> => {
      throw new QemuExitedError(exit, during, await tailLog(this.options.paths.qemuLog));
    };
    work.catch(() => undefined);
    try {
      return await Promise.race([work, qemu.exited.then(died)]);
    } catch (error) {
      if (error instanceof QemuExitedError) throw error;
      const exit = await Promise.race([qemu.exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 250).unref())]);
      if (exit) return await died(exit);
      throw error;
    }
  }
}

/** A reply in a few words; a guest program's output is left out (it is the guest's, and may be anything). */
function summarizeReply(text: string): string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Cut short by the exchange ring: still never show a program's output.
    return text.replace(/"(out|err)-data":"[^"]*"?/g, '"$1-data":"[…]"').slice(0, 160);
  }
  const summary = JSON.stringify(value, (key, inner: unknown) =>
    key === 'out-data' || key === 'err-data' ? `[${typeof inner === 'string' ? inner.length : 0} base64 chars]` : inner,
  );
  return summary.length <= 160 ? summary : `${summary.slice(0, 159)}…`;
}
