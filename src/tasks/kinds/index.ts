import { checksumKind } from './checksum.js';
import { echoKind } from './echo.js';
import { externalKind } from './external.js';
import type { TaskKind } from './kind.js';
import { sleepKind } from './sleep.js';

/** The kinds a default build offers. Adding a kind: one file beside this one, listed here. */
export const BUILT_IN_KINDS: readonly TaskKind[] = [sleepKind, echoKind, checksumKind, externalKind];
