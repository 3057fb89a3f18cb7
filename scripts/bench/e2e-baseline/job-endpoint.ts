/**
 * The baseline server's `POST /tasks`: a plain Node `http` handler that reads `{ userId, value }`
 * and adds a BullMQ job for the baseline worker (`Queue.add`, removeOnComplete, the last 1,000
 * failures kept), answering 201 `{ id }` once Redis has the job.
 */
import type http from 'node:http';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { ECHO_QUEUE, type EchoJob } from './echo-job.js';

/** Request bodies larger than this are refused (a job carries one small value). */
const MAX_BODY_BYTES = 64 * 1024;

export interface JobEndpoint {
  handle(request: http.IncomingMessage, response: http.ServerResponse): void;
  close(): Promise<void>;
}

function reply(response: http.ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** The endpoint, its queue under `queuePrefix` on the Redis at `redisUrl`. */
export function createJobEndpoint(redisUrl: string, queuePrefix: string): JobEndpoint {
  const connection = new Redis(redisUrl);
  const queue = new Queue<EchoJob>(ECHO_QUEUE, {
    connection,
    prefix: queuePrefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: 1_000 },
  });
  queue.on('error', (error) => console.error('queue error', error));

  const add = async (body: string): Promise<[number, unknown]> => {
    let job: Partial<EchoJob>;
    try {
      job = JSON.parse(body) as Partial<EchoJob>;
    } catch {
      return [400, { error: 'body is not JSON' }];
    }
    if (typeof job.userId !== 'string' || job.userId === '') return [400, { error: 'userId is required' }];
    const added = await queue.add('echo', { userId: job.userId, value: job.value ?? null });
    return [201, { id: added.id }];
  };

  return {
    handle(request, response) {
      const chunks: Buffer[] = [];
      let size = 0;
      request.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          reply(response, 413, { error: 'body too large' });
          request.destroy();
          return;
        }
        chunks.push(chunk);
      });
      request.on('end', () => {
        add(Buffer.concat(chunks).toString()).then(
          ([status, body]) => reply(response, status, body),
          (error: unknown) => reply(response, 503, { error: String(error) }),
        );
      });
    },
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}
