import { createHash } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { z } from 'zod';
import { defineKind } from './kind.js';

/** Rounds hashed between two turns of the event loop, so other requests are served meanwhile. */
const ROUNDS_PER_SLICE = 2_000;

export const checksumKind = defineKind({
  name: 'checksum',
  description:
    'CPU-bound: hashes `text` with `algorithm`, then hashes the digest again `rounds - 1` times; returns { digest } in hex.',
  input: z.strictObject({
    text: z.string().max(1_000_000),
    algorithm: z.enum(['sha256', 'sha512', 'sha1', 'md5']).default('sha256'),
    rounds: z.int().min(1).max(10_000_000).default(1),
  }),
  timeoutMs: 300_000,
  attempts: 2,
  async handler({ text, algorithm, rounds }, { signal, reportProgress }) {
    let digest = createHash(algorithm).update(text).digest();
    for (let done = 1; done < rounds; ) {
      const sliceEnd = Math.min(rounds, done + ROUNDS_PER_SLICE);
      for (; done < sliceEnd; done++) digest = createHash(algorithm).update(digest).digest();
      reportProgress(done / rounds);
      await yieldToEventLoop();
      signal.throwIfAborted();
    }
    return { digest: digest.toString('hex') };
  },
});
