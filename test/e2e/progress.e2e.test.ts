import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli, E2E_HOME } from '../helpers/cli.js';

// Progress as a person sees it: the CLI run in a real pseudo-terminal (script(1)), sized as a
// terminal window is, and the same command on a pipe, with --quiet and with --json.
const name = 'progress';
let dir: string;

/** The command's bytes as a terminal received them, escape sequences and all. */
async function onTerminal(args: string[], env: Record<string, string> = {}): Promise<{ exitCode: number | undefined; screen: string }> {
  const command = ['stty cols 120 rows 40;', 'exec', 'node', CLI, ...args].map((word) => (word.endsWith(';') ? word : `'${word}'`)).join(' ');
  // The environment is given whole: CI=true (set by .ci/run) would turn the bars into lines.
  const result = await execa('script', ['-q', '-e', '-c', command, '/dev/null'], {
    reject: false,
    extendEnv: false,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', TERM: 'xterm-256color', WARMVM_HOME: E2E_HOME, ...env },
    stdin: 'ignore',
    timeout: 120_000,
  });
  return { exitCode: result.exitCode, screen: String(result.stdout) };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: an escape sequence is what is looked for
const COLOUR = /\x1b\[3\dm/;

describe('progress suits where it runs', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warmvm-progress-'));
    const started = await cli(['start', '--name', name, '--json']);
    expect(started.exitCode, started.stderr).toBe(0);
    const stopped = await cli(['stop', '--name', name]);
    expect(stopped.exitCode, stopped.stderr).toBe(0);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('on a terminal: one redrawn bar per step, left as one line with a tick', async () => {
    const file = join(dir, 'terminal.tar');
    const { exitCode, screen } = await onTerminal(['snapshot', 'export', file, '--name', name]);
    expect(exitCode, screen).toBe(0);
    expect(screen).toContain('\x1b[?25l'); // the cursor hidden while a spinner draws
    expect(screen).toMatch(COLOUR);
    expect(screen).toContain(`✓ writing ${file} [####################] `);
    // Redrawn in place: the bar's line is written over, not repeated down the screen.
    const ticks = screen.split('\n').filter((line) => line.includes(`writing ${file} [`));
    expect(ticks).toHaveLength(1);
    expect(screen).toContain(`exported snapshot`);
  });

  it('on a terminal with NO_COLOR: the same bars, no colour', async () => {
    const file = join(dir, 'no-color.tar');
    const { exitCode, screen } = await onTerminal(['snapshot', 'export', file, '--name', name], { NO_COLOR: '1' });
    expect(exitCode, screen).toBe(0);
    expect(screen).toContain(`✓ writing ${file} [`);
    expect(screen).not.toMatch(COLOUR);
  });

  it('on a pipe: a few plain lines, no escape sequences', async () => {
    const file = join(dir, 'pipe.tar');
    const result = await cli(['snapshot', 'export', file, '--name', name]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).not.toContain('\x1b');
    expect(result.stderr).not.toContain('\r');
    expect(result.stderr).toMatch(new RegExp(`writing ${file}: 100% of [0-9.]+ MB`));
    expect(result.stderr.split('\n').length).toBeLessThan(30);
  });

  it('with --quiet: no progress at all, the result still printed; with --json on a pipe: only the JSON', async () => {
    const quiet = await cli(['--quiet', 'snapshot', 'export', join(dir, 'quiet.tar'), '--name', name]);
    expect(quiet.exitCode, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
    expect(quiet.stdout).toContain('exported snapshot');
    const after = await cli(['snapshot', 'export', join(dir, 'quiet-after.tar'), '--name', name, '--quiet']);
    expect(after.exitCode, after.stderr).toBe(0);
    expect(after.stderr).toBe('');
    const json = await cli(['snapshot', 'export', join(dir, 'json.tar'), '--name', name, '--json']);
    expect(json.exitCode, json.stderr).toBe(0);
    expect(json.stderr).toBe('');
    expect(json.json.ok).toBe(true);
  });
});
