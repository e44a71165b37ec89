import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cli, E2E_HOME, parse, startCli } from '../helpers/cli.js';
import { caseConfig, corruptMemory, removeSnapshotOf } from '../helpers/store-check.js';

/*
 * The inspector in a real browser (Debian's Chromium through playwright-core) on real runs: a
 * resume watched live to healthy (its statechart lit along the path taken, a waterfall of the run),
 * a forced fallback whose reason and fallback edge are on the page, and a recorded trace stepped
 * through with `warmvm inspect`. Screenshots go under the e2e home (outside the repository); their
 * paths are printed. The page's SVG carries data- attributes for these checks: a state's
 * `data-state`, `data-visited`, `data-active`; an arrow's `data-edge` (from->to), `data-kinds`,
 * `data-taken`; a waterfall bar's `data-depth` and `data-ms`.
 */
const CHROMIUM = '/usr/bin/chromium';
const TIMEOUT = 240_000;
const SHOTS = join(E2E_HOME, 'screenshots');
const names = ['insp-live', 'insp-fallback'];
/** Each case's own config, so its own config key and snapshot (the Stately case resumes insp-live's). */
const configs: Record<string, string> = {};

let browser: Browser;
/** Commands still serving: a failed assertion must not leave one running into the next test. */
const serving_: { interrupt(): Promise<unknown> }[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run "bash scripts/setup.sh --tests" (it installs Debian's chromium)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  await mkdir(SHOTS, { recursive: true });
  for (const name of names) {
    configs[name] = await caseConfig(name);
    await cli(['stop', '--name', name]);
    await removeSnapshotOf(name);
    await cli(['reset', '--name', name, '--snapshot']);
  }
}, 120_000);

afterEach(async () => {
  for (const run of serving_.splice(0)) await run.interrupt();
});

afterAll(async () => {
  await browser?.close();
  for (const name of names) await cli(['stop', '--name', name]);
});

/** A command that serves the inspector: its URL as soon as it is printed, and a way to end it with Ctrl-C. */
function serving(args: string[]) {
  const child = startCli(args);
  let stderr = '';
  const url = new Promise<string>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const found = /http:\/\/127\.0\.0\.1:\d+\/[\w-]+\//.exec(stderr);
      if (found) resolve(found[0]);
    });
    void child.then((result) => reject(new Error(`warmvm ended before serving the inspector (exit ${result.exitCode}):\n${stderr}`)));
  });
  let ended: Promise<ReturnType<typeof parse>> | undefined;
  const run = {
    url,
    stderr: () => stderr,
    interrupt() {
      ended ??= (async () => {
        child.kill('SIGINT');
        return parse(await child);
      })();
      return ended;
    },
  };
  serving_.push(run);
  return run;
}

/** Records every state the page shows as active, in order, from the first paint on. */
async function watchActiveStates(page: Page): Promise<void> {
  // A string, run in the page: the test's own TypeScript has no DOM types.
  await page.addInitScript({
    content: `
      window.seenActive = [];
      new MutationObserver(() => {
        const active = [...document.querySelectorAll('[data-active="true"]')].map((node) => node.getAttribute('data-state'));
        const deepest = active[active.length - 1];
        if (deepest && window.seenActive[window.seenActive.length - 1] !== deepest) window.seenActive.push(deepest);
      }).observe(document, { subtree: true, childList: true, attributes: true });`,
  });
}

