import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseConfig from 'dependency-cruiser/config-utl/extract-depcruise-config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Proves each rule of .dependency-cruiser.cjs (what `npm run arch` holds the tree to) on a small
 * tree written here: files that obey the rules in every folder, and one deliberate violation per
 * rule. The tree is written to a temp folder rather than kept under test/: tsconfig.test.json
 * type-checks every .ts under test/, and a deliberate violation (an unresolvable import) fails tsc.
 */
const FIXTURE: Record<string, string[]> = {
  'package.json': [JSON.stringify({ name: 'fixture', type: 'module', dependencies: { xstate: '*' }, devDependencies: { vitest: '*' } })],
  // What obeys the rules: each folder imports what DESIGN.md's Layout lets it.
  'shapes/codes.ts': ["export const CODES = ['E_ONE'] as const;"],
  'shapes/code.ts': ["import type { CODES } from './codes.js';", 'export type Code = (typeof CODES)[number];'],
  'machines/helper.ts': ["import type { Code } from '../shapes/code.js';", 'export const helper = (code: Code) => code;'],
  'machines/good.ts': [
    "import { setup } from 'xstate';",
    "import { helper } from './helper.js';",
    "export const machine = setup({}).createMachine({ id: helper('E_ONE') });",
    'export type Out = { ok: true };',
  ],
  'adapters/fs/read.ts': [
    "import { readFile } from 'node:fs/promises';",
    "import { CODES } from '../../shapes/codes.js';",
    "export const read = (path: string) => readFile(path, 'utf8').then(() => CODES[0]);",
  ],
  'adapters/fs/write.ts': ["import { read } from './read.js';", 'export const write = read;'],
  'steps/good.ts': [
    "import { write } from '../adapters/fs/write.js';",
    "import type { Out } from '../machines/good.js';",
    'export interface GoodSteps { run(): Promise<Out> }',
    'export const steps = { write };',
  ],
  'actors/good.ts': [
    "import { fromPromise } from 'xstate';",
    "import type { Out } from '../machines/good.js';",
    "import type { GoodSteps } from '../steps/good.js';",
    'export const actors = (steps: GoodSteps) => ({ run: fromPromise<Out>(() => steps.run()) });',
  ],
  'bin/good.ts': [
    "import { actors } from '../actors/good.js';",
    "import { steps } from '../steps/good.js';",
    "import { machine } from '../machines/good.js';",
    'export const all = [actors, steps, machine];',
  ],
  'test/helper.ts': ['export const fake = 1;'],
  'test/good.test.ts': ["import { it } from 'vitest';", "import { fake } from './helper.js';", "import { all } from '../bin/good.js';", "it('runs', () => void [fake, all]);"],
  // One deliberate violation per rule.
  'machines/uses-node.ts': ["import { readFileSync } from 'node:fs';", 'export const read = readFileSync;'],
  'actors/uses-adapter-type.ts': ["import type { read } from '../adapters/fs/read.js';", 'export type Read = typeof read;'],
  'actors/uses-machine-value.ts': ["import { helper } from '../machines/helper.js';", 'export const again = helper;'],
  'steps/uses-actor.ts': ["import { actors } from '../actors/good.js';", 'export const again = actors;'],
  'steps/uses-machine-value.ts': ["import { helper } from '../machines/helper.js';", 'export const again = helper;'],
  'adapters/fs/uses-machine-type.ts': ["import type { Out } from '../../machines/good.js';", 'export type Again = Out;'],
  'shapes/uses-node.ts': ["import type { Buffer } from 'node:buffer';", 'export type Bytes = Buffer;'],
  'adapters/loop/one.ts': ["import type { Two } from './two.js';", 'export interface One { two?: Two }'],
  'adapters/loop/two.ts': ["import type { One } from './one.js';", 'export interface Two { one?: One }'],
  'bin/uses-missing.ts': ["import { gone } from './missing.js';", 'export const again = gone;'],
  'adapters/fs/uses-dev-dep.ts': ["import { expect } from 'vitest';", 'export const again = expect;'],
  'bin/uses-undeclared.ts': ["import pino from 'pino';", 'export const again = pino;'],
  'adapters/fs/uses-test.ts': ["import { fake } from '../../test/helper.js';", 'export const again = fake;'],
};

/** Every violation the tree above must show, and no other: rule, from, to (a package by its name). */
const EXPECTED = [
  ['machines-only-xstate', 'machines/uses-node.ts', 'fs'],
  ['actors-only-machines-steps-shapes', 'actors/uses-adapter-type.ts', 'adapters/fs/read.ts'],
  ['actors-machines-steps-types-only', 'actors/uses-machine-value.ts', 'machines/helper.ts'],
  ['steps-not-to-bin-or-actors', 'steps/uses-actor.ts', 'actors/good.ts'],
  ['steps-machines-types-only', 'steps/uses-machine-value.ts', 'machines/helper.ts'],
  ['adapters-not-up', 'adapters/fs/uses-machine-type.ts', 'machines/good.ts'],
  ['shapes-leaf', 'shapes/uses-node.ts', 'buffer'],
  ['no-circular', 'adapters/loop/one.ts', 'adapters/loop/two.ts'],
  ['not-to-unresolvable', 'bin/uses-missing.ts', './missing.js'],
  ['production-not-to-dev-dep', 'adapters/fs/uses-dev-dep.ts', 'vitest'],
  ['no-non-package-json', 'bin/uses-undeclared.ts', 'pino'],
  ['production-not-to-test-or-bench', 'adapters/fs/uses-test.ts', 'test/helper.ts'],
];

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const packageName = (path: string) => /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1] ?? path;

describe('architecture rules (.dependency-cruiser.cjs)', () => {
  let dir: string;
  let ruleNames: string[];
  let found: string[][];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warmvm-arch-'));
    for (const [path, lines] of Object.entries(FIXTURE)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), `${lines.join('\n')}\n`);
    }
    // The fixture's imports of xstate, vitest and pino resolve to the project's own packages.
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    const config = await extractDepcruiseConfig(join(ROOT, '.dependency-cruiser.cjs'));
    ruleNames = (config.forbidden ?? []).map((rule) => rule.name ?? '');
    // tsConfig names the project's tsconfig; the fixture resolves `./x.js` to `./x.ts` without one.
    const { tsConfig: _projectOnly, ...options } = config.options ?? {};
    const output = await cruise(['.'], { ...options, baseDir: dir, validate: true, ruleSet: { forbidden: config.forbidden ?? [] }, outputType: 'json' });
    const result = JSON.parse(output.output as string) as ICruiseResult;
    found = result.summary.violations.map((violation) => [violation.rule.name, violation.from, packageName(violation.to)]);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports each rule once, on its deliberate violation, and nothing on the files that obey', () => {
    expect([...found].sort()).toEqual([...EXPECTED].sort());
  });

  it('leaves no rule of the config unproven', () => {
    expect([...ruleNames].sort()).toEqual(EXPECTED.map(([rule]) => rule).sort());
  });
});
