import type { Failure } from '../../machines/failure.js';
import { createActor, waitFor } from 'xstate';
import { CleanupStack } from '../../adapters/support/cleanup.js';
import { WarmvmError } from '../../adapters/support/errors.js';
import { acquireInstanceLock } from '../../adapters/instance/lock.js';
import type { Logger } from '../../adapters/support/logger.js';
import { ensureInstanceDir } from '../../adapters/instance/paths.js';
import { archivePreviousTrace } from '../../adapters/trace/archive.js';
import { TraceRecorder } from '../../adapters/trace/recorder.js';
import { defaultSpec, type VmSpec } from '../../adapters/spec/vm.js';
import { captureActors } from '../../actors/capture.js';
import { coldBootActors } from '../../actors/cold-boot.js';
import { resumeActors } from '../../actors/resume.js';
import { startActors } from '../../actors/start.js';
import { captureMachine } from '../../machines/capture.js';
import { coldBootMachine } from '../../machines/cold-boot.js';
import { resumeMachine } from '../../machines/resume.js';
import { startMachine, type StartBounds } from '../../machines/start.js';
import { captureSteps } from '../../steps/capture.js';
import { coldBootSteps } from '../../steps/cold-boot.js';
import { handOffHealthy } from '../../steps/hand-off.js';
import { resumeSteps } from '../../steps/resume.js';
import { createRun, onExchange } from '../../steps/run.js';
import { startSteps } from '../../steps/start.js';
import type { InspectTarget, LiveInspector } from '../inspector/live.js';
import { onInterrupt } from '../interrupt.js';
import { seconds, type Output } from '../output.js';
import { packageVersion } from '../version.js';

export interface StartOptions {
  name: string;
  config: string | undefined;
  cold: boolean;
  capture: boolean;
  rotation: boolean;
  home: string;
  logger: Logger;
  output: Output;
  inspect?: InspectTarget | undefined;
}

/** A state's key in `seconds`: the root's own states bare, a child's with its machine's name. */
function phaseKey(state: string): string {
  return state.startsWith('start.') ? state.slice('start.'.length) : state;
}

/** Bounds of every machine, from the spec's. */
export function startBounds(spec: VmSpec): StartBounds {
  const { launchMs, bootMs, healthMs, stopMs, incomingMs, rotateMs, captureMs } = spec.bounds;
  return {
    preflightMs: 30_000,
    imageMs: 15 * 60_000,
    accelMs: 30_000,
    chooseMs: 10_000,
    // The longest another start's cold boot and capture may take within their own bounds.
    captureWaitMs: 2 * launchMs + bootMs + rotateMs + healthMs + 2 * stopMs + 2 * captureMs,
    setAsideMs: 10_000,
    // Blobs of a few GB from a registry; a slower pull is cut off and the cold boot runs instead.
    pullMs: 10 * 60_000,
    launchMs,
    bootMs,
    rotateMs,
    healthMs,
    stopMs,
    prepareMs: captureMs,
    // What the cold boot prepares used to be timed inside launching: it keeps that bound.
    coldPrepareMs: launchMs,
    incomingMs,
    contMs: incomingMs,
    pauseMs: stopMs,
    migrateMs: captureMs,
    quitMs: stopMs,
    storeMs: captureMs,
    recoverMs: stopMs,
  };
}

