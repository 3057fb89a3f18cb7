import fs from 'node:fs';
import path from 'node:path';
import { generate } from '@graphql-codegen/cli';
import { describe, expect, it } from 'vitest';
import config from '../../codegen.js';
import { REPO_ROOT } from '../utils/child-server.js';

describe('client codegen', () => {
  it('should match the committed output for schema.graphql and the SDK operations (run `npm run codegen`)', async () => {
    const outputs: readonly { filename: string; content: string }[] = await generate(
      { ...config, cwd: REPO_ROOT, silent: true },
      false,
    );
    expect(outputs.map((output) => path.relative(REPO_ROOT, output.filename)).sort()).toEqual(
      fs
        .readdirSync(path.join(REPO_ROOT, 'src/client/generated'))
        .map((name) => `src/client/generated/${name}`)
        .sort(),
    );
    for (const output of outputs) {
      const committed = fs.readFileSync(path.resolve(REPO_ROOT, output.filename), 'utf8');
      expect(committed, `${output.filename} is stale: run \`npm run codegen\``).toBe(output.content);
    }
  });
});
