import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configJsonSchema, configJsonSchemaText } from '../../../adapters/spec/config-json-schema.js';
import { projectRoot } from '../../../adapters/support/project-root.js';

type JsonSchema = { properties?: Record<string, JsonSchema>; items?: JsonSchema; anyOf?: JsonSchema[]; additionalProperties?: unknown; description?: string };

/** Every property of the schema, by its path, through lists and unions. */
function properties(schema: JsonSchema, at = ''): [string, JsonSchema][] {
  const found: [string, JsonSchema][] = [];
  for (const [name, property] of Object.entries(schema.properties ?? {})) found.push([`${at}${name}`, property], ...properties(property, `${at}${name}.`));
  if (schema.items) found.push(...properties(schema.items, `${at.slice(0, -1)}[].`));
  for (const [index, branch] of (schema.anyOf ?? []).entries()) found.push(...properties(branch, `${at}(${index}).`));
  return found;
}

describe('config.schema.json', () => {
  it('is what the schema generates now', async () => {
    const committed = await readFile(join(projectRoot(), 'config.schema.json'), 'utf8');
    expect(committed, 'config.schema.json is out of date: run "npm run schema" and commit it').toBe(configJsonSchemaText());
  });

  it('is a draft 2020-12 schema that refuses unknown fields and explains every one it knows', () => {
    const schema = configJsonSchema() as JsonSchema & { $schema: string; title: string };
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.title).toBe('warmvm config');
    expect(schema.additionalProperties).toBe(false);
    const all = properties(schema);
    expect(all.map(([path]) => path)).toEqual(
      expect.arrayContaining(['$schema', 'image.(2).url', 'image.(2).digest', 'ports[].guest', 'bounds.captureSeconds', 'rotation.(1).secrets']),
    );
    const undescribed = all.filter(([, property]) => !property.description || property.description.length < 20).map(([path]) => path);
    expect(undescribed, 'fields without a description').toEqual([]);
  });
});