/** What the SVG shows, read from its data- attributes. */
async function drawn(page: Page) {
  return (await page.evaluate(`(() => {
    const all = (selector, attribute) => [...document.querySelectorAll(selector)].map((node) => node.getAttribute(attribute));
    return {
      chart: document.querySelector('svg[data-chart]')?.getAttribute('data-chart'),
      states: all('svg[data-chart] g.node', 'data-state'),
      visited: all('svg[data-chart] g.node[data-visited="true"]', 'data-state'),
      edges: all('svg[data-chart] g.edge', 'data-edge'),
      labels: [...document.querySelectorAll('svg[data-chart] g.edge text')].map((node) => node.textContent),
      taken: all('svg[data-chart] g.edge[data-taken="true"]', 'data-edge'),
      fallbacksTaken: all('svg[data-chart] g.edge.k-fallback[data-taken="true"]', 'data-edge'),
      rows: [...document.querySelectorAll('svg[data-waterfall] g.wf-row')].map((node) => ({ state: node.getAttribute('data-state'), depth: Number(node.getAttribute('data-depth')), ms: Number(node.getAttribute('data-ms')) })),
      cursor: document.querySelector('svg[data-waterfall] [data-cursor]')?.getAttribute('data-cursor'),
      future: document.querySelectorAll('svg[data-waterfall] g.wf-row.future').length,
    };
  })()`)) as {
    chart: string | undefined;
    states: string[];
    visited: string[];
    edges: string[];
    labels: string[];
    taken: string[];
    fallbacksTaken: string[];
    rows: { state: string; depth: number; ms: number }[];
    cursor: string | undefined;
    future: number;
  };
}

/** The newest trace of `name` that is a start's that ended healthy: trace.jsonl or one it kept in traces/. */
async function lastStartTrace(name: string): Promise<string> {
  const folder = join(E2E_HOME, 'instances', name);
  const kept = (await readdir(join(folder, 'traces')))
    .filter((file) => file.endsWith('.jsonl'))
    .sort()
    .reverse();
  for (const file of [join(folder, 'trace.jsonl'), ...kept.map((file) => join(folder, 'traces', file))]) {
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    if (lines[0]?.includes('"machine":"start"') && lines.some((line) => line.includes('"state":"start.running"'))) return file;
  }
  throw new Error(`no healthy start's trace of ${name} in ${folder}`);
}

async function screenshot(page: Page, name: string): Promise<string> {
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`inspector screenshot: ${file}`);
  return file;
}

