import { loadConfigFile } from '../../adapters/spec/config.js';
import { configJsonSchema, configJsonSchemaText } from '../../adapters/spec/config-json-schema.js';
import type { Output } from '../output.js';

/** `warmvm config schema`: the config file's JSON Schema, exactly the package's config.schema.json. */
export async function configSchemaCommand(options: { output: Output }): Promise<number> {
  options.output.result(configJsonSchema(), configJsonSchemaText().trimEnd());
  return 0;
}

/** `warmvm config check`: the spec a config file resolves to (defaults applied, paths absolute), or its error. */
export async function configCheckCommand(options: { file: string; output: Output }): Promise<number> {
  const spec = await loadConfigFile(options.file);
  // A field the config leaves unset shows as null, so the output names every field there is.
  const nulls = (_key: string, value: unknown): unknown => (value === undefined ? null : value);
  options.output.result(
    JSON.parse(JSON.stringify({ ok: true, file: options.file, spec }, nulls)),
    `config ${options.file} is valid; it resolves to:\n${JSON.stringify(spec, nulls, 2)}`,
  );
  return 0;
}
