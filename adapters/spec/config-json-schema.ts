import * as z from 'zod/mini';
import { configSchema } from './config-schema.js';

// Apart from the schema: a start parses configs but never needs zod's JSON Schema code.

/** The JSON Schema (draft 2020-12) of the config file, as `config.schema.json` holds it. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'throw' });
}

/** The text of `config.schema.json`: what `warmvm config schema` prints. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
