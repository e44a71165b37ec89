import { Command, Option } from 'commander';
import type { Logger } from '../adapters/support/logger.js';
import { resolveHome } from '../adapters/instance/paths.js';
import { keepNewFilesPrivate } from '../adapters/support/umask.js';
import { joinProseLines } from './help-layout.js';
import { createOutput, type Output } from './output.js';
import { colorWanted } from './progress.js';
import { packageVersion } from './version.js';

const program = new Command();
// Before any command is added: subcommands copy the help settings when they are created.
program.configureHelp({ commandDescription: (command) => joinProseLines(command.description()) });

program
  .name('warmvm')
  .description(
    'Bring a QEMU virtual machine from a disk image to healthy as fast as the hardware allows.\n' +
      'State lives under $WARMVM_HOME (default ~/.warmvm): images/, snapshots/, instances/<name>/.',
  )
  .version(packageVersion())
  .option('-q, --quiet', 'no progress on stderr (bars, spinners, lines); results and errors still print')
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
      'the embedded demo guest is used.\n\n' +
      'With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, the run is sent as\n' +
      'OpenTelemetry spans over OTLP/HTTP once it is over (at most 2 s; a failed send is a warning):\n' +
      '  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 warmvm start --name web',
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
  .summary('Serve the inspector page on a recorded trace, or on two compared side by side; until Ctrl-C')
  .description(
    'Serve the inspector page on a recorded trace (a run that is over, a CI artifact), with a slider to step\n' +
      'through it. Given two traces A and B, the page compares them instead: the machines lit by both runs (what\n' +
      "only A took, only B, both), each run's path, where B was slower and faster, and every state's time in A\n" +
      'and in B on one time axis (the rows of `warmvm trace diff A B`). Serves on 127.0.0.1 under a token (the URL\n' +
      'on stderr) until Ctrl-C.',
  )
  .argument('[file]', "a trace.jsonl (default: the instance's, $WARMVM_HOME/instances/<name>/trace.jsonl)")
  .argument('[other]', 'a second trace.jsonl: compare FILE (A) with it (B)')
  .addOption(nameOption())
  .option('-p, --port <port>', 'the port on 127.0.0.1 (default: any free one)', '0')
  .addOption(jsonOption())
  .addHelpText(
    'after',
    ['', 'Examples:', '  warmvm inspect --name ci', '  warmvm inspect ~/.warmvm/instances/ci/traces/<yesterday>.jsonl ~/.warmvm/instances/ci/trace.jsonl'].join('\n'),
  )
  .action(async (file: string | undefined, other: string | undefined, opts: { name: string; port: string; json?: boolean }) => {
    await run(opts.json, async (output) =>
      (await import('./commands/inspect.js')).inspectCommand({ file, other, name: opts.name, home: resolveHome(), port: Number(opts.port), output }),
    );
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
  .command('exec')
  .summary("Run a command in a running instance's guest through the guest agent; its output as it comes, its exit status warmvm's")
  .description(
    "Run a command in a running instance's guest through the QEMU guest agent. Its stdout and stderr are passed on while it " +
      "runs (read from files in the guest's /tmp, a fraction of a second behind), and its exit status is warmvm's (a command " +
      'killed by a signal: 128 + the signal, as shells do). When stdin is not a terminal it is read to its end (at most 8 MiB) ' +
      'and given to the command; from a terminal nothing is read. Ctrl-C stops the command (SIGTERM to its process group, ' +
      'SIGKILL 5 s later) and exits 130. Put the command after "--". Exit statuses of warmvm itself: 124 --timeout passed, ' +
      '125 warmvm could not run it (no such instance, not running, no agent, agent busy or not answering), 127 not found.',
  )
  .argument('<command...>', "the program (on the guest agent's PATH, or an absolute path) and its arguments")
  .addOption(nameOption())
  .option('-t, --timeout <seconds>', 'stop the command (SIGTERM, then SIGKILL) after this long and exit 124 (default: no bound)')
  .option('--no-stdin', 'do not read stdin even when it is not a terminal')
  .addOption(jsonOption())
  .addHelpText(
    'after',
    [
      '',
      'Examples:',
      '  warmvm exec -- uname -a',
      "  warmvm exec --name web -- sh -c 'echo building; sleep 2; echo done'",
      '  echo hello | warmvm exec -- cat            # stdin forwarded',
      '  warmvm exec --json -- cat /etc/hostname    # {"exitCode":0,"stdout":"warmvm-demo\\n","stderr":""}',
    ].join('\n'),
  )
  .action(async (command: string[], opts: { name: string; timeout?: string; stdin: boolean; json?: boolean }) => {
    await run(opts.json, async (output) => {
      const { execCommand } = await import('./commands/exec.js');
      return execCommand({ name: opts.name, home: resolveHome(), command, timeout: opts.timeout, stdin: opts.stdin, output });
    });
  });

program
  .command('logs')
  .description(
    "Print the guest's serial console as the instance folder keeps it (instances/<name>/serial.log), or with --qemu QEMU's " +
      'own log (qemu.log: its stderr, one header line per launch). A stopped instance shows its last run, with a note on ' +
      'stderr. -f follows until Ctrl-C (exit 0), across restarts: each launch writes serial.log anew, which -f notes on ' +
      'stderr before printing the new console from its start; a removed file (a reset) is waited for.',
  )
  .addOption(nameOption())
  .option('-f, --follow', 'keep printing what is added, until Ctrl-C')
  .option('--qemu', "QEMU's log instead of the guest's console")
  .addHelpText(
    'after',
    [
      '',
      'Examples:',
      '  warmvm logs --name web             # the console so far',
      '  warmvm logs -f                     # and what comes, until Ctrl-C',
      "  warmvm exec -- sh -c 'echo hello >/dev/console'   # a line for logs -f to see",
      '  warmvm logs --qemu                 # why did QEMU exit?',
    ].join('\n'),
  )
  .action(async (opts: { name: string; follow?: boolean; qemu?: boolean }) => {
    await run(false, async (output) =>
      (await import('./commands/logs.js')).logsCommand({ name: opts.name, home: resolveHome(), follow: opts.follow ?? false, qemu: opts.qemu ?? false, output }),
    );
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
  .option(
    '--suspend',
    'keep the instance exactly where it is: its RAM and devices are written out, its disk overlay and secrets kept, and the next ' +
      '"warmvm start --name N" wakes it instead of resuming the snapshot, with the same secrets (nothing rotated). A changed config ' +
      'sets the suspended state aside with the reason; "warmvm reset" drops it; "start --cold" leaves it for a later start',
  )
  .addOption(jsonOption())
  .action(async (opts: { name: string; suspend?: boolean; json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/stop.js')).stopCommand({ name: opts.name, home: resolveHome(), suspend: opts.suspend ?? false, output }));
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

const config = program.command('config').description('The config file (--config FILE): its JSON Schema, and a check of a file against it');
config
  .command('schema')
  .description(
    'Print the JSON Schema (draft 2020-12) of the config file on stdout: what config.schema.json in the package holds. ' +
      'An editor that reads it checks and completes a config as you type, with each field explained.',
  )
  .addHelpText('after', '\nExample:\n  warmvm config schema > warmvm.schema.json   # then "$schema": "./warmvm.schema.json" in warmvm.json')
  .action(async () => {
    await run(false, async (output) => (await import('./commands/config.js')).configSchemaCommand({ output }));
  });
config
  .command('check')
  .description(
    'Check a config file as "warmvm start" reads it, and print the spec it resolves to (the defaults of its image applied, ' +
      'paths made absolute), or every field that is wrong with the fix. Exit 0: valid; 1: not. Nothing is started.',
  )
  .requiredOption('-c, --config <file>', 'the config file')
  .addOption(jsonOption())
  .addHelpText('after', '\nExample:\n  warmvm config check --config warmvm.json --json   # {"ok":true,"file":"warmvm.json","spec":{...}}')
  .action(async (opts: { config: string; json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/config.js')).configCheckCommand({ file: opts.config, output }));
  });

const snapshot = program
  .command('snapshot')
  .summary('The snapshots: list, check, remove, and move them between hosts (push, pull, export, import)')
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
snapshot
  .command('seal')
  .summary("Record the checksum of a snapshot's memory file, if not yet recorded (each capture starts this itself, in the background)")
  .description(
    "A capture publishes its snapshot once the memory file is flushed, and records that file's checksum just after, " +
      "in a process of its own (the log: seal.log in the capturing instance's folder): this is that process. Until then " +
      'a start trusts the file only as the capture stamped it (size, times, inode); one changed before the checksum was ' +
      'recorded is damaged. "snapshot verify" and "snapshot export" record a missing checksum themselves. Exit 0: recorded ' +
      '(now or before), or another process is recording it. Exit 1: the snapshot is missing, or changed since the capture.',
  )
  .argument('<key>', 'snapshot key ("warmvm list" shows them)')
  .addOption(jsonOption())
  .action(async (key: string, opts: { json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/snapshot.js')).snapshotSealCommand({ key, home: resolveHome(), output }));
  });
snapshot
  .command('ls')
  .summary('List the snapshots: who captured each, when, its size, QEMU and machine, the running instances that use it')
  .description(
    'List every snapshot in the store, one row each: its key, the instance that captured it, when, what it takes on the disk, ' +
      'its RAM, the QEMU version, machine type, accelerator and CPU model it was captured with, and the running instances ' +
      'that map its memory. Under each row: the versions of it set aside (a snapshot that could not be resumed, moved to ' +
      '<key>.set-aside-<time>/), each with the first line of its reason, and a capture in progress. With --all, also the ' +
      'keys that have only set-aside versions. --json: an array of objects, one per row, every field present (null when unknown).',
  )
  .option('--all', 'also list the keys that have no current snapshot, only set-aside versions')
  .addOption(jsonOption())
  .action(async (opts: { all?: boolean; json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/snapshot-store.js')).snapshotLsCommand({ all: opts.all ?? false, home: resolveHome(), output }));
  });
snapshot
  .command('rm')
  .summary('Remove snapshots (and their set-aside versions) by key; refused while a running instance uses one, unless --force')
  .description(
    'Remove each snapshot KEY ("warmvm snapshot ls" lists them; a key is the name of a folder in the store, never a path) ' +
      'with its set-aside versions. Refused, with exit 1 and nothing removed, when a KEY is unknown, when a running instance ' +
      'uses one ("warmvm stop --name N" first, or --force), or when a capture of one is in progress (its capture lock is held ' +
      'by a live process). Any next start of its config cold-boots and captures anew. With --force, the running clones run ' +
      'on with their memory (unlinking a mapped file leaves it whole; its disk space is freed when they stop).',
  )
  .argument('<keys...>', 'snapshot keys')
  .option('--force', 'remove a snapshot that running instances use (they run on; their next start cold-boots)')
  .addOption(jsonOption())
  .action(async (keys: string[], opts: { force?: boolean; json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/snapshot-store.js')).snapshotRmCommand({ keys, force: opts.force ?? false, home: resolveHome(), output }));
  });
snapshot
  .command('prune')
  .summary('Remove the old snapshots of each instance (keeping the newest N), every set-aside version and dead leftovers')
  .description(
    'Remove what the store no longer needs. One snapshot per config exists at a time, but a changed config is another key, ' +
      "so the old config's snapshot stays behind. Prune groups the snapshots by the instance that captured them (the manifest's " +
      'capturedBy, as "warmvm snapshot ls" shows it), keeps the newest N of each group by creation time (default 1) and removes ' +
      'the others; it also removes every set-aside version and every folder a dead warmvm left (a capture never committed, the ' +
      'old snapshot of a replacement). It never removes a snapshot that a running instance uses (listed as kept, with why), ' +
      'nor anything of a config whose capture lock a live process holds (a capture in progress), nor a snapshot whose ' +
      'manifest cannot be read ("warmvm snapshot rm KEY" removes that). It empties the transfer cache ($WARMVM_HOME/blobs/) too, ' +
      'but for blobs a pull is downloading now, unless --keep-blobs. Clones of one config share the snapshot their first ' +
      "instance captured: it is in that instance's group. Prints what was removed and kept, and the bytes freed.",
  )
  .option('--keep <n>', 'how many of the newest snapshots of each capturing instance to keep (0: every one no running instance uses goes)', '1')
  .option('--dry-run', 'print what would be removed, and remove nothing')
  .option('--keep-blobs', 'keep the transfer cache ($WARMVM_HOME/blobs/: compressed copies of what was pushed, pulled, exported or imported)')
  .addOption(jsonOption())
  .action(async (opts: { keep: string; dryRun?: boolean; keepBlobs?: boolean; json?: boolean }) => {
    await run(opts.json, async (output) => {
      const { parseKeep, snapshotPruneCommand } = await import('./commands/snapshot-store.js');
      return snapshotPruneCommand({ keep: parseKeep(opts.keep), dryRun: opts.dryRun ?? false, keepBlobs: opts.keepBlobs ?? false, home: resolveHome(), output });
    });
  });

const refHelp = 'REF is HOST[:PORT]/REPO[:TAG|@sha256:DIGEST] (default tag latest); HTTPS, or plain HTTP for a registry on a loopback address';
const keyHelp = 'which snapshot (default: the one instance --name last ran from, or the only one in the store)';
snapshot
  .command('push')
  .summary('Send a snapshot, and the guest image it boots, to an OCI registry; blobs the registry has are not sent again')
  .description(
    'Send a snapshot to an OCI registry as an OCI artifact: its manifest as the config blob, each file (memory, device state, ' +
      'frozen disk, the guest image warmvm built) a zstd layer. The snapshot is checked first; a file packed before is not ' +
      "compressed again; blobs the registry already has are not sent; uploads go in chunks. Credentials come from Docker's " +
      'config.json ($DOCKER_CONFIG, else ~/.docker/config.json). ' +
      refHelp +
      '.',
  )
  .argument('<ref>', 'where to push')
  .argument('[key]', keyHelp)
  .addOption(nameOption())
  .addOption(jsonOption())
  .action(async (ref: string, key: string | undefined, opts: { name: string; json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/snapshot-transfer.js')).snapshotPushCommand({ ref, key, name: opts.name, home: resolveHome(), output }));
  });
snapshot
  .command('pull')
  .summary('Fetch a snapshot from an OCI registry into the store; refused before any large blob when this host cannot resume it')
  .description(
    'Fetch a snapshot pushed by "warmvm snapshot push": the manifest and the small config first, refused with the reason when ' +
      'this host has another QEMU version, machine type or accelerator; then every blob, verified by its sha256 (a pull cut off ' +
      "continues where it stopped); then the guest image is installed where missing, the frozen disk pointed at this home's " +
      'image, every file checksummed against the manifest, and the snapshot published in one rename. The next start of its ' +
      'config resumes it. ' +
      refHelp +
      '.',
  )
  .argument('<ref>', 'what to pull')
  .addOption(jsonOption())
  .action(async (ref: string, opts: { json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/snapshot-transfer.js')).snapshotPullCommand({ ref, home: resolveHome(), output }));
  });
snapshot
  .command('export')
  .summary('Write a snapshot, and the guest image it boots, to FILE as an OCI image layout tar')
  .description(
    'Write a snapshot to FILE as an OCI image layout in a tar (oci-layout, index.json, blobs/sha256/...): the same artifact ' +
      '"snapshot push" sends, so any OCI tool can copy it to a registry. Written beside FILE, then renamed.',
  )
  .argument('<file>', 'the tar to write')
  .argument('[key]', keyHelp)
  .addOption(nameOption())
  .option('--tag <tag>', "the tag recorded in the layout's index.json", 'latest')
  .addOption(jsonOption())
  .action(async (file: string, key: string | undefined, opts: { name: string; tag: string; json?: boolean }) => {
    await run(opts.json, async (output) =>
      (await import('./commands/snapshot-transfer.js')).snapshotExportCommand({ file, key, name: opts.name, tag: opts.tag, home: resolveHome(), output }),
    );
  });
snapshot
  .command('import')
  .summary('Read a snapshot exported by "snapshot export" into the store')
  .description(
    'Read an OCI image layout tar written by "warmvm snapshot export" (or copied from a registry by an OCI tool) into the ' +
      'store, checked as "snapshot pull" checks what it fetches.',
  )
  .argument('<file>', 'the tar to read')
  .addOption(jsonOption())
  .action(async (file: string, opts: { json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/snapshot-transfer.js')).snapshotImportCommand({ file, home: resolveHome(), output }));
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
  .description(
    'Print a trace as a timeline: time, state (indented by machine), the state left and its time, the event.\n' +
      'With --waterfall: one bar per state on a time axis as wide as the terminal, "!" on a state a failure left\n' +
      '(what left it under it), "┤" where a bound passed, each state\'s seconds, the total and the path the run took.',
  )
  .argument('[file]', "a trace.jsonl (default: the instance's, $WARMVM_HOME/instances/<name>/trace.jsonl)")
  .addOption(nameOption())
  .option('--waterfall', 'draw each state as a bar on a time axis')
  .option('--width <columns>', "the waterfall's width (default: the terminal's, 100 on a pipe)")
  .addOption(jsonOption())
  .addHelpText(
    'after',
    [
      '',
      'Examples:',
      "  warmvm trace show --waterfall                 the default instance's last run",
      '  warmvm trace show --waterfall --width 120 instances/ci/traces/<time>.jsonl',
      '  warmvm trace show --waterfall --json          the rows: state, depth, startMs, endMs, ms, failed, …',
    ].join('\n'),
  )
  .action(async (file: string | undefined, opts: { name: string; waterfall?: boolean; width?: string; json?: boolean }, command: Command) => {
    const nameGiven = command.getOptionValueSource('name') === 'cli';
    // A pipe, or a terminal nobody sized, has no width of its own.
    const terminal = process.stdout.isTTY && process.stdout.columns > 0 ? process.stdout.columns : undefined;
    await run(opts.json, async (output) => {
      const commands = await import('./commands/trace.js');
      const layout = commands.showLayout(opts.waterfall === true, opts.width, terminal);
      return commands.traceShowCommand({ file, name: opts.name, nameGiven, home: resolveHome(), layout, output });
    });
  });
trace
  .command('diff')
  .summary('Compare two runs state by state: the time of each in A and B, what only one took, where B was slower')
  .description(
    'Compare two runs state by state: each state (matched by path, and by occurrence when a run entered it more\n' +
      'than once) with its time in A and in B, B less A and B over A, the states only one run entered, the path\n' +
      'each run took, and the states that made B slower or faster than A, the biggest difference first.\n' +
      'A report, not a check: exit 0 when both traces were read, 2 when one could not be (the error on stderr).',
  )
  .argument('<a>', 'a trace.jsonl (e.g. $WARMVM_HOME/instances/<name>/traces/<time>.jsonl)')
  .argument('<b>', 'another trace.jsonl')
  .addOption(jsonOption())
  .addHelpText('after', ['', 'Example:', '  warmvm trace diff ~/.warmvm/instances/ci/traces/<yesterday>.jsonl ~/.warmvm/instances/ci/trace.jsonl'].join('\n'))
  // A usage error is "could not read" too.
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2))
  .action(async (a: string, b: string, opts: { json?: boolean }) => {
    await run(opts.json, async (output) => (await import('./commands/trace.js')).traceDiffCommand({ a, b, output }));
  });
trace
  .command('export')
  .description('Write a trace as OpenTelemetry spans: an OTLP JSON file (ExportTraceServiceRequest), one span per state entered')
  .argument('[file]', "a trace.jsonl (default: the instance's, $WARMVM_HOME/instances/<name>/trace.jsonl)")
  .requiredOption('--otlp <out>', 'the OTLP JSON file to write (replaced whole, never half-written)')
  .addOption(nameOption())
  .addOption(jsonOption())
  .addHelpText(
    'after',
    [
      '',
      'Example:',
      '  warmvm trace export --otlp web.otlp.json --name web',
      "  # then: an OpenTelemetry Collector's otlpjson file receiver, or any OTLP JSON reader",
      '',
      "Each state is a span (a child machine's states under the state that invoked it), under one",
      'span for the run; the event that ended a state and the QMP/QGA/health exchanges are span',
      'events; a failed state has status ERROR. `warmvm start` sends the same spans itself when',
      'OTEL_EXPORTER_OTLP_ENDPOINT is set. See "OpenTelemetry" in the README.',
    ].join('\n'),
  )
  .action(async (file: string | undefined, opts: { otlp: string; name: string; json?: boolean }, command: Command) => {
    const nameGiven = command.getOptionValueSource('name') === 'cli';
    await run(opts.json, async (output) =>
      (await import('./commands/trace.js')).traceExportCommand({ file, otlp: opts.otlp, name: opts.name, nameGiven, home: resolveHome(), output }),
    );
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
  const quiet = program.opts<{ quiet?: boolean }>().quiet ?? false;
  const output = await createOutput({ json: json ?? false, quiet });
  const { createLogger, prettyStderr } = await import('../adapters/support/logger.js');
  let logger: Logger | undefined;
  let code: number;
  try {
    // pino and pino-pretty load with the first line written: most runs write none.
    logger = createLogger(
      process.stderr.isTTY === true && !json
        ? { destination: () => prettyStderr({ colorize: colorWanted(), writeLine: quiet ? undefined : (line) => output.progress.line(line) }) }
        : {},
    );
    code = await command(output, logger);
  } catch (error) {
    output.error(error);
    code = (error as { code?: string }).code === 'E_ABORTED' ? 130 : 1;
  }
  logger?.flush?.();
  // Sockets to a detached QEMU are closed, but be sure nothing keeps the CLI alive.
  process.exitCode = code;
  setTimeout(() => process.exit(code), 50).unref();
}

/** Parses the command line and runs the command it names. */
export async function main(argv: string[]): Promise<void> {
  keepNewFilesPrivate();
  await program.parseAsync(argv);
}
