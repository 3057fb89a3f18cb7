import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { DEMO_PAGE_DIR } from '../../src/http/demo-page.js';

const CONFIG_FILE = fileURLToPath(new URL('../../src/demo/vite.config.ts', import.meta.url));

let built: Promise<string> | undefined;

/**
 * Builds the demo page as `npm run build` does, once per test process, so the page under test
 * is the current source and not an older dist/. Resolves with the directory it was built into.
 */
export function buildDemoPage(): Promise<string> {
  built ??= build({ configFile: CONFIG_FILE, logLevel: 'warn' }).then(() => DEMO_PAGE_DIR);
  return built;
}
