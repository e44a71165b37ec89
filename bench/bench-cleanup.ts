/** What every bench does on its way out, also on failure or Ctrl-C: nothing it started may outlive it. */
import { readdir, readFile } from 'node:fs/promises';
import { progress } from './progress.js';

export interface Qemu {
  pid: number;
  /** The start of its command line, to say which one it was. */
  cmdline: string;
}

/** The QEMUs whose command line names one of `homes`. */
export async function qemusUnderHomes(homes: readonly string[]): Promise<Qemu[]> {
  const found: Qemu[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const args = cmdline.split('\0');
    if (!/qemu-system/.test(args[0] ?? '')) continue;
    if (homes.some((home) => cmdline.includes(`${home}/`))) found.push({ pid: Number(entry), cmdline: args.join(' ').slice(0, 160) });
  }
  return found;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Ends, by pid, any QEMU still under `homes` once its instances were stopped (a start or suspend cut
 * short can leave one that `warmvm stop` no longer knows): SIGTERM, up to 5 s, then SIGKILL.
 * `announce` reports each before it is signalled.
 */
export async function endQemusUnder(homes: readonly string[], announce: (qemu: Qemu) => void): Promise<void> {
  const left = await qemusUnderHomes(homes);
  for (const qemu of left) {
    announce(qemu);
    process.kill(qemu.pid, 'SIGTERM');
  }
  for (let i = 0; i < 50 && left.some((qemu) => alive(qemu.pid)); i += 1) await new Promise((done) => setTimeout(done, 100));
  for (const qemu of left) if (alive(qemu.pid)) process.kill(qemu.pid, 'SIGKILL');
}

/**
 * Makes `work` the run's clean-up: run once however often it is called (the end of the run and a
 * signal may both ask), and on SIGINT or SIGTERM too, after which the process exits 130.
 */
export function cleanUpOnce(work: () => Promise<void>): () => Promise<void> {
  let cleaning: Promise<void> | undefined;
  const cleanUp = async (): Promise<void> => {
    cleaning ??= work();
    await cleaning;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      progress(`${signal}: stopping what the bench started`);
      void cleanUp().finally(() => process.exit(130));
    });
  }
  return cleanUp;
}
