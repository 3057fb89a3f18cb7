/** Compiles the servers to plain JavaScript before they are measured. */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build as esbuild } from 'esbuild';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url));

/** The servers as plain JavaScript: the service as `npm start` runs it, and the baseline's processes. */
export interface CompiledServers {
  readonly service: string;
  readonly baseline: string;
  /** The end-to-end baseline's BullMQ worker process. */
  readonly baselineWorker: string;
}

/**
 * Compiles the servers before they are measured. Under tsx every named function is wrapped to keep
 * its name, which makes each closure cost about 250 B more heap; `npm start` runs compiled code.
 */
export async function compileServers(): Promise<CompiledServers> {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, stdio: 'inherit' });
  // Inside the repository, so that its packages resolve from node_modules.
  const outdir = path.join(REPO_ROOT, 'build', 'bench');
  await esbuild({
    entryPoints: {
      'baseline-server': path.join(BENCH_DIR, 'baseline-server.ts'),
      'baseline-worker': path.join(BENCH_DIR, 'e2e-baseline', 'worker.ts'),
    },
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  return {
    service: path.join(REPO_ROOT, 'build', 'main.js'),
    baseline: path.join(outdir, 'baseline-server.mjs'),
    baselineWorker: path.join(outdir, 'baseline-worker.mjs'),
  };
}
