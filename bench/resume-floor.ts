/**
 * The floor under `warmvm start`'s resume: the same steps done by a minimal script with no state
 * machine, no CLI, no checks: launch QEMU with the snapshot's argv + -incoming defer, migrate-incoming,
 * the agent's connection begun before cont (its sync answered the moment the guest runs), cont,
 * rotate secrets through the guest agent, the clock set once the hook exited (its answer not waited
 * for, as warmvm does), first HTTP 200. Alternated with `warmvm start` in one run; prints both and
 * their ratio.
 *   node dist/bench/resume-floor.js [--runs N]
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { getStatus } from '../adapters/vm/health-probe.js';
import { incomingFromFile, resumeVcpus } from '../adapters/qemu/monitor.js';
import { homePaths, instancePaths, resolveHome } from '../adapters/instance/paths.js';
import { projectRoot } from '../adapters/support/project-root.js';
import { QgaClient } from '../adapters/qemu/protocol/qga-client.js';
import { QmpClient } from '../adapters/qemu/protocol/qmp-client.js';
import { inspectQemu } from '../adapters/qemu/binary.js';
import { removeRuntimeFiles, spawnQemu, stopProcess } from '../adapters/qemu/process.js';
import { generateSecrets, secretsToEnvLines } from '../adapters/vm/secrets.js';
import { readInstanceState, type InstanceState } from '../adapters/instance/state.js';
import { snapshotPaths } from '../adapters/snapshot/store.js';
import { DEMO_ROTATION } from '../adapters/spec/vm.js';
import { formatSummary, parseRuns, summarize } from './stats.js';
import { helpIfAsked } from './argv.js';
import { instanceSnapshotSealed } from './sealed.js';

helpIfAsked(import.meta.url);

const runs = parseRuns(process.argv, 7);
const home = resolveHome();
const name = 'bench-floor';
const cli = join(projectRoot(), 'dist', 'bin', 'warmvm.js');
const env = { WARMVM_HOME: home };

async function warmvm(args: string[]): Promise<Record<string, unknown>> {
  const result = await execa('node', [cli, ...args, '--json'], { reject: false, env });
  return JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
}

/** The floor: every step of a resume, bare, with the argv warmvm's own resume just used. Returns seconds from launch to first 200. */
async function bareResume(state: InstanceState): Promise<{ total: number; steps: Record<string, number> }> {
  const paths = instancePaths(home, name);
  const snapshot = snapshotPaths(homePaths(home).snapshots, state.snapshot ?? '');
  const qemu = await inspectQemu();
  const url = `http://127.0.0.1:${state.forwards[0]?.host}/health`;
  await removeRuntimeFiles([paths.qmpSocket, paths.qgaSocket]);
  const t0 = performance.now();
  const mark: Record<string, number> = {};
  const proc = await spawnQemu({
    binary: qemu.binary,
    argv: [...state.argv, '-incoming', 'defer'],
    logFile: join(paths.dir, 'floor.log'),
    pidFile: join(paths.dir, 'floor.pid'),
  });
  try {
    const qmp = await QmpClient.connectWhenReady(paths.qmpSocket, { deadlineMs: 10_000 });
    mark.launch = performance.now();
    await incomingFromFile(qmp, snapshot.state, { timeoutMs: 30_000, pollMs: 2 });
    mark.incoming = performance.now();
    const connecting = QgaClient.connectWhenReady(paths.qgaSocket, { deadlineMs: 10_000 });
    await resumeVcpus(qmp, { timeoutMs: 10_000 });
    mark.cont = performance.now();
    const qga = await connecting;
    const result = await qga.exec(DEMO_ROTATION.command, [], { inputData: secretsToEnvLines(generateSecrets(DEMO_ROTATION.names)) });
    if (result.exitCode !== 0) throw new Error(`rotate exited ${result.exitCode}`);
    // As warmvm does: asked once the hook exited, its answer not waited for.
    qga.setTime().catch(() => undefined);
    mark.rotate = performance.now();
    while ((await getStatus(url, 1_000)).status !== 200) await new Promise((resolve) => setTimeout(resolve, 2));
    mark.http200 = performance.now();
    await qga.close();
    await qmp.close();
    const steps: Record<string, number> = {};
    let previous = t0;
    for (const [step, at] of Object.entries(mark)) {
      steps[step] = (at - previous) / 1000;
      previous = at;
    }
    return { total: (mark.http200 - t0) / 1000, steps };
  } finally {
    await stopProcess(proc.pid, { graceMs: 2_000, exited: proc.exited });
    await removeRuntimeFiles([paths.qmpSocket, paths.qgaSocket]);
  }
}

await warmvm(['stop', '--name', name]);
await warmvm(['reset', '--name', name, '--snapshot']);
const first = await warmvm(['start', '--name', name]);
if (first.outcome !== 'healthy') throw new Error(`priming failed: ${JSON.stringify(first)}`);
// A first start that captured left the seal reading the memory file: not beside the timed runs.
await instanceSnapshotSealed(home, name);
await warmvm(['stop', '--name', name]);

const whole: number[] = [];
const inside: number[] = [];
const floor: number[] = [];
const ratios: number[] = [];
const floorSteps: Record<string, number[]> = {};
for (let i = 0; i < runs; i += 1) {
  const began = performance.now();
  const started = await warmvm(['start', '--name', name]);
  const wall = (performance.now() - began) / 1000;
  const state = await readInstanceState(instancePaths(home, name).stateFile);
  await warmvm(['stop', '--name', name]);
  if (!state?.snapshot) throw new Error(`the resumed instance recorded no snapshot: ${JSON.stringify(state)}`);
  if (started.path !== 'resume') throw new Error(`expected a resume, got ${JSON.stringify(started)}`);
  const seconds = started.seconds as Record<string, number>;
  // warmvm's own resume: from entering resume.launching to healthy, the same span as the floor.
  const ownResume = ['resume.launching', 'resume.incoming', 'resume.paused', 'resume.cont', 'resume.rotating', 'resume.probing'].reduce((sum, key) => sum + (seconds[key] ?? 0), 0);
  const bare = await bareResume(state);
  whole.push(wall);
  inside.push(ownResume);
  floor.push(bare.total);
  ratios.push(ownResume / bare.total);
  for (const [step, value] of Object.entries(bare.steps)) (floorSteps[step] ??= []).push(value);
  process.stderr.write(`  run ${i + 1}/${runs}: warmvm resume ${ownResume.toFixed(3)} s (whole CLI ${wall.toFixed(3)} s), floor ${bare.total.toFixed(3)} s\n`);
}
console.log(`resume of the demo guest (256 MB, TCG) with rotation, ${runs} runs`);
console.log(formatSummary('warmvm start, whole CLI process', summarize(whole)));
console.log(formatSummary('warmvm start, launch → healthy', summarize(inside)));
console.log(formatSummary('bare floor, launch → first 200', summarize(floor)));
console.log(formatSummary('ratio warmvm / floor (per pair)', summarize(ratios), '×'));
console.log('floor steps:');
for (const [step, values] of Object.entries(floorSteps)) console.log('  ' + formatSummary(step, summarize(values)));
