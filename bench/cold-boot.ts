/**
 * Cold boot of the demo guest to healthy through `warmvm start --cold --no-rotation` (the bare
 * boot rotates nothing either), against a bare
 * qemu-system-x86_64 boot of the same guest with the same argv to its first HTTP 200, in one
 * run, alternating A B A B so that drift of a shared machine hits both alike.
 *   node dist/bench/cold-boot.js [--runs N]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { DEMO_APPEND } from '../adapters/guest/boot-files.js';
import { ensureDemoGuest } from '../adapters/guest/demo/guest.js';
import { getStatus } from '../adapters/vm/health-probe.js';
import { resolveHome, homePaths } from '../adapters/instance/paths.js';
import { findFreePort } from '../adapters/instance/ports.js';
import { buildQemuArgv, defaultCpuModel } from '../adapters/qemu/argv.js';
import { inspectQemu } from '../adapters/qemu/binary.js';
import { projectRoot } from '../adapters/support/project-root.js';
import { formatSummary, parseRuns, summarize } from './stats.js';
import { helpIfAsked } from './argv.js';

helpIfAsked(import.meta.url);

const runs = parseRuns(process.argv, 5);
const cli = join(projectRoot(), 'dist', 'bin', 'warmvm.js');
const home = resolveHome();

async function warmvmColdStart(): Promise<{ wall: number; phases: Record<string, number> }> {
  const started = performance.now();
  const result = await execa('node', [cli, 'start', '--cold', '--no-rotation', '--name', 'bench-cold', '--json'], { reject: false, env: { WARMVM_HOME: home } });
  const wall = (performance.now() - started) / 1000;
  const json = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { outcome?: string; seconds?: Record<string, number>; error?: unknown };
  await execa('node', [cli, 'stop', '--name', 'bench-cold'], { reject: false, env: { WARMVM_HOME: home } });
  if (json.outcome !== 'healthy') throw new Error(`warmvm start failed: ${JSON.stringify(json.error ?? result.stderr)}`);
  return { wall, phases: json.seconds ?? {} };
}

async function bareQemuBoot(kernel: string, initrd: string): Promise<number> {
  const qemu = await inspectQemu();
  const dir = await mkdtemp(join(tmpdir(), 'wvm-bench-'));
  const port = await findFreePort();
  const argv = buildQemuArgv({
    instanceName: 'bench-bare',
    binary: qemu.binary,
    machineType: qemu.machineType,
    accel: 'tcg',
    cpuModel: defaultCpuModel('tcg'),
    memoryMb: 256,
    cpus: 1,
    kernel,
    initrd,
    append: DEMO_APPEND,
    disk: undefined,
    forwards: [{ guest: 8080, host: port }],
    qmpSocket: join(dir, 'qmp.sock'),
    qgaSocket: join(dir, 'qga.sock'),
    serialLog: join(dir, 'serial.log'),
  });
  const started = performance.now();
  const child = execa(qemu.binary, argv, { reject: false, stdin: 'ignore' });
  try {
    for (;;) {
      const answer = await getStatus(`http://127.0.0.1:${port}/health`, 1_000);
      if (answer.status === 200) return (performance.now() - started) / 1000;
      if (performance.now() - started > 120_000) throw new Error('bare QEMU boot gave no 200 within 120 s');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    child.kill('SIGKILL');
    await child;
    await rm(dir, { recursive: true, force: true });
  }
}

const guest = await ensureDemoGuest({ imagesDir: homePaths(home).images, onProgress: (line) => process.stderr.write(`  ${line}\n`) });
const warm: number[] = [];
const bare: number[] = [];
const ratios: number[] = [];
const phaseSamples: Record<string, number[]> = {};
// One warm-up of each, not counted: first-run page cache and the accelerator probe.
await warmvmColdStart();
await bareQemuBoot(guest.kernel, guest.initrd);
for (let i = 0; i < runs; i += 1) {
  const a = await warmvmColdStart();
  const b = await bareQemuBoot(guest.kernel, guest.initrd);
  warm.push(a.wall);
  bare.push(b);
  ratios.push(a.wall / b);
  for (const [phase, value] of Object.entries(a.phases)) (phaseSamples[phase] ??= []).push(value);
  process.stderr.write(`  run ${i + 1}/${runs}: warmvm start --cold ${a.wall.toFixed(2)} s, bare QEMU ${b.toFixed(2)} s\n`);
}
console.log(`cold boot of the demo guest to healthy, TCG, ${runs} runs (after 1 warm-up each)`);
console.log(formatSummary('warmvm start --cold (whole CLI)', summarize(warm)));
console.log(formatSummary('bare qemu-system-x86_64 → 200', summarize(bare)));
console.log(formatSummary('ratio warmvm / bare (per pair)', summarize(ratios), '×'));
console.log('warmvm phases (seconds, as start --json reports them):');
for (const [phase, values] of Object.entries(phaseSamples)) console.log('  ' + formatSummary(phase, summarize(values)));
