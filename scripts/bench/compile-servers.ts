/** Compiles the servers to plain JavaScript before they are measured. */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build as esbuild } from 'esbuild';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url));

/** The servers as plain JavaScript: the service as `npm start` runs it, and the baseline. */
export interface CompiledServers {
  readonly service: string;
  readonly baseline: string;
}

/**
 * Compiles both servers before they are measured. Under tsx every named function is wrapped to keep
 * its name, which makes each closure cost about 250 B more heap; `npm start` runs compiled code.
 */
export async function compileServers(): Promise<CompiledServers> {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, stdio: 'inherit' });
  // Inside the repository, so that its packages resolve from node_modules.
  const baseline = path.join(REPO_ROOT, 'build', 'bench', 'baseline-server.mjs');
  await esbuild({
    entryPoints: [path.join(BENCH_DIR, 'baseline-server.ts')],
    outfile: baseline,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  return { service: path.join(REPO_ROOT, 'build', 'main.js'), baseline };
}
