#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { createLogger } from '../adapters/support/logger.js';
import { resolveHome } from '../adapters/instance/paths.js';
import { projectRoot } from '../adapters/support/project-root.js';
import { createOutput, type Output } from './output.js';

const program = new Command();

program
  .name('warmvm')
  .description(
    'Bring a QEMU virtual machine from a disk image to healthy as fast as the hardware allows.\n' +
      'State lives under $WARMVM_HOME (default ~/.warmvm): images/, snapshots/, instances/<name>/.',
  )
  .version((JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version)
  .showHelpAfterError('(run with --help for usage)');

const nameOption = (): Option => new Option('-n, --name <name>', 'instance name').default('default');
const jsonOption = (): Option => new Option('--json', 'print one JSON object on stdout (progress, if any, goes to stderr)');

program
  .command('start')
  .description(
    'Start an instance and wait until its health checks pass; QEMU keeps running detached.\n' +
      "Resumes the snapshot of the instance's config when it matches this host (fresh secrets, then\n" +
      'health), else cold-boots; a first start cold-boots, captures, then resumes. Every instance of one\n' +
      'config resumes the same snapshot, on its own ports; a start that finds another capturing it waits\n' +
      'for that capture. Any failure on the resume path falls back to a cold boot, once. Without --config\n' +
      'the embedded demo guest is used.',
  )
  .addOption(nameOption())
  .option('-c, --config <file>', 'JSON config: memoryMb, cpus, accel, image, ports, health, bounds (see README)')
  .option('--cold', 'boot cold: neither use nor make a snapshot')
  .option('--no-capture', 'do not capture a snapshot after a cold boot')
  .option('--no-rotation', "keep the snapshot's placeholder secrets (a warning says so)")
  .option(
    '--inspect [target]',
    'watch the run: serve a live page on 127.0.0.1 (URL with a token, printed on stderr; PORT picks the port) and, once the run is over, keep it until Ctrl-C; "stately[:URL]" sends the events to a @statelyai/inspect WebSocket server instead',
  )
  .addOption(jsonOption())
  .action(async (opts: { name: string; config?: string; cold?: boolean; capture: boolean; rotation: boolean; inspect?: string | boolean; json?: boolean }) => {
    await run(opts.json, async (output, logger) => {
      const { parseInspectTarget } = await import('./inspector/live.js');
      return (await import('./commands/start.js')).startCommand({
        name: opts.name,
        config: opts.config,
        cold: opts.cold ?? false,
        capture: opts.capture,
        rotation: opts.rotation,
        inspect: parseInspectTarget(opts.inspect),
        home: resolveHome(),
        logger,
        output,
      });
    });
  });

program
  .command('inspect')
  .description('Serve the inspector page on a recorded trace (a run that is over, a CI artifact), with a slider to step through it; until Ctrl-C')
  .argument('[file]', "a trace.jsonl (default: the instance's, $WARMVM_HOME/instances/<name>/trace.jsonl)")
  .addOption(nameOption())
  .option('-p, --port <port>', 'the port on 127.0.0.1 (default: any free one)', '0')
  .addOption(jsonOption())
  .action(async (file: string | undefined, opts: { name: string; port: string; json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/inspect.js')).inspectCommand({ file, name: opts.name, home: resolveHome(), port: Number(opts.port), output }));
  });

program
  .command('status')
  .description("Say whether an instance runs, its QEMU pid and its health checks' answers")
  .addOption(nameOption())
  .addOption(jsonOption())
  .action(async (opts: { name: string; json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/status.js')).statusCommand({ name: opts.name, home: resolveHome(), output }));
  });

program
  .command('list')
  .summary('List the instances (state, pid, path, snapshot, ports, health) and the snapshots they run from')
  .description(
    'List every instance under $WARMVM_HOME/instances/: running or stopped, its QEMU pid, path (cold, resume, ...), ' +
      'the snapshot it runs from ("—" when cold-booted), its host ports and its health (each check asked once, briefly); ' +
      'then every snapshot in the store with the running instances that map its memory.',
  )
  .addOption(jsonOption())
  .action(async (opts: { json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/list.js')).listCommand({ home: resolveHome(), output }));
  });

program
  .command('stop')
  .description("Stop an instance's QEMU (SIGTERM, then SIGKILL) and remove its sockets and pidfile")
  .addOption(nameOption())
  .addOption(jsonOption())
  .action(async (opts: { name: string; json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/stop.js')).stopCommand({ name: opts.name, home: resolveHome(), output }));
  });

program
  .command('capture')
  .description(
    "Capture a running cold-booted instance (started with --cold or --no-capture) into its config's snapshot; the VM ends stopped, the next start of any instance of that config resumes it",
  )
  .addOption(nameOption())
  .option('-c, --config <file>', 'the config the instance was started with')
  .addOption(jsonOption())
  .action(async (opts: { name: string; config?: string; json?: boolean }) => {
    await run(opts.json, async (output, logger) =>
      (await import('./commands/capture.js')).captureCommand({ name: opts.name, config: opts.config, home: resolveHome(), logger, output }),
    );
  });

program
  .command('reset')
  .summary("Remove an instance's state; with --snapshot also the snapshot it last ran from or captured")
  .description(
    "Remove an instance's state (logs, trace, secrets, disk overlay); with --snapshot also the snapshot it last ran from " +
      'or captured. A snapshot belongs to a config and is shared by every instance of it: their next start boots cold ' +
      'and captures anew, while those running now run on from the memory they already map.',
  )
  .addOption(nameOption())
  .option('--snapshot', 'remove the snapshot this instance last ran from or captured too (and any set aside for it)')
  .addOption(jsonOption())
  .action(async (opts: { name: string; snapshot?: boolean; json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/reset.js')).resetCommand({ name: opts.name, home: resolveHome(), snapshot: opts.snapshot ?? false, output }));
  });

program
  .command('doctor')
  .description('Check what warmvm needs: QEMU >= 9.0, qemu-img, the accelerator, the guest build tools, a writable home')
  .addOption(jsonOption())
  .action(async (opts: { json?: boolean }) => {
    await run(opts.json, async (output, logger) => (await import('./commands/doctor.js')).doctorCommand({ home: resolveHome(), output, logger }));
  });

const snapshot = program
  .command('snapshot')
  .summary('Check the snapshots: one per config, resumed by every instance of it')
  .description('The snapshots in $WARMVM_HOME/snapshots/<config-key>/: one per config, resumed by every instance of it');
snapshot
  .command('verify')
  .summary('Checksum every file of each snapshot (or of the KEYs given): exit 0 all are whole, 1 one is damaged or missing')
  .description(
    'Checksum in full every file of each snapshot in the store, or of the KEYs given ("warmvm list" shows them); a start ' +
      'checks in full only the files whose size or times changed since they were last checked. Exit 0: every one is whole ' +
      '(or the store is empty). Exit 1: one is damaged or missing, with the fix: a start of its config then checks it, sets ' +
      'it aside and captures anew.',
  )
  .argument('[keys...]', 'snapshot keys (default: every snapshot)')
  .addOption(jsonOption())
  .action(async (keys: string[], opts: { json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/snapshot.js')).snapshotVerifyCommand({ keys, home: resolveHome(), output }));
  });

const guest = program.command('guest').description('The guests warmvm builds itself: the embedded demo guest and the Debian profile');
guest
  .command('build')
  .description(
    'Build a guest into $WARMVM_HOME/images/, unless one with the same inputs is there:\n' +
      '  demo    a Debian 12 kernel + a small initramfs from Debian packages (about 10 s)\n' +
      '  debian  Debian 12 from debootstrap (systemd, cloud-init, qemu-guest-agent, docker.io) as a qcow2,\n' +
      '          provisioned by a first boot through cloud-init: the workload runs in a container\n' +
      '          (a few minutes under TCG; needs root for debootstrap). Use it with a config\n' +
      '          {"image": {"profile": "debian"}}.',
  )
  .addOption(new Option('--profile <name>', 'which guest').choices(['demo', 'debian']).default('demo'))
  .option('--force', 'rebuild even when a build with the same inputs exists')
  .addOption(jsonOption())
  .action(async (opts: { profile: 'demo' | 'debian'; force?: boolean; json?: boolean }) => {
    await run(opts.json, async (output, logger) =>
      (await import('./commands/guest.js')).guestBuildCommand({ home: resolveHome(), profile: opts.profile, force: opts.force ?? false, output, logger }),
    );
  });

const trace = program.command('trace').description("Read a run's trace.jsonl: one line per state entered, by every machine");
trace
  .command('show')
  .description('Print a trace as a timeline: time, state (indented by machine), the state left and its time, the event')
  .argument('[file]', "a trace.jsonl (default: the instance's, $WARMVM_HOME/instances/<name>/trace.jsonl)")
  .addOption(nameOption())
  .addOption(jsonOption())
  .action(async (file: string | undefined, opts: { name: string; json?: boolean }, command: Command) => {
    const nameGiven = command.getOptionValueSource('name') === 'cli';
    await run(opts.json, async (output) => (await import('./commands/trace.js')).traceShowCommand({ file, name: opts.name, nameGiven, home: resolveHome(), output }));
  });
trace
  .command('check')
  .summary('Check a trace against an expected one: exit 0 it matches, 1 it does not, 2 it could not be checked')
  .description(
    'Check a trace against an expected one. Exit 0: it matches (one line on stdout). Exit 1: it does not ' +
      '(a diff on stdout). Exit 2: it could not be checked (a bad EXPECTED.json, a missing or damaged trace, ' +
      'bad usage), with the error on stderr.',
  )
  .argument('<expected>', 'the expected trace, a JSON file')
  .argument('[actual]', "a trace.jsonl (default: the instance's, $WARMVM_HOME/instances/<name>/trace.jsonl)")
  .addOption(nameOption())
  .addOption(jsonOption())
  .addHelpText(
    'after',
    [
      '',
      'EXPECTED.json:',
      '  {"description": "a resume that never fell back",',
      '   "states": ["start.preflight", "...", "start.resume", "resume.*",',
      '              {"state": "resume.rotating", "maxMs": 5000}, "...", "start.running"],',
      '   "absent": ["coldBoot.*"], "maxTotalMs": 20000}',
      '',
      '  states      every entry that has a state, in order, anchored at both ends:',
      '              "machine.state" matches one entry in that state; "prefix.*" one or more',
      '              consecutive entries under prefix; "..." zero or more entries of anything;',
      '              {"state", "maxMs"?, "optional"?} bounds the time spent in the matched',
      '              state(s), or lets the item match nothing',
      '  absent      patterns that no entry may match',
      "  maxTotalMs  a bound on the last entry's time",
      '',
      'See "Traces" in the README.',
    ].join('\n'),
  )
  // A usage error is "could not check" too.
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2))
  .action(async (expected: string, actual: string | undefined, opts: { name: string; json?: boolean }, command: Command) => {
    const nameGiven = command.getOptionValueSource('name') === 'cli';
    await run(opts.json, async (output) =>
      (await import('./commands/trace.js')).traceCheckCommand({ expected, file: actual, name: opts.name, nameGiven, home: resolveHome(), output }),
    );
  });

/** Runs a command: prints its error (with the fix) instead of a stack, and sets the exit code. */
async function run(json: boolean | undefined, command: (output: Output, logger: Logger) => Promise<number>): Promise<void> {
  const output = createOutput(json ?? false);
  const logger = createLogger({ pretty: process.stderr.isTTY === true && !json });
  let code: number;
  try {
    code = await command(output, logger);
  } catch (error) {
    output.error(error);
    code = (error as { code?: string }).code === 'E_ABORTED' ? 130 : 1;
  }
  logger.flush?.();
  // Sockets to a detached QEMU are closed, but be sure nothing keeps the CLI alive.
  process.exitCode = code;
  setTimeout(() => process.exit(code), 50).unref();
}

await program.parseAsync(process.argv);
