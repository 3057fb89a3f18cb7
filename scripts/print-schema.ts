import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { printSchema } from 'graphql';
import { schema } from '../src/schema/index.js';

/** `schema.graphql` as the schema prints it; the schema-drift test compares the two. */
export function renderSchema(): string {
  return `${printSchema(schema)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const target = fileURLToPath(new URL('../schema.graphql', import.meta.url));
  writeFileSync(target, renderSchema());
  console.log(`wrote ${target}`);
}
