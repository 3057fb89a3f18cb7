import type { Logger } from '../../logger.js';
import type { KindRegistry } from '../../tasks/kind-registry.js';
import type { Backend, ProbeResult, TaskEventObserver } from '../../tasks/ports.js';
import { EmbeddedWorkers } from './embedded-workers.js';
import { MemoryBus } from './memory-bus.js';
import { MemoryControl } from './memory-control.js';
import { MemoryRateLimiter } from './memory-rate-limiter.js';
import { storeFile } from './sqlite-file.js';
import { SqliteRepository } from './sqlite-repository.js';
import { SqliteRevocations } from './sqlite-revocations.js';
import { WalCheckpointer } from './wal-checkpointer.js';

export interface EmbeddedBackendOptions {
  /** Directory of the SQLite file, or `:memory:`. */
  readonly dataDir: string;
  readonly eventRetention: number;
  /** Finished tasks and their events are purged this long after they finished; 0 keeps them. @default 0 */
  readonly taskRetentionMs?: number;
  /** Tasks of one user running at once; 0: no cap. @default 0 */
  readonly maxRunningPerUser?: number;
  readonly kinds: KindRegistry;
  readonly logger: Logger;
  /** Told of every event appended (metrics, logs). */
  readonly observe?: TaskEventObserver | undefined;
}

/** One process, no other service: SQLite store and log, in-process bus and workers. */
export function createEmbeddedBackend({
  dataDir,
  eventRetention,
  kinds,
  logger,
  observe,
}: EmbeddedBackendOptions): Backend {
  const bus = new MemoryBus();
  const repository = new SqliteRepository({
    dataDir,
    eventRetention,
    publish: (event) => bus.publish(event),
    observe,
  });
  const workers = new EmbeddedWorkers(repository, kinds, logger);
  const revocations = new SqliteRevocations({ dataDir });
  const file = storeFile(dataDir);
  const checkpointer = file === null ? null : new WalCheckpointer(file, logger);
  return {
    tasks: repository,
    bus,
    queue: workers,
    control: new MemoryControl(),
    revocations,
    rateLimiter: (_name, rule) => new MemoryRateLimiter(rule),
    async probe(): Promise<readonly ProbeResult[]> {
      try {
        repository.ping();
        return [
          { part: 'store', ok: true },
          { part: 'bus', ok: true },
        ];
      } catch (error) {
        const detail = error instanceof Error ? error.message : String(error);
        return [
          { part: 'store', ok: false, detail },
          { part: 'bus', ok: true },
        ];
      }
    },
    startWorkers: (concurrency) => workers.start(concurrency),
    stopWorkers: (graceMs = 0) => workers.close(graceMs),
    async close() {
      await workers.close(0);
      await checkpointer?.close();
      repository.close();
      revocations.close();
    },
  };
}
