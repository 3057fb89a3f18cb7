import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * Typed documents of the client SDK from the committed schema, and the trusted documents the server
 * accepts by hash (`persisted-documents.json`); `npm run codegen` rewrites them.
 */
const config: CodegenConfig = {
  schema: './schema.graphql',
  documents: 'src/client/operations.ts',
  // NodeNext resolution needs the extension on the generated relative imports.
  importExtension: '.js',
  ignoreNoDocuments: false,
  generates: {
    'src/client/generated/': {
      preset: 'client',
      presetConfig: {
        fragmentMasking: false,
        // persisted-documents.json (sha256 → document) is what the server accepts by hash.
        persistedDocuments: { hashAlgorithm: 'sha256' },
      },
      config: {
        enumsAsTypes: true,
        useTypeImports: true,
        scalars: { DateTime: 'string', JSON: 'unknown' },
      },
    },
  },
};

export default config;
