import type { CodegenConfig } from '@graphql-codegen/cli';

/** Typed documents of the client SDK from the committed schema; `npm run codegen` rewrites them. */
const config: CodegenConfig = {
  schema: './schema.graphql',
  documents: 'src/client/operations.ts',
  // NodeNext resolution needs the extension on the generated relative imports.
  importExtension: '.js',
  ignoreNoDocuments: false,
  generates: {
    'src/client/generated/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        enumsAsTypes: true,
        useTypeImports: true,
        scalars: { DateTime: 'string', JSON: 'unknown' },
      },
    },
  },
};

export default config;
