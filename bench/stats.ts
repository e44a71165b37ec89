/** Median, min and max of a sample; ratios are taken pair by pair so machine drift cancels. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] ?? NaN, max: sorted.at(-1) ?? NaN, n: sorted.length };
}

export function formatSummary(label: string, summary: Summary, unit = 's'): string {
  return `${label.padEnd(34)} median ${summary.median.toFixed(3)} ${unit}   min ${summary.min.toFixed(3)}   max ${summary.max.toFixed(3)}   (n=${summary.n})`;
}

export function parseRuns(argv: string[], fallback: number): number {
  const index = argv.indexOf('--runs');
  const value = index >= 0 ? Number(argv[index + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error('--runs takes a whole number ≥ 1');
  return value;
}