describe('the inspector in a real browser', () => {
  it(
    'shows a resume live, its active state moving to healthy, and keeps the page until Ctrl-C',
    async () => {
      const name = 'insp-live';
      const first = await cli(['start', '--name', name, '--config', configs[name] as string, '--json']);
      expect(first.json.outcome, first.stderr).toBe('healthy');
      await cli(['stop', '--name', name]);

      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await watchActiveStates(page);
      const run = serving(['start', '--name', name, '--config', configs[name] as string, '--inspect', '--json']);
      await page.goto(await run.url);
      await page.locator('#status.healthy').waitFor({ timeout: 60_000 });
      const seen = (await page.evaluate('window.seenActive')) as string[];
      expect(seen.at(-1)).toBe('start.running');
      // It moved through the resume to healthy: the resume's states were lit on the way.
      expect(seen).toEqual(expect.arrayContaining(['resume.incoming', 'resume.healthy']));
      expect(seen.indexOf('resume.incoming')).toBeLessThan(seen.indexOf('resume.healthy'));
      expect(await page.locator('#events tr').count()).toBeGreaterThan(5);
      expect(await page.locator('[data-channel="exec"]').textContent()).toContain('rotate-secrets');
      expect(await page.locator('[data-channel="qmp"]').textContent()).not.toBe('—');
      expect(await page.locator('[data-channel="health"]').textContent()).toContain('HTTP 200');
      expect(await page.locator('#note').textContent()).toContain('Ctrl-C');
      // No secret reaches the page: the values just written for the user are not in it.
      const secrets = (await import('node:fs')).readFileSync(join(E2E_HOME, 'instances', name, 'secrets.env'), 'utf8');
      const html = await page.content();
      for (const line of secrets.trim().split('\n')) expect(html).not.toContain(line.split('=')[1]);
      // The run over, the chart follows it to start.running; the resume machine is a tab away.
      await page.locator('[data-tab="resume"]').click();
      await page.locator('svg[data-chart="resume"]').waitFor({ timeout: 10_000 });
      const resume = await drawn(page);
      // Soft: each of these checks reports on its own.
      expect
        .soft(resume.states)
        .toEqual(expect.arrayContaining(['resume.preparing', 'resume.incoming', 'resume.rotating', 'resume.probing', 'resume.healthy', 'resume.stopping', 'resume.failed']));
      expect.soft(resume.edges).toEqual(expect.arrayContaining(['resume.incoming->resume.paused', 'resume.incoming->resume.stopping', 'resume.stopping->resume.failed']));
      expect.soft(resume.labels.some((label) => /after \d+(\.\d+)? s/.test(label) && label.includes('Ctrl-C') && label.includes('error'))).toBe(true);
      // The path taken lit: the states passed through, the arrows between them, and no failure arrow.
      expect.soft(resume.visited).toEqual(expect.arrayContaining(['resume.preparing', 'resume.incoming', 'resume.rotating', 'resume.probing', 'resume.healthy']));
      expect.soft(resume.visited).not.toContain('resume.stopping');
      expect
        .soft(resume.taken)
        .toEqual(
          expect.arrayContaining(['resume.preparing->resume.launching', 'resume.incoming->resume.paused', 'resume.rotating->resume.probing', 'resume.probing->resume.healthy']),
        );
      expect.soft(resume.taken.filter((edge) => edge.endsWith('->resume.stopping'))).toEqual([]);
      await screenshot(page, 'inspector-live-resume');
      // The command waited for Ctrl-C, and ends cleanly on it, QEMU left running.
      expect(run.stderr()).toContain('Press Ctrl-C to end');
      const ended = await run.interrupt();
      expect(ended.exitCode).toBe(0);
      expect(ended.json).toMatchObject({ outcome: 'healthy', path: 'resume', inspectUrl: await run.url });
      // The waterfall: the root machine's bars add up to the run's own total (within 5 %), the resume's under it.
      const total = (ended.json.seconds as { total: number }).total * 1000;
      const top = resume.rows.filter((row) => row.depth === 0);
      const sum = top.reduce((all, row) => all + row.ms, 0);
      expect.soft(Math.abs(sum - total) / total, `bars sum to ${sum} ms, the run took ${total} ms`).toBeLessThanOrEqual(0.05);
      expect.soft(resume.rows.filter((row) => row.depth === 1).map((row) => row.state)).toEqual(expect.arrayContaining(['resume.incoming', 'resume.rotating', 'resume.healthy']));
      expect.soft(top.at(-1)?.state).toBe('start.running');
      await page.close();
    },
    TIMEOUT,
  );

  it(
    'shows the fallback reason when a resume falls back to a cold boot',
    async () => {
      const name = 'insp-fallback';
      const config = configs[name] as string;
      const first = await cli(['start', '--name', name, '--config', config, '--json']);
      expect(first.json.outcome, first.stderr).toBe('healthy');
      await cli(['stop', '--name', name]);
      // The memory file overwritten in place: its changed times make preparing checksum it, and it does not match.
      await corruptMemory(name);

      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const run = serving(['start', '--name', name, '--config', config, '--inspect', '--json']);
      await page.goto(await run.url);
      await page.locator('#status.healthy').waitFor({ timeout: 120_000 });
      expect(await page.locator('#fallback').isVisible()).toBe(true);
      expect(await page.locator('#fallbackText').textContent()).toMatch(/resume\.preparing: .*(corrupt|bytes|checksum)/);
      // The start machine's chart (the run ended in start.running) with the fallback edge taken.
      await page.locator('svg[data-chart="start"]').waitFor({ timeout: 10_000 });
      const start = await drawn(page);
      expect.soft(start.fallbacksTaken.length, `taken: ${start.taken.join(', ')}`).toBeGreaterThanOrEqual(1);
      expect.soft(start.fallbacksTaken.every((edge) => edge.startsWith('start.resume->'))).toBe(true);
      expect.soft(start.taken).toEqual(expect.arrayContaining(['start.coldBoot->start.capture', 'start.capture->start.resume', 'start.resume->start.running']));
      expect.soft(start.visited).toEqual(expect.arrayContaining(['start.resume', 'start.coldBoot', 'start.capture', 'start.running']));
      await screenshot(page, 'inspector-fallback');
      const ended = await run.interrupt();
      expect(ended.json).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume', fallbackReason: expect.stringContaining('resume.preparing') });
      await page.close();
    },
    TIMEOUT,
  );

  it(
    '--inspect=stately with no Stately server says so, and the start runs and exits as without it',
    async () => {
      const name = 'insp-live';
      await cli(['stop', '--name', name]);
      const result = await cli(['start', '--name', name, '--config', configs[name] as string, '--inspect=stately:ws://127.0.0.1:9', '--json']);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.json).toMatchObject({ outcome: 'healthy', path: 'resume' });
      expect(result.stderr).toContain('no Stately inspector answers at ws://127.0.0.1:9');
      await cli(['stop', '--name', name]);
    },
    TIMEOUT,
  );

  it(
    'replays a recorded trace with warmvm inspect, stepping back through it',
    async () => {
      // The previous test's start is the instance's latest trace: a fallback.
      const name = 'insp-fallback';
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const run = serving(['inspect', '--name', name]);
      await page.goto(await run.url);
      await page.locator('#status.healthy').waitFor({ timeout: 30_000 });
      expect(await page.locator('#replay').isVisible()).toBe(true);
      expect(await page.locator('[data-active="true"]').last().getAttribute('data-state')).toBe('start.running');
      // Back to the first steps: the run was then still choosing, not healthy.
      const atEnd = await drawn(page);
      await page.locator('#cursor').fill('4');
      expect(await page.locator('[data-active="true"]').last().getAttribute('data-state')).toBe('start.choosing');
      expect(await page.locator('#status').textContent()).toBe('replaying');
      // The waterfall keeps the whole run; its cursor moved back to the fifth state's time.
      const atStep = await drawn(page);
      expect.soft(atStep.rows.length).toBe(atEnd.rows.length);
      expect.soft(Number(atStep.cursor)).toBeLessThan(Number(atEnd.cursor));
      expect.soft(atStep.future).toBeGreaterThan(0);
      expect.soft(atEnd.future).toBe(0);
      await screenshot(page, 'inspector-replay');
      const ended = await run.interrupt();
      expect(ended.exitCode).toBe(0);
      await page.close();
      expect((await readdir(SHOTS)).filter((file) => file.endsWith('.png')).length).toBeGreaterThanOrEqual(3);
    },
    TIMEOUT,
  );

  it(
    'compares two recorded runs side by side with warmvm inspect A B: the diff of trace diff, both paths lit on the machines',
    async () => {
      // A: insp-live's last resume (its trace.jsonl is a stop's by now: the start is among its kept traces). B: the fallback.
      const a = await lastStartTrace('insp-live');
      const b = join(E2E_HOME, 'instances', 'insp-fallback', 'trace.jsonl');
      const expected = await cli(['trace', 'diff', a, b, '--json']);
      expect(expected.exitCode, expected.stderr).toBe(0);
      const diff = expected.json as { rows: { state: string; occurrence: number; aMs?: number; bMs?: number; only?: string }[]; summary: { diffMs: number } };

      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const run = serving(['inspect', a, b, '--json']);
      await page.goto(await run.url);
      await page.locator('svg[data-chart="start"]').waitFor({ timeout: 30_000 });
      const shown = (await page.evaluate(`(() => {
        const all = (selector, attribute) => [...document.querySelectorAll(selector)].map((node) => node.getAttribute(attribute));
        const number = (node, attribute) => node.hasAttribute(attribute) ? Number(node.getAttribute(attribute)) : undefined;
        const svg = document.querySelector('svg[data-side-by-side]');
        return {
          status: document.querySelector('#status').className,
          pathA: document.querySelector('[data-path="a"]').textContent,
          pathB: document.querySelector('[data-path="b"]').textContent,
          runs: document.querySelector('#runs').textContent,
          verdict: document.querySelector('#verdict').textContent,
          spanMs: Number(svg.getAttribute('data-span-ms')),
          rows: [...svg.querySelectorAll('g.cmp-row')].map((row) => ({
            state: row.getAttribute('data-state'), occurrence: Number(row.getAttribute('data-occurrence')),
            aMs: number(row, 'data-a-ms'), bMs: number(row, 'data-b-ms'), only: row.getAttribute('data-only') || undefined,
            aWidth: row.querySelector('[data-bar="a"]') ? Number(row.querySelector('[data-bar="a"]').getAttribute('width')) : undefined,
            bWidth: row.querySelector('[data-bar="b"]') ? Number(row.querySelector('[data-bar="b"]').getAttribute('width')) : undefined,
          })),
          fallbackA: all('svg[data-chart] g.edge.k-fallback[data-taken-a="true"]', 'data-edge'),
          fallbackB: all('svg[data-chart] g.edge.k-fallback[data-taken-b="true"]', 'data-edge'),
          both: all('svg[data-chart] g.edge[data-taken-a="true"][data-taken-b="true"]', 'data-edge'),
          nodes: Object.fromEntries([...document.querySelectorAll('svg[data-chart] g.node')].map((node) => [node.getAttribute('data-state'), node.getAttribute('data-in')])),
        };
      })()`)) as {
        status: string;
        pathA: string;
        pathB: string;
        runs: string;
        verdict: string;
        spanMs: number;
        rows: { state: string; occurrence: number; aMs?: number; bMs?: number; only?: string; aWidth?: number; bWidth?: number }[];
        fallbackA: string[];
        fallbackB: string[];
        both: string[];
        nodes: Record<string, string>;
      };
      // The page draws trace diff's rows, state by state, in its order.
      expect
        .soft(shown.rows.map(({ state, occurrence, aMs, bMs, only }) => ({ state, occurrence, aMs, bMs, only })))
        .toEqual(diff.rows.map(({ state, occurrence, aMs, bMs, only }) => ({ state, occurrence, aMs, bMs, only })));
      expect.soft(shown.rows.filter((row) => row.only === 'b').map((row) => row.state)).toEqual(expect.arrayContaining(['start.coldBoot', 'coldBoot.booting', 'start.capture']));
      // One time axis for both: the widest bar each run has in a state both ran is as long, against the other, as its time.
      const both = shown.rows
        .filter((row) => row.aMs !== undefined && row.bMs !== undefined)
        .sort((x, y) => Math.min(y.aMs ?? 0, y.bMs ?? 0) - Math.min(x.aMs ?? 0, x.bMs ?? 0))[0];
      expect(both, 'a state both runs spent time in').toBeDefined();
      if (both?.aWidth !== undefined && both.bWidth !== undefined && both.aMs !== undefined && both.bMs !== undefined) {
        expect.soft(both.aWidth / both.bWidth, `${both.state}: bars ${both.aWidth} and ${both.bWidth} for ${both.aMs} and ${both.bMs} ms`).toBeCloseTo(both.aMs / both.bMs, 1);
      }
      // The paths, the fallback only B took, what both took, the verdict.
      expect.soft(shown.status).toBe('slower');
      expect.soft(shown.verdict).toMatch(/^B took [\d.]+ s longer than A/);
      expect.soft(shown.pathA).toBe('resume → running');
      expect.soft(shown.pathB).toMatch(/^resume \(failed\) → .*coldBoot → capture → resume → running$/);
      expect.soft(shown.runs).toMatch(/fell back: resume\.preparing: /);
      expect.soft(shown.fallbackA).toEqual([]);
      expect.soft(shown.fallbackB.length).toBeGreaterThanOrEqual(1);
      expect.soft(shown.both).toContain('start.resume->start.running');
      expect.soft(shown.nodes).toMatchObject({ 'start.resume': 'both', 'start.coldBoot': 'b', 'start.capture': 'b', 'start.running': 'both' });
      await screenshot(page, 'inspector-compare');
      // The resume machine, a tab away: both runs went through it; only B's failed resume stopped.
      await page.locator('[data-tab="resume"]').click();
      await page.locator('svg[data-chart="resume"]').waitFor({ timeout: 10_000 });
      const resumeNodes = (await page.evaluate(
        `Object.fromEntries([...document.querySelectorAll('svg[data-chart] g.node')].map((node) => [node.getAttribute('data-state'), node.getAttribute('data-in')]))`,
      )) as Record<string, string>;
      expect.soft(resumeNodes).toMatchObject({ 'resume.preparing': 'both', 'resume.rotating': 'both', 'resume.healthy': 'both', 'resume.stopping': 'b' });
      await screenshot(page, 'inspector-compare-resume');
      const ended = await run.interrupt();
      expect(ended.exitCode).toBe(0);
      expect(ended.json).toMatchObject({ url: await run.url, a, b, summary: { diffMs: diff.summary.diffMs } });
      await page.close();
    },
    TIMEOUT,
  );
});
