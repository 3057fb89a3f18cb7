import { z } from 'zod';
import { defineKind } from './kind.js';

export const externalKind = defineKind({
  name: 'external',
  description:
    'Run by another system: it reports through reportTaskProgress, completeTask and failTask (service role). Input is any JSON object handed to that system.',
  input: z.record(z.string(), z.json()),
  external: true,
});
