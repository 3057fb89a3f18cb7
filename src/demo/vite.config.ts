import { fileURLToPath } from 'node:url';
import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

/** Builds the demo page into dist/demo, which the service serves at `/` (src/demo-page.ts). */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  publicDir: false,
  plugins: [vue()],
  define: {
    __VUE_OPTIONS_API__: 'false',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
  },
  build: {
    outDir: fileURLToPath(new URL('../../dist/demo/', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    // Everything is fetched from this origin as files: no inlined data: URLs to allow in the CSP.
    assetsInlineLimit: 0,
  },
  server: {
    // `npx vite --config src/demo/vite.config.ts` while `npm start` runs: edit the page with hot reload.
    proxy: {
      '/graphql': { target: 'http://127.0.0.1:4000', ws: true },
      '/dev/token': 'http://127.0.0.1:4000',
    },
  },
});
