import type { Logger } from '../../logger.js';
import type { KindRegistry } from '../../tasks/kind-registry.js';
import type { Backend, ProbeResult, TaskEventObserver } from '../../tasks/ports.js';
import { RetentionSchedule } from '../retention-schedule.js';
import { EmbeddedWorkers } from './embedded-workers.js';
import { MemoryBus } from './memory-bus.js';
import { MemoryControl } from './memory-control.js';
import { MemoryRateLimiter } from './memory-rate-limiter.js';
import { storeFile } from './sqlite-file.js';
import { SqliteRepository } from './sqlite-repository.js';
import { SqliteRevocations } from './sqlite-revocations.js';
import { purgeInBatches } from './task-retention.js';
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

/**
 * One process, no other service: SQLite store and log, in-process bus and workers. Throws an
 * error naming `dataDir` and the cause when the store cannot be opened (a new database on a full
 * disk); an existing one that cannot be written starts, not ready, and serves reads.
 */
export function createEmbeddedBackend({
  dataDir,
  eventRetention,
  taskRetentionMs = 0,
  maxRunningPerUser = 0,
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
    logger,
  });
  const workers = new EmbeddedWorkers(repository, kinds, logger, maxRunningPerUser);
  const revocations = new SqliteRevocations({ dataDir });
  const file = storeFile(dataDir);
  const checkpointer = file === null ? null : new WalCheckpointer(file, logger);
  const retention =
    taskRetentionMs > 0
      ? new RetentionSchedule({
          retentionMs: taskRetentionMs,
          purge: purgeInBatches((cutoff, limit) => repository.purgeFinished(cutoff, limit)),
          logger,
        })
      : null;
  retention?.start();
  return {
    tasks: repository,
    bus,
    queue: workers,
    control: new MemoryControl(),
    revocations,
    rateLimiter: (_name, rule) => new MemoryRateLimiter(rule),
    async probe(): Promise<readonly ProbeResult[]> {
      let problem: string | null;
      try {
        problem = repository.problem();
      } catch (error) {
        problem = error instanceof Error ? error.message : String(error);
      }
      return [
        problem === null ? { part: 'store', ok: true } : { part: 'store', ok: false, detail: problem },
        { part: 'bus', ok: true },
      ];
    },
    startWorkers: (concurrency) => workers.start(concurrency),
    stopWorkers: (graceMs = 0) => workers.close(graceMs),
    async close() {
      await workers.close(0);
      await retention?.close();
      await checkpointer?.close();
      repository.close();
      revocations.close();
    },
  };
}
