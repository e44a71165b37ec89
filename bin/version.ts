import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../adapters/support/project-root.js';

/** warmvm's version, from its package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}
