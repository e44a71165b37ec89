import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** The folder holding warmvm's package.json, from sources (vitest) or from dist/ alike. */
export function projectRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'docker'))) return (cached = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error('warmvm: cannot find the package root above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}
