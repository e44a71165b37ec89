import { WarmvmError } from '../support/errors.js';
import type { Digest } from '../oci/types.js';

/*
 * A reference to a manifest in a registry, `HOST[:PORT]/REPOSITORY[:TAG|@sha256:HEX]`, by the
 * grammar of the OCI distribution spec and Docker's reference package. The host is always written
 * out: warmvm has no default registry, so `ubuntu/snap:1` is refused rather than sent to Docker Hub.
 */

export interface RegistryReference {
  /** `host:port`, or `host` when no port is written: the key of Docker's `config.json` `auths`. */
  registry: string;
  /** The host name or address, without brackets for IPv6 (`::1`). */
  host: string;
  port: number | undefined;
  /** `acme/snapshots`: lowercase components separated by `/`. */
  repository: string;
  /** `latest` when neither a tag nor a digest is written; undefined when only a digest is. */
  tag: string | undefined;
  digest: Digest | undefined;
  /** The reference as written. */
  text: string;
}

export const DEFAULT_TAG = 'latest';

const SHAPE = 'HOST[:PORT]/REPOSITORY[:TAG] or HOST[:PORT]/REPOSITORY@sha256:<64 hex>';
const EXAMPLE = 'ghcr.io/acme/warmvm-snapshots:web-1 or localhost:5000/snapshots@sha256:…';
/** A host name component: letters, digits and inner hyphens. */
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
/** A repository path component: lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-`. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** Docker's limit on a whole name (host and repository). */
const NAME_MAX = 255;

/** Parses `HOST[:PORT]/REPOSITORY[:TAG|@sha256:HEX]` (a tag and a digest together are allowed: the digest decides). */
export function parseReference(text: string): RegistryReference {
  const refuse = (why: string): WarmvmError =>
    new WarmvmError('E_REGISTRY_REF', `"${text}" is not a registry reference (${SHAPE}): ${why}`, { hint: `write it as ${SHAPE}, e.g. ${EXAMPLE}` });
  if (text.trim() !== text || text === '') throw refuse(text === '' ? 'it is empty' : 'it has spaces around it');

  let rest = text;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const written = rest.slice(at + 1);
    if (!DIGEST.test(written)) {
      throw refuse(
        written.startsWith('sha256:')
          ? `the digest "${written}" is not sha256: and 64 lowercase hex digits`
          : `the digest "${written}" is not sha256 (only sha256 digests are used)`,
      );
    }
    digest = written as Digest;
    rest = rest.slice(0, at);
  }

  const slash = rest.indexOf('/');
  if (slash < 0) throw refuse('it names no registry host (warmvm has no default registry)');
  const hostPart = rest.slice(0, slash);
  let path = rest.slice(slash + 1);
  const { host, port } = parseHost(hostPart, refuse);

  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon >= 0) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag)) throw refuse(`the tag "${tag}" is not 1–128 letters, digits, "_", "." or "-" (not starting with "." or "-")`);
  }
  if (path === '') throw refuse('it names no repository after the host');
  for (const component of path.split('/')) {
    if (PATH_COMPONENT.test(component)) continue;
    if (component === '') throw refuse(`the repository "${path}" has an empty component`);
    if (component.toLowerCase() !== component && PATH_COMPONENT.test(component.toLowerCase()))
      throw refuse(`the repository "${path}" has uppercase letters (repositories are lowercase)`);
    throw refuse(`the repository component "${component}" is not lowercase letters and digits joined by ".", "_", "__" or "-"`);
  }
  if (hostPart.length + 1 + path.length > NAME_MAX) throw refuse(`the host and repository are longer than ${NAME_MAX} characters`);

  const registry = port === undefined ? hostPart : hostPart.slice(0, hostPart.lastIndexOf(':')) + `:${port}`;
  return { registry, host, port, repository: path, tag: tag ?? (digest === undefined ? DEFAULT_TAG : undefined), digest, text };
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`. The first component must look like a host (a dot, a port, `localhost` or an address), as Docker decides. */
function parseHost(hostPart: string, refuse: (why: string) => WarmvmError): { host: string; port: number | undefined } {
  let host: string;
  let portText: string | undefined;
  if (hostPart.startsWith('[')) {
    const close = hostPart.indexOf(']');
    if (close < 0) throw refuse(`the host "${hostPart}" opens a "[" it does not close`);
    host = hostPart.slice(1, close);
    const after = hostPart.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw refuse(`the host "${hostPart}" has text after its "]"`);
    portText = after === '' ? undefined : after.slice(1);
    if (!/^[0-9a-fA-F:.]+$/.test(host) || !host.includes(':')) throw refuse(`"${host}" is not an IPv6 address`);
  } else {
    const colon = hostPart.indexOf(':');
    host = colon < 0 ? hostPart : hostPart.slice(0, colon);
    portText = colon < 0 ? undefined : hostPart.slice(colon + 1);
    if (host === '') throw refuse('it names no registry host before the first "/"');
    if (!host.split('.').every((component) => DOMAIN_COMPONENT.test(component))) throw refuse(`the host "${host}" is not a host name or address`);
    if (portText === undefined && !host.includes('.') && host !== 'localhost') {
      throw refuse(`"${host}" does not look like a registry host (no dot, no port, not localhost): warmvm has no default registry, so name it, e.g. docker.io/${hostPart}/…`);
    }
  }
  if (portText === undefined) return { host, port: undefined };
  const port = Number(portText);
  if (!/^[0-9]{1,5}$/.test(portText) || port < 1 || port > 65535) throw refuse(`the port "${portText}" is not a number from 1 to 65535`);
  return { host, port };
}

/** The reference written back: `host[:port]/repository` with `:tag` and/or `@digest`. */
export function formatReference(reference: Pick<RegistryReference, 'registry' | 'repository' | 'tag' | 'digest'>): string {
  return `${reference.registry}/${reference.repository}${reference.tag === undefined ? '' : `:${reference.tag}`}${reference.digest === undefined ? '' : `@${reference.digest}`}`;
}
