// The CLI as users run it: `bin/warmvm.ts` bundled by esbuild into dist/bin/warmvm.js and its chunks
// (dist/bin/chunks/), over what tsc wrote there. Loading ~150 compiled modules one by one cost a start
// ~100 ms more than loading these few chunks; each command's modules stay in chunks of their own, so
// `--help` loads none of them. tsc still type-checks and emits the rest of dist/ (benchmarks, tests).
import { rm } from 'node:fs/promises';
import { build } from 'esbuild';

await rm('dist/bin/chunks', { recursive: true, force: true });
await build({
  entryPoints: ['bin/warmvm.ts'],
  outdir: 'dist/bin',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  // A package's ES module build first: a CommonJS one imported with import() would give only a
  // default export once split into a chunk (hash-wasm's UMD build did), where Node gives named ones.
  mainFields: ['module', 'main'],
  // zstd-napi loads a native addon by a computed path. pino and pino-pretty are loaded from
  // node_modules by require() when the first log line is written (adapters/support/logger.ts), which
  // most runs never do; their transports (worker threads) are not used.
  external: ['zstd-napi', 'pino', 'pino-pretty'],
  // The CommonJS packages bundled in (commander, ws) call require() for Node's own modules.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
