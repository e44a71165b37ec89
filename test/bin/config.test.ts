import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../adapters/support/project-root.js';
import { cli } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/temp.js';

// The built CLI as a real process (npm test builds first), on a temp home: nothing is started.
const temp = useTempDirs();

describe('warmvm config schema', () => {
  it('prints the JSON Schema the package ships, byte for byte', async () => {
    const result = await cli(['config', 'schema'], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(0);
    // execa drops the last newline.
    expect(`${result.stdout}\n`).toBe(await readFile(join(projectRoot(), 'config.schema.json'), 'utf8'));
    expect(JSON.parse(result.stdout)).toMatchObject({ $schema: 'https://json-schema.org/draft/2020-12/schema', title: 'warmvm config' });
  });
});

describe('warmvm config check', () => {
  it('prints the spec a valid config resolves to: defaults applied, paths absolute, unset fields null', async () => {
    const dir = await temp();
    const file = join(dir, 'warmvm.json');
    await writeFile(file, JSON.stringify({ $schema: './node_modules/warmvm/config.schema.json', image: { disk: 'disk.qcow2' }, ports: [{ guest: 80 }], health: [{ port: 80 }] }));
    const result = await cli(['config', 'check', '--config', file, '--json'], { WARMVM_HOME: dir });
    expect(result.exitCode).toBe(0);
    expect(result.json).toMatchObject({
      ok: true,
      file,
      spec: {
        memoryMb: 256,
        boot: { kind: 'disk', path: join(dir, 'disk.qcow2'), format: 'qcow2', kernel: null },
        ports: [{ guest: 80, host: null }],
        health: [{ port: 80, path: '/', status: 200 }],
        rotation: null,
      },
    });
    const human = await cli(['config', 'check', '--config', file], { WARMVM_HOME: dir });
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toContain(`config ${file} is valid; it resolves to:\n{`);
  });

  it('refuses a wrong config with every wrong field and the fix, exit 1', async () => {
    const dir = await temp();
    const file = join(dir, 'bad.json');
    await writeFile(file, JSON.stringify({ image: { url: 'https://example.org/disk.qcow2.xz', digest: `sha512:${'a'.repeat(64)}` }, cpus: 0 }));
    const result = await cli(['config', 'check', '--config', file, '--json'], { WARMVM_HOME: dir });
    expect(result.exitCode).toBe(1);
    expect(result.json).toMatchObject({ outcome: 'failed', error: { code: 'E_CONFIG', hint: expect.stringContaining(file) } });
    const message = (result.json.error as { message: string }).message;
    expect(message).toContain('field "cpus" must be between 1 and 256, got 0');
    expect(message).toContain('field "image.digest" must have 128 hex digits after "sha512:" (64 after "sha256:"), got 64');
    const human = await cli(['config', 'check', '--config', file], { WARMVM_HOME: dir });
    expect(human.exitCode).toBe(1);
    expect(human.stderr).toMatch(/^warmvm: config .*bad\.json: field "cpus" .*\n {2}field "image\.digest" /);
    expect(human.stderr).toContain('fix: ');
  });

  it('says which file it cannot read', async () => {
    const result = await cli(['config', 'check', '--config', '/nonexistent/warmvm.json', '--json'], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(1);
    expect(result.json.error).toMatchObject({ code: 'E_CONFIG_READ', hint: expect.stringContaining('--config') });
  });
});
