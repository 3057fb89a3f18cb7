import { computed, type Ref, shallowReactive, shallowRef, watch } from 'vue';
import { isFinal, type Task, type TaskKind } from '../client/index.js';
import {
  type UseTaskCompletionsResult,
  useConnectionState,
  useTaskClient,
  useTaskCompletions,
} from '../client/vue/index.js';
import { describeError } from './task-format.js';

/** What the page shows for the provided client's user. */
export interface TaskBoard {
  readonly kinds: Readonly<Ref<readonly TaskKind[]>>;
  /** The user's tasks, newest first, as last listed, started, cancelled or completed (rows follow each one live). */
  readonly tasks: Readonly<Ref<readonly Task[]>>;
  /** The user's completions, oldest first. */
  readonly completions: UseTaskCompletionsResult;
  /** Why the kinds or the task list could not be loaded, if they could not. */
  readonly loadError: Readonly<Ref<string | null>>;
  startTask(kind: string, input: unknown): Promise<Task>;
  cancelTask(id: string): Promise<Task>;
}

/**
 * The page's state for the client `provideTaskClient` gave this component tree: kinds and tasks
 * read with `useTaskClient()` (again whenever the connection comes back after a loss), completions
 * from `useTaskCompletions`, each merged into the task list.
 */
export function useTaskBoard(): TaskBoard {
  const client = useTaskClient();
  const connection = useConnectionState();
  const kinds = shallowRef<readonly TaskKind[]>([]);
  const byId = shallowReactive(new Map<string, Task>());
  const loadError = shallowRef<string | null>(null);
  const tasks = computed(() =>
    [...byId.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id)),
  );

  /** Keeps the newest state of a task: a final state is never replaced by an older, unfinished one. */
  function merge(task: Task): void {
    const known = byId.get(task.id);
    if (known && isFinal(known.status) && !isFinal(task.status)) return;
    byId.set(task.id, task);
  }

  async function load(): Promise<void> {
    try {
      const [kindList, page] = await Promise.all([client.taskKinds(), client.tasks({ first: 50 })]);
      kinds.value = kindList;
      for (const task of page.nodes) merge(task);
      loadError.value = null;
    } catch (error) {
      loadError.value = describeError(error);
    }
  }

  const completions = useTaskCompletions({ onCompleted: (event) => merge(event.task) });

  let lostConnection = false;
  watch(connection, (state, previous) => {
    if (previous === 'connected' && state !== 'connected') lostConnection = true;
    // Back after an outage: tasks may have been re-queued or started elsewhere meanwhile.
    if (state === 'connected' && (lostConnection || loadError.value !== null)) {
      lostConnection = false;
      void load();
    }
  });
  void load();

  return {
    kinds,
    tasks,
    completions,
    loadError,
    async startTask(kind, input) {
      const task = await client.startTask({ kind, input });
      merge(task);
      return task;
    },
    async cancelTask(id) {
      const task = await client.cancelTask(id);
      merge(task);
      return task;
    },
  };
}
