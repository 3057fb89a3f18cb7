/**
 * The baseline's worker process: a BullMQ `Worker` (WORKER_CONCURRENCY jobs at once, default 32)
 * that runs each echo job by PUBLISHing the completion the service would send on the job's user's
 * channel, where the baseline server pushes it to that user's sockets.
 *
 * Environment: REDIS_URL, REDIS_KEY_PREFIX (the queue under `{<prefix>:q}`, channels
 * `<prefix>:{u:<user>}:live`), WORKER_CONCURRENCY. Prints "baseline worker ready" once it takes jobs.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisKeys } from '../../../src/backends/redis/keys.js';
import { completionPayload } from '../baseline-payload.js';
import { ECHO_QUEUE, type EchoJob } from './echo-job.js';

const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const keys = new RedisKeys(process.env['REDIS_KEY_PREFIX'] ?? 'baseline');
const concurrency = Number(process.env['WORKER_CONCURRENCY'] ?? 32);

const publisher = new Redis(redisUrl);
const worker = new Worker<EchoJob>(
  ECHO_QUEUE,
  async (job) => {
    const id = job.id ?? '';
    await publisher.publish(keys.live(job.data.userId), completionPayload(id, job.data.value, id));
    return job.data.value;
  },
  {
    connection: new Redis(redisUrl, { maxRetriesPerRequest: null }),
    prefix: keys.queuePrefix(),
    concurrency,
  },
);
worker.on('error', (error) => console.error('worker error', error));
worker.on('failed', (job, error) => console.error('job failed', job?.id, error));

await worker.waitUntilReady();
console.log('baseline worker ready');

const stop = () => {
  worker.close().finally(() => {
    publisher.disconnect();
    process.exit(0);
  });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