/** Runs the root machine for one instance; resolves with the process exit code. */
export async function startCommand(options: StartOptions): Promise<number> {
  const { output, logger } = options;
  // Loaded only for a config: its schema (zod) costs a start ~13 ms that the demo guest need not pay.
  const spec: VmSpec = options.config ? await (await import('../../adapters/spec/config.js')).loadConfigFile(options.config) : defaultSpec();
  const paths = await ensureInstanceDir(options.home, options.name);
  const cleanup = new CleanupStack(logger);
  // The lock comes before anything of the instance is touched: a refused start changes nothing.
  const lock = await acquireInstanceLock(paths.lockFile, paths.name);
  cleanup.add('release the instance lock', () => lock.release());
  try {
    const bounds = startBounds(spec);
    // Opened before the trace begins: the run's time, and its waterfall, are the machines' alone.
    const inspector = options.inspect ? await openInspector(options.inspect, bounds, options.name) : undefined;
    await archivePreviousTrace(paths.traceFile);
    const trace = new TraceRecorder(paths.traceFile);
    inspector?.begin(trace.startedAt);
    const run = createRun({ spec, paths, home: options.home, cleanup, logger, progress: output.progress, startedAt: trace.startedAt });
    onExchange(run, (exchange) => trace.exchange(exchange));
    trace.onEntry((entry) => {
      if (entry.from && entry.ms !== undefined && !isFinal(entry.from)) output.progress.line(`  ${phaseKey(entry.from).padEnd(22)} ${(entry.ms / 1000).toFixed(2)} s`);
    });

    const rotation = options.rotation && spec.rotation !== undefined;
    const machine = startMachine.provide({
      actors: {
        ...startActors(startSteps(run)),
        coldBoot: coldBootMachine.provide({ actors: coldBootActors(coldBootSteps(run)) }),
        capture: captureMachine.provide({ actors: captureActors(captureSteps(run)) }),
        resume: resumeMachine.provide({ actors: resumeActors(resumeSteps(run)) }),
      },
    });
    output.progress.line(`warmvm: starting instance "${options.name}"${options.cold ? ' (cold boot forced)' : ''}`);
    if (!options.rotation) output.progress.line('warmvm: WARNING: --no-rotation: the guest keeps the placeholder secrets of its snapshot');
    if (inspector) {
      trace.onEntry((entry) => inspector.entry(entry));
      onExchange(run, (exchange) => inspector.exchange(exchange));
    }
    const forward = inspector?.inspect;
    const actor = createActor(machine, {
      input: { bounds, forceCold: options.cold, capture: options.capture, rotation, pull: spec.snapshotPull !== undefined },
      inspect: forward
        ? (event) => {
            trace.inspect(event);
            forward(event);
          }
        : trace.inspect,
    });
    const stopListening = onInterrupt(
      () => {
        output.progress.line('warmvm: interrupted; stopping what was started (Ctrl-C again to force)');
        actor.send({ type: 'CANCEL' });
      },
      async () => {
        await cleanup.runAll();
      },
    );
    actor.start();
    const final = await waitFor(actor, (snapshot) => snapshot.status !== 'active', { timeout: Infinity });
    stopListening();
    const result = final.output;
    const durations = trace.durations();
    const phaseSeconds: Record<string, number | undefined> = { total: seconds(trace.elapsedMs()) };
    for (const [state, ms] of Object.entries(durations)) if (!isFinal(state)) phaseSeconds[phaseKey(state)] = seconds(ms);

    if (result?.outcome === 'healthy') {
      const state = await handOffHealthy(run, result.pid, result.path);
      await cleanup.runAll();
      const spansWarning = await sendSpansIfAsked(paths.traceFile, options.name);
      const health = result.health.map((answer) => ({ url: answer.url, status: answer.status }));
      const secretsFile = result.rotated || result.kept ? paths.secretsFile : undefined;
      output.result(
        {
          name: options.name,
          outcome: 'healthy',
          path: result.path,
          ...(result.fallbackReason ? { fallbackReason: result.fallbackReason } : {}),
          pid: result.pid,
          accel: state.accel,
          snapshot: state.snapshot ?? null,
          seconds: phaseSeconds,
          health,
          rotated: result.rotated,
          keptSecrets: result.kept,
          secretsFile: secretsFile ?? null,
          warnings: spansWarning === undefined ? result.warnings : [...result.warnings, spansWarning],
          instanceDir: paths.dir,
          ...(inspector?.url ? { inspectUrl: inspector.url } : {}),
        },
        [
          `warmvm: instance "${options.name}" is healthy (${result.path}, ${phaseSeconds.total?.toFixed(2)} s, ${state.accel}, QEMU pid ${result.pid})`,
          ...(result.fallbackReason ? [`  the fast path failed and a cold boot ran instead: ${result.fallbackReason}`] : []),
          ...(state.snapshot ? [`  running from snapshot ${state.snapshot} (its memory shared with every instance of this config)`] : []),
          ...health.map((answer) => `  ${answer.url}  → ${answer.status}`),
          ...(result.path === 'wake' ? ['  woken from its suspended state (its own RAM, devices and disk, as they were)'] : []),
          result.kept
            ? `  secrets: kept from before the suspend, none rotated: ${secretsFile} (mode 0600)`
            : secretsFile
              ? `  fresh secrets: ${secretsFile} (mode 0600)`
              : '  secrets: not rotated',
          ...result.warnings.map((warning) => `  WARNING: ${warning}`),
          `  stop it with: warmvm stop --name ${options.name}`,
        ].join('\n'),
      );
      await inspector?.finish(
        {
          outcome: 'healthy',
          summary: `healthy by ${result.path} in ${phaseSeconds.total?.toFixed(2)} s, QEMU pid ${result.pid}`,
          ...(result.fallbackReason ? { fallbackReason: result.fallbackReason } : {}),
        },
        output,
      );
      return 0;
    }
    await cleanup.runAll();
    const spansWarning = await sendSpansIfAsked(paths.traceFile, options.name);
    const failure: Failure = result?.outcome === 'failed' ? result.failure : { state: 'start', code: 'E_UNEXPECTED', message: 'start ended without a result', hint: undefined };
    const stopNote = result?.outcome === 'failed' && result.stopError ? ` (and stopping QEMU failed: ${result.stopError})` : '';
    output.error(new WarmvmError(failure.code, `start failed in ${failure.state}: ${failure.message}${stopNote}`, { hint: failure.hint ?? `see the trace: ${paths.traceFile}` }), {
      name: options.name,
      path: result?.path ?? '',
      ...(result?.fallbackReason ? { fallbackReason: result.fallbackReason } : {}),
      seconds: phaseSeconds,
      failedState: failure.state,
      ...(inspector?.url ? { inspectUrl: inspector.url } : {}),
      ...(spansWarning === undefined ? {} : { warnings: [spansWarning] }),
    });
    // Ctrl-C ended the run: the person is leaving, do not ask for a second one.
    if (failure.code !== 'E_INTERRUPTED') {
      await inspector?.finish(
        {
          outcome: 'failed',
          summary: `failed in ${failure.state}: ${failure.code} ${failure.message}`,
          ...(result?.fallbackReason ? { fallbackReason: result.fallbackReason } : {}),
        },
        output,
      );
    }
    return failure.code === 'E_INTERRUPTED' ? 130 : 1;
  } finally {
    await cleanup.runAll();
  }
}

