// The layout rules of ../shared/DESIGN.md (Layout), checked by `npm run arch` (part of `npm test`).
// Type-only imports count (tsPreCompilationDeps): a type is a dependency too.
// test/architecture/rules.test.ts proves every rule below on a fixture tree with one violation each.

/** Production folders: what ships in dist/ and runs outside the tests. */
const PRODUCTION = '^(bin|machines|actors|steps|adapters|shapes)/';
/** xstate as it resolves from node_modules (runtime build or its .d.ts). */
const XSTATE = '(^|/)node_modules/xstate/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'machines-only-xstate',
      comment: 'machines/ is pure XState: it may import xstate, machines/ and the shared leaf shapes/; no Node, no adapters, no other package.',
      severity: 'error',
      from: { path: '^machines/' },
      to: { pathNot: [`^(machines|shapes)/`, XSTATE] },
    },
    {
      name: 'actors-only-machines-steps-shapes',
      comment:
        'actors/ are one-line actor logic over a steps interface: xstate, actors/, machines/, steps/ and shapes/ only; never adapters/ (not even a type), bin/, Node or another package.',
      severity: 'error',
      from: { path: '^actors/' },
      to: { pathNot: [`^(actors|machines|steps|shapes)/`, XSTATE] },
    },
    {
      name: 'actors-machines-steps-types-only',
      comment: 'actors/ take from machines/ their event/output types and from steps/ their interfaces: type-only imports (`import type`).',
      severity: 'error',
      from: { path: '^actors/' },
      to: { path: '^(machines|steps)/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'steps-not-to-bin-or-actors',
      comment: 'steps/ orchestrate adapters/; the CLI (bin/) and the actors that call steps sit above them.',
      severity: 'error',
      from: { path: '^steps/' },
      to: { path: '^(bin|actors)/' },
    },
    {
      name: 'steps-machines-types-only',
      comment: "steps/ may name a machine's result types (prefer not), but never run machine code.",
      severity: 'error',
      from: { path: '^steps/' },
      to: { path: '^machines/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'adapters-not-up',
      comment: 'adapters/ do the side effects and know nothing of machines/, actors/, steps/ or bin/ above them.',
      severity: 'error',
      from: { path: '^adapters/' },
      to: { path: '^(machines|actors|steps|bin)/' },
    },
    {
      name: 'shapes-leaf',
      comment: 'shapes/ is the shared leaf everything may import: it imports nothing outside shapes/, not even node:.',
      severity: 'error',
      from: { path: '^shapes/' },
      to: { pathNot: '^shapes/' },
    },
    {
      name: 'no-circular',
      comment: 'No cycles anywhere, type-only imports included.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'Every import resolves to a file or an installed package.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'production-not-to-dev-dep',
      comment: 'What ships must not need a devDependency at run time (type-only imports are erased, so they may).',
      severity: 'error',
      from: { path: PRODUCTION },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-non-package-json',
      comment: 'A package imported but not in package.json works only by accident (hoisting).',
      severity: 'error',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'production-not-to-test-or-bench',
      comment: 'Shipped code never reaches into test/ or bench/.',
      severity: 'error',
      from: { path: PRODUCTION },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.test.json' },
    doNotFollow: { path: ['node_modules'] },
    exclude: { path: ['^dist/', '^test/traces/runs/', '^test/fixtures/'] },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    skipAnalysisNotInRules: true,
    cache: false,
    progress: { type: 'none' },
  },
};
