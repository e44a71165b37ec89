import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { WarmvmError } from '../support/errors.js';

/*
 * Credentials for a registry, read from Docker's `config.json` as `docker login` writes it:
 * `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. An entry of `auths` is found under
 * the registry's `host[:port]`, or as `https://host`, `http://host` or `host/v1/` (older Docker
 * versions wrote those); its `auth` is base64 `user:password`, or it has `username` and `password`.
 *
 * Credential helpers (`credsStore`, `credHelpers`) are NOT run: warmvm starts no
 * `docker-credential-*` program. When the file names one for this registry and has no usable `auths`
 * entry (Docker leaves an empty `{}` there when a helper holds the secret), the lookup says so,
 * and an authentication failure's hint tells the person how to get the credentials into the file.
 * `identitytoken` (an OAuth2 refresh token some registries hand out) is not used either.
 */

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface CredentialLookup {
  /** Undefined: anonymous. */
  credentials: RegistryCredentials | undefined;
  /** The file read (or that would have been, when it is missing). */
  configPath: string;
  /** The credential helper the file names for this registry (`desktop`, `ecr-login`), not run. */
  helper: string | undefined;
}

/** Where Docker keeps its config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG !== undefined && env.DOCKER_CONFIG !== '' ? env.DOCKER_CONFIG : join(env.HOME ?? homedir(), '.docker');
  return join(dir, 'config.json');
}

/** Docker Hub's credentials live under its old index address, whichever of its names is used. */
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const DOCKER_HUB_KEY = 'index.docker.io';

/** The credentials `config.json` holds for `registry` (`host[:port]`); a missing file means anonymous. */
export async function lookupCredentials(registry: string, options: { configPath?: string } = {}): Promise<CredentialLookup> {
  const configPath = options.configPath ?? dockerConfigPath();
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { credentials: undefined, configPath, helper: undefined };
    throw new WarmvmError('E_REGISTRY_AUTH', `could not read the registry credentials in ${configPath}`, {
      hint: `make ${configPath} readable, or point DOCKER_CONFIG at another folder`,
      cause: error,
    });
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    // The parser's message quotes the file, and the file holds passwords: keep only where it failed.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new WarmvmError('E_REGISTRY_AUTH', `${configPath} is not valid JSON${position === undefined ? '' : ` (at character ${position})`}`, {
      hint: `fix ${configPath} (docker login rewrites it), or point DOCKER_CONFIG at another folder`,
    });
  }
  if (!isObject(config)) throw new WarmvmError('E_REGISTRY_AUTH', `${configPath} is not a JSON object`, { hint: `fix ${configPath}, or point DOCKER_CONFIG at another folder` });

  const wanted = keyOf(registry);
  const helper = helperFor(config, registry, wanted);
  const auths = isObject(config.auths) ? config.auths : {};
  // An exact key first, then any key that comes to the same host[:port].
  const keys = Object.keys(auths);
  const key = keys.includes(registry) ? registry : keys.find((candidate) => keyOf(candidate) === wanted);
  const entry = key === undefined ? undefined : auths[key];
  const credentials = isObject(entry) ? credentialsOf(entry, key as string, configPath) : undefined;
  return { credentials, configPath, helper };
}

function credentialsOf(entry: Record<string, unknown>, key: string, configPath: string): RegistryCredentials | undefined {
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) {
      throw new WarmvmError('E_REGISTRY_AUTH', `the "auth" of "${key}" in ${configPath} is not base64 of user:password`, {
        hint: `run docker login ${keyOf(key)} again, or fix that entry`,
      });
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.username === 'string' && entry.username !== '' && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
  return undefined;
}

function helperFor(config: Record<string, unknown>, registry: string, wanted: string): string | undefined {
  if (isObject(config.credHelpers)) {
    for (const [key, value] of Object.entries(config.credHelpers)) {
      if (typeof value === 'string' && value !== '' && (key === registry || keyOf(key) === wanted)) return value;
    }
  }
  return typeof config.credsStore === 'string' && config.credsStore !== '' ? config.credsStore : undefined;
}

/** `https://Host:5000/v1/` → `host:5000`; Docker Hub's names → `index.docker.io`. */
function keyOf(written: string): string {
  const bare = written
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  return DOCKER_HUB_NAMES.has(bare) ? DOCKER_HUB_KEY : bare;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
