/** Starts the end-to-end baseline's worker process (compiled worker.ts) and waits until it takes jobs. */
import { inheritedEnv } from '../../lib/local.js';
import { type SpawnedChild, spawnNode } from '../sys.js';

export interface BaselineWorkerOptions {
  /** The compiled worker (CompiledServers.baselineWorker). */
  readonly file: string;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly concurrency: number;
  readonly cwd: string;
  readonly fdLimit: number;
  /** Called with the child as soon as it is spawned, so that it is stopped even if start-up fails. */
  readonly onSpawn: (child: SpawnedChild) => void;
}

const READY_TIMEOUT_MS = 30_000;

export async function startBaselineWorker(options: BaselineWorkerOptions): Promise<SpawnedChild> {
  let ready: () => void = () => {};
  const isReady = new Promise<void>((resolve) => {
    ready = resolve;
  });
  const child = spawnNode({
    name: 'baseline:worker',
    nodeArgs: [options.file],
    env: {
      ...inheritedEnv(),
      REDIS_URL: options.redisUrl,
      REDIS_KEY_PREFIX: options.keyPrefix,
      WORKER_CONCURRENCY: String(options.concurrency),
    },
    cwd: options.cwd,
    fdLimit: options.fdLimit,
    onStdoutLine: (line) => {
      if (line.includes('baseline worker ready')) ready();
    },
  });
  options.onSpawn(child);
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    isReady.then(() => 'ready' as const),
    child.exited.then(() => 'exited' as const),
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), READY_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    throw new Error(
      `baseline worker ${outcome === 'exited' ? 'exited at start' : 'not ready in 30 s'}:\n${child.stderrTail()}`,
    );
  }
  return child;
}
