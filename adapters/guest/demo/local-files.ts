import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WarmvmError } from '../../support/errors.js';
import { projectRoot } from '../../support/project-root.js';

// The files of this project that go into the demo guest: its /init and the workload's scripts.

/** The guest's /init, relative to the project root. */
export const INIT_SCRIPT = 'guest/demo/init';
/** From docker/, installed in the guest's /usr/local/bin. */
export const WORKLOAD_SCRIPTS = ['health-server', 'rotate-secrets'];

/** One local file and its bytes. */
export interface LocalInput {
  /** Relative to the project root, e.g. docker/health-server. */
  source: string;
  data: Buffer;
}

/** The init script and the workload's scripts, read from the installed package. */
export async function readLocalInputs(): Promise<LocalInput[]> {
  const root = projectRoot();
  const sources = [INIT_SCRIPT, ...WORKLOAD_SCRIPTS.map((name) => `docker/${name}`)];
  return Promise.all(
    sources.map(async (source) => {
      try {
        return { source, data: await readFile(join(root, source)) };
      } catch (cause) {
        throw new WarmvmError('E_GUEST_SOURCES', `the demo guest's ${source} is missing from ${root}`, {
          hint: 'reinstall warmvm: its package must ship docker/ and guest/',
          cause,
        });
      }
    }),
  );
}

/** One hash of every local file's path and content, whatever order they were read in. */
export function digestLocalInputs(local: LocalInput[]): string {
  const hash = createHash('sha256');
  for (const input of [...local].sort((a, b) => a.source.localeCompare(b.source))) {
    hash.update(`${input.source}\0${createHash('sha256').update(input.data).digest('hex')}\n`);
  }
  return hash.digest('hex');
}

/** The bytes read of `source`. */
export function localFile(local: LocalInput[], source: string): Buffer {
  const found = local.find((input) => input.source === source);
  if (!found) throw new Error(`demo guest: ${source} was not read`);
  return found.data;
}
