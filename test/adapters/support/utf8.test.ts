import { describe, expect, it } from 'vitest';
import { textOrBase64 } from '../../../adapters/support/utf8.js';

describe('textOrBase64', () => {
  it('gives UTF-8 as it is, with no base64', () => {
    expect(textOrBase64(Buffer.from('héllo ✓\n'))).toEqual({ text: 'héllo ✓\n' });
    expect(textOrBase64(Buffer.alloc(0))).toEqual({ text: '' });
  });

  it('shows bytes that are not UTF-8 as U+FFFD and keeps the exact bytes in base64', () => {
    const bytes = Buffer.from([0x61, 0xff, 0xc3, 0x62]);
    expect(textOrBase64(bytes)).toEqual({ text: 'a\uFFFD\uFFFDb', base64: bytes.toString('base64') });
  });
});
