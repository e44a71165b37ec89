import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { projectRoot } from '../../adapters/support/project-root.js';

/**
 * rotate-secrets on the host's /bin/sh, with the secrets file in a temporary folder and the
 * health server replaced by a stub that records each restart: the real restart is covered by
 * health-server.test.ts.
 */

const SCRIPT = join(projectRoot(), 'docker', 'rotate-secrets');
const OLD = 'API_KEY=1111111111111111111111111111111111111111111111111111111111111111\n';
/** Distinctive values: none of them may ever appear in the script's output. */
const SECRET_A = 'deadbeefcafef00d0123456789abcdef';
const SECRET_B = 'ABCDEF0123456789feedfacefeedface';

let dir: string;
let secretsFile: string;
let restarts: string;
let stub: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmvm-rotate-'));
  secretsFile = join(dir, 'run', 'secrets.env');
  restarts = join(dir, 'restarts');
  stub = join(dir, 'health-server-stub');
  await writeFile(stub, `#!/bin/sh\necho "$1" >> '${restarts}'\nexit \${STUB_EXIT:-0}\n`);
  await chmod(stub, 0o755);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rotate(input: string, env: Record<string, string> = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const result = await execa(SCRIPT, [], {
    input,
    reject: false,
    env: { WARMVM_SECRETS_FILE: secretsFile, WARMVM_HEALTH_SERVER: stub, ...env },
  });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

async function restartCalls(): Promise<string[]> {
  const text = await readFile(restarts, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean);
}

describe('rotate-secrets', () => {
  it('stores valid lines exactly, mode 0600, and restarts the server once', async () => {
    const input = `API_KEY=${SECRET_A}\nDB_PASSWORD=${SECRET_B}\n_X9=0\n`;
    const result = await rotate(input);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(await readFile(secretsFile, 'utf8')).toBe(input);
    expect((await stat(secretsFile)).mode & 0o777).toBe(0o600);
    expect(await restartCalls()).toEqual(['restart']);
    expect(result.stdout).toContain('stored 3 secrets');
    expect(result.stdout + result.stderr).not.toContain(SECRET_A);
    // Only the secrets file is left: the temporary file was renamed, not copied.
    expect(await readdir(join(dir, 'run'))).toEqual(['secrets.env']);
  });

  it('ends a last line that has no newline, so the file hashes like the lines the host sent', async () => {
    const result = await rotate(`API_KEY=${SECRET_A}`);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(await readFile(secretsFile, 'utf8')).toBe(`API_KEY=${SECRET_A}\n`);
  });

  it('replaces earlier secrets', async () => {
    expect((await rotate(OLD)).exitCode).toBe(0);
    expect((await rotate(`API_KEY=${SECRET_B}\n`)).exitCode).toBe(0);
    expect(await readFile(secretsFile, 'utf8')).toBe(`API_KEY=${SECRET_B}\n`);
  });

  const refusals: { why: string; input: string; line: number | undefined }[] = [
    { why: 'a value that is not hex', input: `API_KEY=${SECRET_A}\nDB=${SECRET_B}xyz\n`, line: 2 },
    { why: 'a value with a space', input: `API_KEY=${SECRET_A} ${SECRET_B}\n`, line: 1 },
    { why: 'an empty value', input: `API_KEY=${SECRET_A}\nDB=\n`, line: 2 },
    { why: 'a lowercase name', input: `api_key=${SECRET_A}\n`, line: 1 },
    { why: 'a name starting with a digit', input: `1KEY=${SECRET_A}\n`, line: 1 },
    { why: 'an empty name', input: `=${SECRET_A}\n`, line: 1 },
    { why: 'a line without "="', input: `API_KEY=${SECRET_A}\n${SECRET_B}\n`, line: 2 },
    { why: 'CRLF line ends', input: `API_KEY=${SECRET_A}\r\nDB=${SECRET_B}\r\n`, line: 1 },
    { why: 'a blank line', input: `API_KEY=${SECRET_A}\n\nDB=${SECRET_B}\n`, line: 2 },
    { why: 'a name given twice', input: `API_KEY=${SECRET_A}\nAPI_KEY=${SECRET_B}\n`, line: 2 },
    { why: 'no input at all', input: '', line: undefined },
  ];
  for (const { why, input, line } of refusals) {
    it(`refuses ${why}: exit 2, the line named, no value shown, old secrets kept, no restart`, async () => {
      expect((await rotate(OLD)).exitCode).toBe(0);
      const result = await rotate(input);
      expect(result.exitCode).toBe(2);
      if (line !== undefined) expect(result.stderr).toContain(`line ${line}:`);
      expect(result.stderr).toContain('rotate-secrets:');
      for (const value of [SECRET_A, SECRET_B, SECRET_A.slice(0, 12), SECRET_B.slice(0, 12)]) {
        expect(result.stderr + result.stdout).not.toContain(value);
      }
      expect(await readFile(secretsFile, 'utf8')).toBe(OLD);
      expect(await restartCalls()).toEqual(['restart']);
      expect(await readdir(join(dir, 'run'))).toEqual(['secrets.env']);
    });
  }

  it('fails (exit 1) when the server does not restart, with the new secrets stored', async () => {
    const result = await rotate(`API_KEY=${SECRET_A}\n`, { STUB_EXIT: '3' });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('did not restart');
    expect(await readFile(secretsFile, 'utf8')).toBe(`API_KEY=${SECRET_A}\n`);
  });
});
