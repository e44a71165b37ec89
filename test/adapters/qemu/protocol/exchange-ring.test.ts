import { describe, expect, it } from 'vitest';
import { ExchangeRing } from '../../../../adapters/qemu/protocol/exchange-ring.js';
import { redactedJson } from '../../../../adapters/support/redact.js';

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
