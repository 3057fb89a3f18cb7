import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // One copy of graphql: its ESM and CJS builds in one process fail graphql's instanceof checks.
  resolve: { alias: { graphql: fileURLToPath(new URL('./node_modules/graphql/index.js', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
