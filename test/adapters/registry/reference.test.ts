import { describe, expect, it } from 'vitest';
import { formatReference, parseReference } from '../../../adapters/registry/reference.js';
import { WarmvmError } from '../../../adapters/support/errors.js';

const HEX = 'a'.repeat(64);

describe('parseReference', () => {
  it.each([
    ['localhost:5000/snapshots', { registry: 'localhost:5000', host: 'localhost', port: 5000, repository: 'snapshots', tag: 'latest', digest: undefined }],
    ['ghcr.io/acme/warmvm-snapshots:web-1', { registry: 'ghcr.io', host: 'ghcr.io', port: undefined, repository: 'acme/warmvm-snapshots', tag: 'web-1' }],
    ['registry.example.com:443/a/b/c:v1.2_3-x', { registry: 'registry.example.com:443', port: 443, repository: 'a/b/c', tag: 'v1.2_3-x' }],
    [`127.0.0.1:5000/snaps@sha256:${HEX}`, { registry: '127.0.0.1:5000', host: '127.0.0.1', repository: 'snaps', tag: undefined, digest: `sha256:${HEX}` }],
    [`localhost/snaps:web@sha256:${HEX}`, { registry: 'localhost', port: undefined, repository: 'snaps', tag: 'web', digest: `sha256:${HEX}` }],
    ['[::1]:5000/snaps:t', { registry: '[::1]:5000', host: '::1', port: 5000, repository: 'snaps', tag: 't' }],
    ['my-host.example/a.b/c__d/e--f/g_h:_underscore', { registry: 'my-host.example', repository: 'a.b/c__d/e--f/g_h', tag: '_underscore' }],
    ['Registry.Example.com/x:UPPER', { registry: 'Registry.Example.com', host: 'Registry.Example.com', repository: 'x', tag: 'UPPER' }],
  ])('reads %s', (text, expected) => {
    expect(parseReference(text)).toMatchObject({ ...expected, text });
  });

  it('writes back what it read', () => {
    for (const text of ['localhost:5000/snapshots:latest', `ghcr.io/acme/x:web@sha256:${HEX}`, `ghcr.io/acme/x@sha256:${HEX}`])
      expect(formatReference(parseReference(text))).toBe(text);
  });

  it.each([
    ['', 'it is empty'],
    [' localhost:5000/x', 'it has spaces around it'],
    ['snapshots', 'it names no registry host'],
    ['ubuntu/snap:1', '"ubuntu" does not look like a registry host'],
    ['localhost:5000/', 'it names no repository after the host'],
    ['localhost:5000/:tag', 'it names no repository after the host'],
    ['localhost:5000/Acme/snaps', 'the repository "Acme/snaps" has uppercase letters'],
    ['localhost:5000/acme//snaps', 'has an empty component'],
    ['localhost:5000/acme/snaps/', 'has an empty component'],
    ['localhost:5000/-acme', 'the repository component "-acme" is not'],
    ['localhost:5000/acme_', 'the repository component "acme_" is not'],
    ['localhost:5000/a...b', 'the repository component "a...b" is not'],
    ['localhost:5000/x:-tag', 'the tag "-tag" is not'],
    ['localhost:5000/x:.tag', 'the tag ".tag" is not'],
    [`localhost:5000/x:${'t'.repeat(129)}`, 'is not 1–128'],
    ['localhost:5000/x:', 'the tag "" is not'],
    ['localhost:0/x', 'the port "0" is not'],
    ['localhost:65536/x', 'the port "65536" is not'],
    ['localhost:http/x', 'the port "http" is not'],
    ['exa_mple.com/x', 'the host "exa_mple.com" is not'],
    ['-example.com/x', 'the host "-example.com" is not'],
    ['[::1/x', 'opens a "[" it does not close'],
    ['[example]:5000/x', '"example" is not an IPv6 address'],
    ['localhost:5000/x@sha512:abc', 'is not sha256'],
    ['localhost:5000/x@sha256:ABC', 'is not sha256: and 64 lowercase hex digits'],
    [`localhost:5000/x@sha256:${'A'.repeat(64)}`, 'is not sha256: and 64 lowercase hex digits'],
    [`localhost:5000/${'a'.repeat(250)}`, 'longer than 255 characters'],
  ])('refuses %j: %s', (text, why) => {
    let error: unknown;
    try {
      parseReference(text);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(WarmvmError);
    expect(error).toMatchObject({ code: 'E_REGISTRY_REF' });
    const { message, hint } = error as WarmvmError;
    expect(message).toContain(`"${text}" is not a registry reference (HOST[:PORT]/REPOSITORY[:TAG] or HOST[:PORT]/REPOSITORY@sha256:<64 hex>): `);
    expect(message).toContain(why);
    expect(hint).toMatch(/e\.g\. ghcr\.io\/acme\/warmvm-snapshots:web-1/);
  });
});
