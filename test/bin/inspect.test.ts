import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../adapters/support/project-root.js';
import { cli } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/temp.js';

// The built CLI as a real process; the page itself is checked in a browser by the inspector e2e test.
const temp = useTempDirs();
const runs = join(projectRoot(), 'test', 'traces', 'runs');

describe('warmvm inspect A B', () => {
  it("refuses to compare a start's trace with a stop's, naming both, before serving anything", async () => {
    const result = await cli(['inspect', join(runs, 'resume.jsonl'), join(runs, 'stop.jsonl')], { WARMVM_HOME: await temp() });
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain(`${join(runs, 'resume.jsonl')} is a start's trace and ${join(runs, 'stop.jsonl')} a stop's`);
    expect(result.stderr).toContain('give two traces of `warmvm start`');
    expect(result.stderr).not.toContain('inspector at');
  });

  it('says what it compares in --help', async () => {
    const result = await cli(['inspect', '--help']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('[other]');
    expect(result.stdout).toContain('compare FILE (A) with it (B)');
  });
});
