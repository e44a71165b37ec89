import type { RunEnd } from '../../adapters/inspector/protocol.js';
import { describeEvent } from '../../adapters/trace/event.js';
import type { TraceRecord } from '../../adapters/trace/record.js';

/** How a recorded run ended, read from its root machine's last state, with the reason it fell back if it did. */
export function recordedEnd(entries: readonly TraceRecord[]): RunEnd {
  const reason = fallbackReason(entries);
  return reason === undefined ? ending(entries) : { ...ending(entries), fallbackReason: reason };
}

function ending(entries: readonly TraceRecord[]): RunEnd {
  const last = entries.filter((entry) => entry.machine === entries[0]?.machine).at(-1);
  const total = `${((entries.at(-1)?.at ?? 0) / 1000).toFixed(2)} s`;
  if (last?.state === 'start.running') return { outcome: 'healthy', summary: `healthy in ${total}` };
  if (last?.state === 'stop.stopped' || last?.state === 'stop.staleCleaned') return { outcome: 'stopped', summary: `stopped in ${total}` };
  if (last?.state.endsWith('.failed')) return { outcome: 'failed', summary: `failed after ${total}: ${describeEvent(last.event)}` };
  return { outcome: 'recorded', summary: `the trace ends in ${last?.state ?? 'nothing'} after ${total} (the run was cut off, or is still going)` };
}

/** The failure that sent a start from its fast path to a cold boot: `resume.preparing: E_… message`. */
function fallbackReason(entries: readonly TraceRecord[]): string | undefined {
  const fallback = entries.find(
    (entry) => (entry.state === 'start.coldBoot' || entry.state === 'start.settingAside') && (entry.from === 'start.resume' || entry.from === 'start.capture'),
  );
  if (!fallback) return undefined;
  const failure = (fallback.event as { output?: { failure?: { state?: unknown; code?: unknown; message?: unknown } } } | undefined)?.output?.failure;
  if (!failure || typeof failure.state !== 'string') return describeEvent(fallback.event);
  return `${failure.state}: ${typeof failure.code === 'string' ? `${failure.code} ` : ''}${String(failure.message ?? '')}`;
}
