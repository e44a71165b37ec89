import { describe, expect, it } from 'vitest';
import { barText, colorWanted, linesProgress, progressMode, terminalProgress } from '../../bin/progress.js';

function clock(): { now: () => number; advance(ms: number): void } {
  let at = 1_000_000;
  return { now: () => at, advance: (ms) => (at += ms) };
}

describe('where progress goes', () => {
  const tty = { isTTY: true, columns: 120 };
  const pipe = { isTTY: false };
  it('draws on a terminal, writes lines on a pipe, nothing with --quiet, nor with --json on a pipe', () => {
    expect(progressMode({ quiet: false, json: false }, tty, { TERM: 'xterm-256color' })).toBe('terminal');
    expect(progressMode({ quiet: false, json: true }, tty, { TERM: 'xterm' })).toBe('terminal');
    expect(progressMode({ quiet: false, json: false }, pipe, {})).toBe('lines');
    expect(progressMode({ quiet: false, json: true }, pipe, {})).toBe('none');
    expect(progressMode({ quiet: true, json: false }, tty, { TERM: 'xterm' })).toBe('none');
  });

  it('writes lines on a dumb terminal and in CI, where a redrawn line would become hundreds of lines', () => {
    expect(progressMode({ quiet: false, json: false }, tty, { TERM: 'dumb' })).toBe('lines');
    expect(progressMode({ quiet: false, json: false }, tty, { TERM: 'xterm', CI: 'true' })).toBe('lines');
    expect(progressMode({ quiet: false, json: false }, tty, { TERM: 'xterm', CI: 'false' })).toBe('terminal');
  });

  it('writes lines on a terminal nobody sized, whose redrawn line has no known height', () => {
    expect(progressMode({ quiet: false, json: false }, { isTTY: true, columns: 0 }, { TERM: 'xterm' })).toBe('lines');
  });

  it('turns colour off for any non-empty NO_COLOR', () => {
    expect(colorWanted({})).toBe(true);
    expect(colorWanted({ NO_COLOR: '' })).toBe(true);
    expect(colorWanted({ NO_COLOR: '1' })).toBe(false);
  });
});

describe('progress as plain lines', () => {
  it('prints a large file at each quarter with its rate, a small one once at its end', () => {
    const lines: string[] = [];
    const time = clock();
    const progress = linesProgress((text) => lines.push(text), time.now);
    const total = 400e6;
    for (let done = 0; done <= total; done += 10e6) {
      time.advance(100);
      progress.bytes('pull: memory.raw', done, total);
    }
    progress.bytes('pull: state.raw', 1e5, 2e5);
    progress.bytes('pull: state.raw', 2e5, 2e5);
    progress.done('pull: 2 of 2 blobs received');
    expect(lines).toEqual([
      '  pull: memory.raw: 25% of 400 MB (100 MB/s)\n',
      '  pull: memory.raw: 50% of 400 MB (100 MB/s)\n',
      '  pull: memory.raw: 75% of 400 MB (100 MB/s)\n',
      '  pull: memory.raw: 100% of 400 MB (100 MB/s)\n',
      '  pull: state.raw: 100% of 0.2 MB (200 MB/s)\n',
      '  pull: 2 of 2 blobs received\n',
    ]);
  });

  it('prints each piece of news of a step without bytes, and every line', () => {
    const lines: string[] = [];
    const progress = linesProgress((text) => lines.push(text));
    progress.line('warmvm: starting instance "a"');
    progress.activity('image', 'unpacking the kernel');
    progress.activity('image', 'writing the initramfs');
    progress.done();
    expect(lines).toEqual(['warmvm: starting instance "a"\n', '  image: unpacking the kernel\n', '  image: writing the initramfs\n']);
  });
});

describe('progress on a terminal', () => {
  function fakeSpinners() {
    const spinners: { texts: string[]; persisted?: { symbol?: string; text?: string }; clears: number; renders: number }[] = [];
    const spin = (text: string) => {
      const record = { texts: [text], persisted: undefined as { symbol?: string; text?: string } | undefined, clears: 0, renders: 0 };
      spinners.push(record);
      return {
        set text(value: string) {
          record.texts.push(value);
        },
        get text() {
          return record.texts[record.texts.length - 1] as string;
        },
        clear() {
          record.clears++;
          return this as never;
        },
        render() {
          record.renders++;
          return this as never;
        },
        stopAndPersist(options?: { symbol?: string; text?: string }) {
          record.persisted = options;
          return this as never;
        },
      };
    };
    return { spinners, spin };
  }

  it('gives each step one spinner whose text is a bar with bytes, rate and time left, and leaves it as a line', () => {
    const { spinners, spin } = fakeSpinners();
    const time = clock();
    const written: string[] = [];
    const progress = terminalProgress(spin, (text) => written.push(text), time.now);
    progress.bytes('pull: memory.raw', 0, 200e6);
    time.advance(1000);
    progress.bytes('pull: memory.raw', 50e6, 200e6);
    time.advance(10); // redrawn at most every 50 ms
    progress.bytes('pull: memory.raw', 51e6, 200e6);
    time.advance(1000);
    progress.bytes('pull: memory.raw', 200e6, 200e6);
    progress.bytes('pull: state.raw', 1e6, 2e6);
    progress.done('pull: 2 blobs');
    expect(spinners).toHaveLength(2);
    expect(spinners[0]?.texts).toEqual([
      'pull: memory.raw [....................] 0.0/200 MB',
      'pull: memory.raw [#####...............] 50.0/200 MB, 50.0 MB/s, 3 s left',
      'pull: memory.raw [####################] 200/200 MB, 99.5 MB/s',
    ]);
    expect(spinners[0]?.persisted).toEqual({ symbol: '✓', text: 'pull: memory.raw [####################] 200/200 MB, 99.5 MB/s' });
    expect(spinners[1]?.persisted).toEqual({ symbol: '✓', text: 'pull: 2 blobs' });
    expect(written).toEqual([]);
  });

  it('writes a line above the spinner, which goes on below it, and marks a step cut short by an error', () => {
    const { spinners, spin } = fakeSpinners();
    const written: string[] = [];
    const progress = terminalProgress(spin, (text) => written.push(text));
    progress.line('before any spinner');
    progress.activity('image', 'unpacking the kernel');
    progress.line('  coldBoot.launching 0.10 s');
    progress.activity('image', 'writing the initramfs');
    progress.fail();
    progress.done(); // nothing left to end
    progress.done('capture: device state written (0.6 MB in 0.02 s)'); // too quick for a spinner
    expect(written).toEqual(['before any spinner\n', '  coldBoot.launching 0.10 s\n', '✓ capture: device state written (0.6 MB in 0.02 s)\n']);
    expect(spinners).toHaveLength(1);
    expect(spinners[0]).toMatchObject({ clears: 1, renders: 1, texts: ['image: unpacking the kernel', 'image: writing the initramfs'] });
    expect(spinners[0]?.persisted).toEqual({ symbol: '✗', text: 'image: writing the initramfs' });
  });

  it('shows the bytes without a bar when the total is not known', () => {
    expect(barText('capture: device state', 3e6, undefined, 1.5e6)).toBe('capture: device state 3.0 MB, 1.5 MB/s');
    expect(barText('capture: device state', 3e6, undefined, undefined)).toBe('capture: device state 3.0 MB');
  });
});
