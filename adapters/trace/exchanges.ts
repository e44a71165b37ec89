import type { Exchange, ExchangeLine } from './record.js';

/** An exchange and where its line sits: after how many state lines of the file. */
export interface PlacedExchange extends Exchange {
  /** The number of state lines before it: it happened in the state the last of them entered. */
  entriesBefore: number;
}

/** The exchange lines of a trace.jsonl (those without a `state`), in file order; others are skipped. */
export function parseExchangeLines(text: string): Exchange[] {
  return placeExchangeLines(text).map(({ entriesBefore: _, ...exchange }) => exchange);
}

/**
 * The exchange lines with their places among the state lines. Times are whole milliseconds, so an
 * exchange and the state entry it caused often share one: the order of the lines tells them apart.
 */
export function placeExchangeLines(text: string): PlacedExchange[] {
  const exchanges: PlacedExchange[] = [];
  let entriesBefore = 0;
  for (const line of text.split('\n')) {
    const mayBeExchange = line.includes('"exchange"');
    if (!mayBeExchange && !line.includes('"state"')) continue;
    let record: { exchange?: Partial<ExchangeLine['exchange']>; state?: unknown };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      // An unterminated last line of a run still writing; the state reader reports real damage.
      continue;
    }
    if (typeof record !== 'object' || record === null) continue;
    if (typeof record.state === 'string') {
      entriesBefore += 1;
      continue;
    }
    const exchange = record.exchange;
    if (mayBeExchange && exchange && typeof exchange.at === 'number' && typeof exchange.channel === 'string' && typeof exchange.what === 'string') {
      exchanges.push({
        at: exchange.at,
        channel: exchange.channel,
        what: exchange.what,
        ok: exchange.ok === true,
        summary: String(exchange.summary ?? ''),
        ...(typeof exchange.ms === 'number' ? { ms: exchange.ms } : {}),
        entriesBefore,
      });
    }
  }
  return exchanges;
}
