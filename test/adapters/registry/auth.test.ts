import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../../adapters/oci/types.js';
import { RegistryClient } from '../../../adapters/registry/client.js';
import { parseReference } from '../../../adapters/registry/reference.js';
import { describeError } from '../../../adapters/support/errors.js';
import { dockerAuth, type TestRegistry, useRegistries, writeDockerConfig } from '../../helpers/registry.js';

const registries = useRegistries();
const USER = 'warmvm';
const PASSWORD = 'right-horse-battery-7Qx';
const WRONG = 'wrong-staple-Zk93p';
const BLOB_BYTES = 5 << 20;

let dir: string;
let blobFile: string;
let blob: Buffer;
let digest: Digest;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wvm-rega-'));
  blob = randomBytes(BLOB_BYTES);
  digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  blobFile = join(dir, 'blob');
  await writeFile(blobFile, blob);
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** A config.json in a folder of its own, as DOCKER_CONFIG would name it. */
async function dockerConfig(name: string, config: unknown): Promise<string> {
  const folder = join(dir, name);
  await mkdir(folder, { recursive: true });
  return writeDockerConfig(folder, config);
}

/** Everything of an error a person or a log could see: messages, hints, causes, stack, own fields. */
function everything(error: unknown): string {
  const parts: string[] = [describeError(error)];
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current !== undefined && current !== null; depth += 1) {
    parts.push(String((current as Error).stack), JSON.stringify(current, Object.getOwnPropertyNames(current)));
    current = (current as Error).cause;
  }
  return parts.join('\n');
}

function expectNoSecret(error: unknown, password: string): void {
  const text = everything(error);
  expect(text).not.toContain(password);
  expect(text).not.toContain(Buffer.from(`${USER}:${password}`).toString('base64'));
}

for (const kind of ['htpasswd', 'token'] as const) {
  describe(`a registry with ${kind === 'htpasswd' ? 'basic (htpasswd)' : 'Bearer token'} auth`, () => {
    let registry: TestRegistry;
    beforeAll(async () => {
      registry = await registries({ auth: { kind, username: USER, password: PASSWORD } });
    });

    const clientWith = (configPath: string, repository = 'warmvm/private') =>
      new RegistryClient(parseReference(`${registry.registry}/${repository}`), { dockerConfigPath: configPath, chunkBytes: 2 << 20 });

    it('pushes and pulls with the credentials of config.json', async () => {
      const configPath = await dockerConfig(`${kind}-right`, { auths: { [registry.registry]: dockerAuth(USER, PASSWORD) } });
      const client = clientWith(configPath);
      const tokensBefore = registry.tokensIssued();
      expect(await client.pushBlob(blobFile, digest, BLOB_BYTES)).toEqual({ sent: true });
      const dest = join(dir, `${kind}-pulled`);
      await client.pullBlob(digest, BLOB_BYTES, dest);
      expect((await readFile(dest)).equals(blob)).toBe(true);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/json', digest, size: BLOB_BYTES },
          layers: [],
        }),
      );
      const pushed = await client.putManifest('t1', manifest, 'application/vnd.oci.image.manifest.v1+json');
      expect((await client.getManifest('t1')).digest).toBe(pushed);
      // Asked once, then sent with every request: one 401 for the first, none after.
      const refused = registry.requests().filter((request) => request.status === 401);
      expect(refused).toHaveLength(kind === 'htpasswd' ? 1 : 2);
      if (kind === 'token') {
        // A token for the pull scope (the HEAD), one for pull,push (the upload), reused for the rest.
        expect(registry.tokensIssued() - tokensBefore).toBe(2);
      }
    });

    it.runIf(kind === 'htpasswd')("follows a blob's redirect to storage on another origin, without the registry's Authorization", async () => {
      const configPath = await dockerConfig(`${kind}-redirect`, { auths: { [registry.registry]: dockerAuth(USER, PASSWORD) } });
      const client = clientWith(configPath);
      await client.pushBlob(blobFile, digest, BLOB_BYTES);
      registry.setProxy({ redirectBlobs: true });
      try {
        const dest = join(dir, `${kind}-redirected`);
        await client.pullBlob(digest, BLOB_BYTES, dest);
        expect((await readFile(dest)).equals(blob)).toBe(true);
      } finally {
        registry.setProxy({});
      }
      expect(registry.requests().at(-1)).toMatchObject({ method: 'GET', status: 307, authorized: true });
      // The blob's first byte, then the rest by curl (where it is installed, as here), all without the registry's Authorization.
      expect(registry.storageRequests()).toEqual([
        expect.objectContaining({ method: 'GET', path: `/v2/warmvm/private/blobs/${digest}`, status: 206, authorized: false, bytes: 1 }),
        expect.objectContaining({ method: 'GET', path: `/v2/warmvm/private/blobs/${digest}`, status: 206, authorized: false, bytes: BLOB_BYTES - 1 }),
      ]);
    });

    it('refuses a wrong password with E_REGISTRY_AUTH, and the password is nowhere in the error', async () => {
      const configPath = await dockerConfig(`${kind}-wrong`, { auths: { [`https://${registry.registry}`]: dockerAuth(USER, WRONG) } });
      // A push starts with a HEAD (an answer without a body); a GET's answer has the registry's error code.
      const pushed = await clientWith(configPath)
        .pushBlob(blobFile, digest, BLOB_BYTES)
        .catch((caught: unknown) => caught);
      const got = await clientWith(configPath)
        .getManifest('t1')
        .catch((caught: unknown) => caught);
      for (const error of [pushed, got]) {
        expect(error).toMatchObject({ code: 'E_REGISTRY_AUTH' });
        const { message, hint } = error as { message: string; hint: string };
        expect(message).toMatch(new RegExp(`^the registry ${registry.registry} refused the credentials for warmvm/private \\(HTTP 401 Unauthorized`));
        expect(hint).toBe(
          `check the user and password for ${registry.registry} in ${configPath} (docker login ${registry.registry}), and that the user may push and pull warmvm/private`,
        );
        expectNoSecret(error, WRONG);
      }
      expect((got as Error).message).toContain(
        kind === 'token' ? 'UNAUTHORIZED: authentication required; its token service 127.0.0.1:' : 'HTTP 401 Unauthorized, UNAUTHORIZED: authentication required',
      );
      if (kind === 'token') expect((got as Error).message).toMatch(/answered HTTP 401 Unauthorized, UNAUTHORIZED: wrong user or password\)$/);
    });

    it('without credentials, says to log in', async () => {
      const error = await clientWith(join(dir, 'no-such-folder', 'config.json'))
        .getManifest('t1')
        .catch((caught: unknown) => caught);
      expect(error).toMatchObject({
        code: 'E_REGISTRY_AUTH',
        hint: `log in first: docker login ${registry.registry} (warmvm reads the credentials from ${join(dir, 'no-such-folder', 'config.json')})`,
      });
      expect((error as Error).message).toMatch(new RegExp(`^the registry ${registry.registry} wants credentials for warmvm/private \\(HTTP 401 Unauthorized, UNAUTHORIZED: `));
    });

    it('with a credential helper named for the registry, says warmvm does not run it', async () => {
      const configPath = await dockerConfig(`${kind}-helper`, { auths: { [registry.registry]: {} }, credsStore: 'desktop' });
      const error = await clientWith(configPath)
        .hasBlob(digest)
        .catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'E_REGISTRY_AUTH' });
      expect((error as { hint: string }).hint).toContain(
        `leaves the credentials for ${registry.registry} to the credential helper docker-credential-desktop, which warmvm does not run`,
      );
    });
  });
}
