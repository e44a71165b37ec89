import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../adapters/support/project-root.js';
import { useTempDirs } from '../helpers/temp.js';

// Each bench, built (npm test builds first), given --help: what it measures and how to run it, and nothing run.
const run = promisify(execFile);
const temp = useTempDirs();
const benchDir = join(projectRoot(), 'bench');

async function entryBenches(): Promise<string[]> {
  const names = (await readdir(benchDir)).filter((name) => name.endsWith('.ts'));
  const entries: string[] = [];
  for (const name of names) if ((await readFile(join(benchDir, name), 'utf8')).includes('helpIfAsked(import.meta.url);')) entries.push(name.replace(/\.ts$/, ''));
  return entries.sort();
}

describe('a bench given --help', () => {
  it('prints its opening comment and exits 0 without starting anything', async () => {
    const benches = await entryBenches();
    expect(benches).toEqual(expect.arrayContaining(['soak', 'transfer', 'rotation', 'lazy-restore']));
    const home = await temp();
    for (const bench of benches) {
      const source = await readFile(join(benchDir, `${bench}.ts`), 'utf8');
      const firstLine = (/^\/\*\*\n \* (.*)$/m.exec(source)?.[1] ?? '').trim();
      const { stdout } = await run(process.execPath, [join(projectRoot(), 'dist', 'bench', `${bench}.js`), '--help'], {
        env: { ...process.env, WARMVM_HOME: home },
        timeout: 20_000,
      });
      expect(stdout.split('\n')[0], bench).toBe(firstLine);
      expect(stdout, bench).toContain(`node dist/bench/${bench}.js`);
    }
    // Nothing ran: the home it was given is as empty as it was made.
    expect(await readdir(home)).toEqual([]);
  }, 120_000);
});
