import { describe, expect, it } from 'vitest';
import { JsonStreamDecoder, encodeMessage, type Frame } from '../../../../adapters/qemu/protocol/framing.js';

const values = (frames: Frame[]): unknown[] => frames.map((frame) => (frame.kind === 'object' ? frame.value : frame));

describe('JsonStreamDecoder', () => {
  it('parses several CRLF-terminated objects in one chunk, in order', () => {
    const decoder = new JsonStreamDecoder();
    const frames = decoder.push(Buffer.from('{"a": 1}\r\n{"event": "STOP"}\r\n{"return": {}, "id": "x"}\r\n'));
    expect(values(frames)).toEqual([{ a: 1 }, { event: 'STOP' }, { return: {}, id: 'x' }]);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('accepts bare LF line endings (qemu-ga)', () => {
    const decoder = new JsonStreamDecoder();
    expect(values(decoder.push(Buffer.from('{"return": 1}\n{"return": 2}\n')))).toEqual([{ return: 1 }, { return: 2 }]);
  });

  it('reassembles an object split across chunks, byte by byte', () => {
    const decoder = new JsonStreamDecoder();
    const bytes = Buffer.from('{"QMP": {"version": {"qemu": {"major": 10}}}}\r\n{"b": 2}\r\n');
    const frames: Frame[] = [];
    for (const byte of bytes) frames.push(...decoder.push(Buffer.from([byte])));
    expect(values(frames)).toEqual([{ QMP: { version: { qemu: { major: 10 } } } }, { b: 2 }]);
  });

  it('keeps a multi-byte UTF-8 character intact when a chunk boundary cuts through it', () => {
    const decoder = new JsonStreamDecoder();
    const bytes = Buffer.from('{"desc": "café ✓"}\n');
    const cut = bytes.indexOf(0xe2) + 1; // inside the 3-byte check mark
    expect(decoder.push(bytes.subarray(0, cut))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(cut);
    expect(values(decoder.push(bytes.subarray(cut)))).toEqual([{ desc: 'café ✓' }]);
  });

  it('holds an incomplete line until its newline arrives', () => {
    const decoder = new JsonStreamDecoder();
    expect(decoder.push(Buffer.from('{"return": {"status": "runn'))).toEqual([]);
    expect(values(decoder.push(Buffer.from('ing"}}\r\n{"x"')))).toEqual([{ return: { status: 'running' } }]);
    expect(decoder.bufferedBytes).toBe(4);
  });

  it('skips blank lines and reports malformed lines without losing the next object', () => {
    const decoder = new JsonStreamDecoder();
    const frames = decoder.push(Buffer.from('\r\n  \r\n{oops\r\n[1,2]\r\n{"ok": true}\r\n'));
    expect(frames).toHaveLength(3);
    expect(frames[0]).toMatchObject({ kind: 'malformed', text: '{oops' });
    expect(frames[1]).toEqual({ kind: 'malformed', text: '[1,2]', reason: 'not a JSON object' });
    expect(frames[2]).toEqual({ kind: 'object', value: { ok: true } });
  });

  describe('resync', () => {
    it('drops complete and partial lines until 0xFF, then parses again', () => {
      const decoder = new JsonStreamDecoder();
      expect(decoder.push(Buffer.from('{"return": "before'))).toEqual([]);
      decoder.resync();
      expect(decoder.resyncing).toBe(true);
      expect(decoder.push(Buffer.from('-resync"}\n{"return": "stale"}\n{"error": {"class": "x"}}\n'))).toEqual([]);
      const frames = decoder.push(Buffer.concat([Buffer.from('{"return": "half'), Buffer.from([0xff]), Buffer.from('{"return": 42}\n{"return": "next"}\n')]));
      expect(decoder.resyncing).toBe(false);
      expect(values(frames)).toEqual([{ return: 42 }, { return: 'next' }]);
    });

    it('finds the 0xFF when it arrives alone in its own chunk', () => {
      const decoder = new JsonStreamDecoder();
      decoder.resync();
      expect(decoder.push(Buffer.from('{"return": 1}\n'))).toEqual([]);
      expect(decoder.push(Buffer.from([0xff]))).toEqual([]);
      expect(decoder.resyncing).toBe(false);
      expect(values(decoder.push(Buffer.from('{"return": 7}\n')))).toEqual([{ return: 7 }]);
    });

    it('drops a half line before a 0xFF even when not resyncing (the agent flushed its output)', () => {
      const decoder = new JsonStreamDecoder();
      const frames = decoder.push(Buffer.concat([Buffer.from('{"return": "cut off'), Buffer.from([0xff]), Buffer.from('{"return": 3}\n')]));
      expect(values(frames)).toEqual([{ return: 3 }]);
    });
  });
});

describe('encodeMessage', () => {
  it('writes one compact line ending in a newline', () => {
    expect(encodeMessage({ execute: 'query-status', id: 'warmvm-1' })).toBe('{"execute":"query-status","id":"warmvm-1"}\n');
  });

  it('writes bigints as exact JSON integers', () => {
    const line = encodeMessage({ execute: 'guest-set-time', arguments: { time: 1700000000123456789n, neg: -5n } });
    expect(line).toBe('{"execute":"guest-set-time","arguments":{"time":1700000000123456789,"neg":-5}}\n');
    // A double could not have held it: the digits must survive untouched.
    expect(Number(1700000000123456789n).toString()).not.toBe('1700000000123456789');
  });

  it('leaves strings that merely look like numbers alone', () => {
    expect(encodeMessage({ a: '123', b: 5n })).toBe('{"a":"123","b":5}\n');
  });
});
