import type { Logger } from '../../logger.js';
import type { KindRegistry } from '../../tasks/kind-registry.js';
import { MemoryBus } from '../memory/memory-bus.js';
import type { Backend } from '../ports.js';
import { EmbeddedWorkers } from './embedded-workers.js';
import { SqliteRepository } from './sqlite-repository.js';

export interface EmbeddedBackendOptions {
  /** Directory of the SQLite file, or `:memory:`. */
  readonly dataDir: string;
  readonly eventRetention: number;
  readonly kinds: KindRegistry;
  readonly logger: Logger;
}

/** One process, no other service: SQLite store and log, in-process bus and workers. */
export function createEmbeddedBackend({
  dataDir,
  eventRetention,
  kinds,
  logger,
}: EmbeddedBackendOptions): Backend {
  const bus = new MemoryBus();
  const repository = new SqliteRepository({
    dataDir,
    eventRetention,
    publish: (event) => bus.publish(event),
  });
  const workers = new EmbeddedWorkers(repository, kinds, logger);
  return {
    tasks: repository,
    bus,
    queue: workers,
    startWorkers: (concurrency) => workers.start(concurrency),
    async close() {
      await workers.close();
      repository.close();
    },
  };
}
