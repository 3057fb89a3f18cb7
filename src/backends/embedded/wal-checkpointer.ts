import { once } from 'node:events';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../logger.js';

/** How often the worker thread checkpoints the WAL into the database file. */
const CHECKPOINT_INTERVAL_MS = 1_000;
/** How long `close` waits for the thread to close its connection before stopping it. */
const CLOSE_TIMEOUT_MS = 2_000;

/**
 * The thread's code (CommonJS, run with `eval`, so that it needs no file of its own in the build):
 * its own connection to the store's file, a PASSIVE checkpoint every interval (it copies what it
 * can without waiting for readers or blocking the writer), and a clean close on request. A failure
 * is reported when checkpoints start failing, not at every one, and again once one works.
 */
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
let failing = false;
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    if (failing) parentPort.postMessage({ recovered: true });
    failing = false;
  } catch (error) {
    if (!failing) parentPort.postMessage({ error: String((error && error.message) || error) });
    failing = true;
  }
}, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message !== 'close') return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

/**
 * WAL checkpoints off the event loop. SQLite checkpoints on its own inside whichever commit takes
 * the WAL past `wal_autocheckpoint` pages — on the thread that commits, so a request waits for
 * the copy and its fsync. Here a worker thread with its own connection checkpoints every second
 * instead, and the store's connections keep the automatic checkpoint only as a far-off safety net
 * ({@link SAFETY_NET_PAGES}), should the thread stop.
 */
export class WalCheckpointer {
  readonly #worker: Worker;

  constructor(file: string, logger: Logger) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { file, driver, intervalMs: CHECKPOINT_INTERVAL_MS },
    });
    this.#worker.unref();
    // Told once when checkpoints start failing (a full disk fails every one) and once when one works again.
    this.#worker.on('message', (message: { error?: string; recovered?: boolean }) => {
      if (message.recovered) logger.info('WAL checkpoints work again');
      else logger.warn('WAL checkpoint failed; the next ones try again', { error: message.error });
    });
    this.#worker.on('error', (err) =>
      logger.error('WAL checkpoint thread stopped; SQLite checkpoints on commit again', { err }),
    );
  }

  /** Closes the thread's connection and ends the thread. */
  async close(): Promise<void> {
    const exited = once(this.#worker, 'exit');
    this.#worker.postMessage('close');
    const timer = setTimeout(() => void this.#worker.terminate(), CLOSE_TIMEOUT_MS);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** WAL pages past which a commit checkpoints by itself (SQLite's default is 1,000: 4 MB). */
export const SAFETY_NET_PAGES = 16_000;
