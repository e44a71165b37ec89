import { describe, expect, it } from 'vitest';
import {
  ExchangeRing,
  JsonStreamDecoder,
  boundedWait,
  encodeMessage,
  type Frame,
  type Waiter,
} from '../../../../adapters/qemu/protocol/json-lines.js';
import { redactedJson } from '../../../../adapters/support/redact.js';
import { WarmvmError } from '../../../../adapters/support/errors.js';

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

describe('redactedJson', () => {
  it('hides input-data wherever it is nested', () => {
    const text = redactedJson({ execute: 'guest-exec', arguments: { path: '/bin/rotate', 'input-data': 'c2VjcmV0' } });
    expect(text).toBe('{"execute":"guest-exec","arguments":{"path":"/bin/rotate","input-data":"[redacted]"}}');
  });

  it('cuts long values and says how long they were', () => {
    const text = redactedJson({ big: 'x'.repeat(5000) }, 100);
    expect(text.startsWith('{"big":"xxx')).toBe(true);
    expect(text).toContain('… (5010 chars)');
    expect(text.length).toBeLessThan(130);
  });
});

describe('ExchangeRing', () => {
  it('keeps only the last N entries, oldest first', () => {
    const ring = new ExchangeRing(3);
    for (let i = 1; i <= 5; i += 1) ring.record('sent', 'command', `c${i}`, { execute: `c${i}` });
    const list = ring.list();
    expect(list.map((entry) => entry.name)).toEqual(['c3', 'c4', 'c5']);
    expect(list[2]).toMatchObject({ direction: 'sent', kind: 'command', text: '{"execute":"c5"}' });
    expect(Number.isNaN(Date.parse(list[0]?.at ?? ''))).toBe(false);
  });
});

describe('boundedWait', () => {
  const base = (waiters: Set<Waiter>) => ({
    operation: 'op',
    signal: undefined,
    waiters,
    timeoutError: () => new Error('timed out'),
  });

  it('resolves with what start settles and runs its undo once', async () => {
    const waiters = new Set<Waiter>();
    let undone = 0;
    const value = await boundedWait<number>({ ...base(waiters), timeoutMs: 1000 }, (settle) => {
      setTimeout(() => settle.resolve(5), 5);
      return () => {
        undone += 1;
      };
    });
    expect(value).toBe(5);
    expect(undone).toBe(1);
    expect(waiters.size).toBe(0);
  });

  it('rejects on timeout and calls onGiveUp', async () => {
    const waiters = new Set<Waiter>();
    let gaveUp = false;
    let undone = 0;
    const started = Date.now();
    await expect(
      boundedWait({ ...base(waiters), timeoutMs: 30, onGiveUp: () => (gaveUp = true) }, () => () => {
        undone += 1;
      }),
    ).rejects.toThrow('timed out');
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(gaveUp).toBe(true);
    expect(undone).toBe(1);
    expect(waiters.size).toBe(0);
  });

  it('rejects with E_ABORTED when the signal fires', async () => {
    const controller = new AbortController();
    const promise = boundedWait({ ...base(new Set()), timeoutMs: 10_000, signal: controller.signal }, () => () => {});
    controller.abort(new Error('user pressed ^C'));
    const error = await promise.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(WarmvmError);
    expect((error as WarmvmError).code).toBe('E_ABORTED');
    expect((error as WarmvmError).message).toBe('op was cancelled');
  });

  it('is failed through its waiter (a disconnect)', async () => {
    const waiters = new Set<Waiter>();
    const promise = boundedWait({ ...base(waiters), timeoutMs: 10_000 }, () => () => {});
    expect([...waiters].map((waiter) => waiter.operation)).toEqual(['op']);
    for (const waiter of waiters) waiter.fail(new Error('gone'));
    await expect(promise).rejects.toThrow('gone');
    expect(waiters.size).toBe(0);
  });

  it('does not arm a timer for an unbounded wait', async () => {
    const promise = boundedWait<string>({ ...base(new Set()), timeoutMs: Number.POSITIVE_INFINITY }, (settle) => {
      setTimeout(() => settle.resolve('late'), 20);
      return () => {};
    });
    await expect(promise).resolves.toBe('late');
  });
});
