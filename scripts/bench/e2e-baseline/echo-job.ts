/** The baseline's end-to-end job: what its POST endpoint queues and its worker runs. */

/** Queue name; the queue lives under `RedisKeys.queuePrefix()` of the run's prefix, as the service's does. */
export const ECHO_QUEUE = 'echo';

/** A job's data: whose channel gets the completion, and the value it echoes (the bench stamp). */
export interface EchoJob {
  readonly userId: string;
  readonly value: unknown;
}
