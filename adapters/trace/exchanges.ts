import type { Exchange, ExchangeLine } from './record.js';

/** The exchange lines of a trace.jsonl (those without a `state`), in file order; others are skipped. */
export function parseExchangeLines(text: string): Exchange[] {
  const exchanges: Exchange[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('"exchange"')) continue;
    try {
      const record = JSON.parse(line) as { exchange?: Partial<ExchangeLine['exchange']> };
      const exchange = record.exchange;
      if (exchange && typeof exchange.at === 'number' && typeof exchange.channel === 'string' && typeof exchange.what === 'string') {
        exchanges.push({
          at: exchange.at,
          channel: exchange.channel,
          what: exchange.what,
          ok: exchange.ok === true,
          summary: String(exchange.summary ?? ''),
          ...(typeof exchange.ms === 'number' ? { ms: exchange.ms } : {}),
        });
      }
    } catch {
      // An unterminated last line of a run still writing; the state reader reports real damage.
    }
  }
  return exchanges;
}
