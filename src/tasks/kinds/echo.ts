import { z } from 'zod';
import type { Json } from '../task.js';
import { defineKind } from './kind.js';

export const echoKind = defineKind({
  name: 'echo',
  description: 'Returns `value` unchanged.',
  input: z.strictObject({ value: z.json().describe('Any JSON value') }),
  timeoutMs: 5_000,
  async handler({ value }) {
    return value as Json;
  },
});
