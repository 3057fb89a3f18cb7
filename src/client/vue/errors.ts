import type { CombinedError } from '@urql/core';
import { computed, type Ref } from 'vue';
import { TaskClientError } from '../errors.js';

/** An urql error ref as the SDK's {@link TaskClientError} (its `code` is the server's `extensions.code`). */
export function asTaskClientError(
  error: Ref<CombinedError | undefined>,
): Readonly<Ref<TaskClientError | null>> {
  return computed(() => (error.value ? TaskClientError.from(error.value) : null));
}
