import { randomUUID } from 'node:crypto';

/** A caller's `X-Request-Id` when it is sane, else a new one; in every log line of the request. */
export function requestIdFrom(given: string | string[] | undefined): string {
  // randomUUID() returns a rope of ~15 cons strings (480 B); a flat copy is 56 B.
  return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given)
    ? given
    : Buffer.from(randomUUID(), 'latin1').toString('latin1');
}
