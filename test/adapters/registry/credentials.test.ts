import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerConfigPath, lookupCredentials } from '../../../adapters/registry/credentials.js';
import { describeError } from '../../../adapters/support/errors.js';
import { dockerAuth, writeDockerConfig } from '../../helpers/registry.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

describe('lookupCredentials', () => {
  it('is anonymous when there is no config.json', async () => {
    const configPath = join(await temp(), 'config.json');
    expect(await lookupCredentials('localhost:5000', { configPath })).toEqual({ credentials: undefined, configPath, helper: undefined });
  });

  it('reads base64 user:password from auths, under the key as written or as older Docker wrote it', async () => {
    const dir = await temp();
    const configPath = await writeDockerConfig(dir, {
      auths: {
        'localhost:5000': dockerAuth('plain', 'pass:with:colons'),
        'https://secure.example.com': dockerAuth('https', 'p1'),
        'old.example.com/v1/': dockerAuth('v1', 'p2'),
        'https://index.docker.io/v1/': dockerAuth('hub', 'p3'),
        'fields.example.com': { username: 'fields', password: 'p4' },
      },
    });
    const found = async (registry: string) => (await lookupCredentials(registry, { configPath })).credentials;
    expect(await found('localhost:5000')).toEqual({ username: 'plain', password: 'pass:with:colons' });
    expect(await found('secure.example.com')).toEqual({ username: 'https', password: 'p1' });
    expect(await found('old.example.com')).toEqual({ username: 'v1', password: 'p2' });
    expect(await found('docker.io')).toEqual({ username: 'hub', password: 'p3' });
    expect(await found('fields.example.com')).toEqual({ username: 'fields', password: 'p4' });
    // Another port is another registry.
    expect(await found('localhost:5001')).toBeUndefined();
    expect(await found('secure.example.com:8443')).toBeUndefined();
  });

  it('finds config.json through DOCKER_CONFIG, else under the home folder', () => {
    expect(dockerConfigPath({ DOCKER_CONFIG: '/etc/wv-docker', HOME: '/home/u' })).toBe('/etc/wv-docker/config.json');
    expect(dockerConfigPath({ HOME: '/home/u' })).toBe('/home/u/.docker/config.json');
    expect(dockerConfigPath({ DOCKER_CONFIG: '', HOME: '/home/u' })).toBe('/home/u/.docker/config.json');
  });

  it('names the credential helper it does not run, when auths has nothing usable for the registry', async () => {
    const dir = await temp();
    const configPath = await writeDockerConfig(dir, { auths: { 'ghcr.io': {} }, credsStore: 'desktop', credHelpers: { 'gcr.io': 'gcloud' } });
    expect(await lookupCredentials('ghcr.io', { configPath })).toEqual({ credentials: undefined, configPath, helper: 'desktop' });
    expect((await lookupCredentials('gcr.io', { configPath })).helper).toBe('gcloud');
  });

  it('refuses a broken config.json without quoting it (it holds passwords)', async () => {
    const dir = await temp();
    const configPath = join(dir, 'config.json');
    await writeFile(configPath, '{"auths": {"x.example.com": {"auth": "c2VjcmV0LXB3ZA=="}}, oops}');
    const error = await lookupCredentials('x.example.com', { configPath }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'E_REGISTRY_AUTH', message: expect.stringMatching(/^\/.*\/config\.json is not valid JSON \(at character \d+\)$/) });
    expect(describeError(error)).not.toContain('c2VjcmV0');

    await writeDockerConfig(dir, { auths: { 'x.example.com': { auth: Buffer.from('no-colon-here').toString('base64') } } });
    const bad = await lookupCredentials('x.example.com', { configPath }).catch((caught: unknown) => caught);
    expect(bad).toMatchObject({ code: 'E_REGISTRY_AUTH', message: `the "auth" of "x.example.com" in ${configPath} is not base64 of user:password` });
  });
});
