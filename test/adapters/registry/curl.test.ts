import { describe, expect, it } from 'vitest';
import { curlConfig } from '../../../adapters/registry/curl.js';

describe('curlConfig', () => {
  it('holds the request, the Authorization among its headers (on stdin, never in argv), and continues where asked', () => {
    const config = curlConfig({ url: 'http://127.0.0.1:5000/v2/a/blobs/sha256:00', authorization: 'Basic Y2k6c2VjcmV0', file: '/h/blobs/x.partial', from: 1234 }, undefined);
    expect(config.split('\n')).toEqual(
      expect.arrayContaining([
        'url = "http://127.0.0.1:5000/v2/a/blobs/sha256:00"',
        'output = "/h/blobs/x.partial"',
        'continue-at = 1234',
        'header = "Authorization: Basic Y2k6c2VjcmV0"',
        'max-redirs = 0',
        'fail',
        'capath = "/etc/ssl/certs"',
      ]),
    );
    expect(config).not.toContain('cacert');
  });

  it('starts a file anew from byte 0, adds NODE_EXTRA_CA_CERTS to the CAs, and quotes what needs it', () => {
    const config = curlConfig({ url: 'https://r.example/v2/a"b\\c', authorization: undefined, file: '/h/x', from: 0 }, '/etc/ca "x".pem');
    expect(config).not.toContain('continue-at');
    expect(config).not.toContain('Authorization');
    expect(config).toContain('url = "https://r.example/v2/a\\"b\\\\c"');
    expect(config).toContain('cacert = "/etc/ca \\"x\\".pem"');
  });

  it('refuses a value with a line break: it would start another option', () => {
    expect(() => curlConfig({ url: 'http://x/\nupload-file = "/etc/shadow"', authorization: undefined, file: '/h/x', from: 0 }, undefined)).toThrow(/line break/);
  });
});
