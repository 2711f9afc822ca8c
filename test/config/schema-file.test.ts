// stevedore.schema.json is committed for editors (config.example.yaml's modeline points at
// it): it must be what `stevedore schema` prints for the current config schema.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';

const schemaFile = fileURLToPath(new URL('../../stevedore.schema.json', import.meta.url));

describe('stevedore.schema.json', () => {
  it('is what the current config schema produces', () => {
    // The same call as `stevedore schema` in src/cli.ts; the JSON round trip drops what
    // JSON cannot hold, as printing it does.
    const current: unknown = JSON.parse(JSON.stringify(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' })));
    const committed: unknown = JSON.parse(readFileSync(schemaFile, 'utf8'));
    expect(committed, 'stevedore.schema.json is out of date: run `npm run schema`').toEqual(current);
  });
});
