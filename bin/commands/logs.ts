import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { instancePaths } from '../../adapters/instance/paths.js';
import { WarmvmError } from '../../adapters/support/errors.js';
import { fileExists } from '../../adapters/support/file-exists.js';
import { followFile } from '../../adapters/support/file-follow.js';
import { instanceStatus } from '../../adapters/vm/control.js';
import { onInterrupt } from '../interrupt.js';
import type { Output } from '../output.js';

export interface LogsOptions {
  name: string;
  home: string;
  follow: boolean;
  /** QEMU's own stderr log instead of the guest's serial console. */
  qemu: boolean;
  output: Output;
}

/** `warmvm logs`: the guest's serial console (or QEMU's log) as the instance folder keeps it; with `follow`, until Ctrl-C. */
export async function logsCommand(options: LogsOptions): Promise<number> {
  const paths = instancePaths(options.home, options.name);
  if (!(await fileExists(paths.dir))) {
    throw new WarmvmError('E_NO_INSTANCE', `there is no instance "${paths.name}"`, {
      hint: `"warmvm list" shows the instances; "warmvm start --name ${paths.name}" starts one of that name`,
    });
  }
  const file = options.qemu ? paths.qemuLog : paths.serialLog;
  const what = options.qemu ? "QEMU's log" : "the guest's console";
  const present = await fileExists(file);
  const status = await instanceStatus(paths, { health: false });
  // A reader in a pipe (`| head`) may leave early: that ends the command, it is not a failure.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
  });
  if (status.state !== 'running') {
    options.output.progress.line(
      present
        ? `warmvm: instance "${paths.name}" is not running: this is ${what} of its last run (${file})`
        : `warmvm: instance "${paths.name}" is not running${options.follow ? `; waiting for ${basename(file)} of its next start` : ''}`,
    );
  }
  if (!options.follow) {
    if (!present) {
      throw new WarmvmError('E_LOG_MISSING', `instance "${paths.name}" has no ${basename(file)} yet (${file})`, {
        hint: `it is written from the first launch on: "warmvm start --name ${paths.name}"`,
      });
    }
    await pipeline(createReadStream(file), process.stdout, { end: false });
    return 0;
  }
  const stop = new AbortController();
  const stopListening = onInterrupt(
    () => stop.abort(),
    async () => undefined,
  );
  try {
    await followFile(file, {
      signal: stop.signal,
      onData: (chunk) => process.stdout.write(chunk),
      onRestart: (how) =>
        options.output.progress.line(
          how === 'truncated'
            ? `warmvm: --- ${basename(file)} was written anew (the instance started again) ---`
            : `warmvm: --- ${basename(file)} was replaced: following the new one ---`,
        ),
    });
  } finally {
    stopListening();
  }
  // Ctrl-C is how a follow ends.
  return 0;
}
