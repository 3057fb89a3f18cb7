import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { defineKind } from './kind.js';

const STEPS = 10;

export const sleepKind = defineKind({
  name: 'sleep',
  description: 'Waits `ms` milliseconds, reporting progress, and returns { sleptMs }. Honours cancellation.',
  input: z.strictObject({ ms: z.int().min(0).max(3_600_000).describe('How long to sleep, in milliseconds') }),
  timeoutMs: 3_660_000,
  attempts: 3,
  async handler({ ms }, { signal, reportProgress }) {
    const started = Date.now();
    for (let step = 1; step <= STEPS; step++) {
      await delay(ms / STEPS, undefined, { signal });
      reportProgress(step / STEPS);
    }
    return { sleptMs: Date.now() - started };
  },
});
