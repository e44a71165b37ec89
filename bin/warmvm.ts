#!/usr/bin/env node
import { packageVersion } from './version.js';

// `warmvm --version` is what scripts and installers run to check for warmvm: it is answered before
// commander and the commands are loaded (the rest of the CLI costs ~25 ms more to load).
const [flag, ...rest] = process.argv.slice(2);
if ((flag === '--version' || flag === '-V') && rest.length === 0) process.stdout.write(`${packageVersion()}\n`);
else await (await import('./cli.js')).main(process.argv);