/**
 * The run's spans to the OTLP endpoint the OTel environment names, once the run is over (its
 * trace is whole). Without OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
 * nothing of OpenTelemetry is even loaded; with one, a send that fails is a warning on stderr
 * (returned for --json's warnings), never the start's failure.
 */
async function sendSpansIfAsked(traceFile: string, name: string): Promise<string | undefined> {
  const env = process.env;
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return undefined;
  // The spec's switch for turning the SDK off while the endpoint stays set.
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const { sendRunTrace } = await import('../../adapters/otel/run.js');
  const warning = await sendRunTrace(traceFile, name, { version: packageVersion() });
  if (warning !== undefined) process.stderr.write(`warmvm: WARNING: ${warning}\n`);
  return warning;
}

function isFinal(state: string): boolean {
  return /\.(ready|failed|healthy|captured|running)$/.test(state);
}

/** The live inspector, loaded only for --inspect: a plain start never pays for the page and its server. */
async function openInspector(target: InspectTarget, bounds: StartBounds, name: string): Promise<LiveInspector> {
  const [{ LiveInspector }, { inspectorModel }] = await Promise.all([import('../inspector/live.js'), import('../inspector/model.js')]);
  return await LiveInspector.open(target, { model: inspectorModel({ kind: 'start', bounds }), title: `warmvm start --name ${name}` });
}
