import { describe, expect, it } from 'vitest';
import { joinProseLines } from '../../bin/help-layout.js';
import { cli } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/temp.js';

const temp = useTempDirs();

describe('joinProseLines', () => {
  it("joins a paragraph's lines and keeps blank lines, examples, list items and what follows a colon", () => {
    const text = ['One sentence broken', 'in the source.', '', 'Set this:', '  EXAMPLE=1 warmvm start', '- an item', '- another', 'Then prose', 'again.'].join('\n');
    expect(joinProseLines(text)).toBe(
      ['One sentence broken in the source.', '', 'Set this:', '  EXAMPLE=1 warmvm start', '- an item', '- another', 'Then prose again.'].join('\n'),
    );
  });
});

describe('a command help on an 80-column output', () => {
  it('wraps each paragraph of the description once, with no short line left inside it', async () => {
    // Piped, commander lays help out for 80 columns.
    const result = await cli(['start', '--help'], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(0);
    const description = result.stdout.split('\n\n')[1] ?? '';
    const lines = description.split('\n');
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
    // Every line but the paragraph's last is filled to near the width: hard breaks wrapped again
    // at 80 left lines of a few words ("secrets, then").
    for (const line of lines.slice(0, -1)) expect(line.length, line).toBeGreaterThan(60);
    expect(result.stdout).toContain('OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 warmvm start --name web');
  });
});
