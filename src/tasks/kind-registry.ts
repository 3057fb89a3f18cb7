import { z } from 'zod';
import { KIND_DEFAULTS, type TaskKind } from './kinds/kind.js';
import type { Json } from './task.js';

/** A kind with every default filled in, as the runner and the schema see it. */
export interface RegisteredKind extends Required<Omit<TaskKind, 'handler' | 'external'>> {
  readonly external: boolean;
  readonly handler: TaskKind['handler'];
  /** JSON Schema of the input, computed once. */
  readonly inputJsonSchema: Json;
}

export interface InputProblem {
  readonly path: string;
  readonly message: string;
}

/** The kinds a server offers, looked up by name. */
export class KindRegistry {
  readonly #kinds = new Map<string, RegisteredKind>();

  constructor(kinds: readonly TaskKind[]) {
    for (const kind of kinds) {
      if (!/^[a-z][a-z0-9_.-]{0,63}$/.test(kind.name))
        throw new Error(`invalid task kind name: ${kind.name}`);
      if (this.#kinds.has(kind.name)) throw new Error(`task kind registered twice: ${kind.name}`);
      if (!kind.external && !kind.handler)
        throw new Error(`task kind ${kind.name} has no handler and is not external`);
      this.#kinds.set(kind.name, {
        ...KIND_DEFAULTS,
        ...kind,
        external: kind.external ?? false,
        handler: kind.handler,
        inputJsonSchema: z.toJSONSchema(kind.input, { io: 'input', unrepresentable: 'any' }) as Json,
      });
    }
  }

  get(name: string): RegisteredKind | undefined {
    return this.#kinds.get(name);
  }

  list(): RegisteredKind[] {
    return [...this.#kinds.values()];
  }

  /** Validates and normalises (defaults applied) a task input, or lists what is wrong with it. */
  parseInput(
    kind: RegisteredKind,
    input: unknown,
  ): { ok: true; value: Json } | { ok: false; problems: InputProblem[] } {
    const parsed = kind.input.safeParse(input);
    if (parsed.success) return { ok: true, value: parsed.data as Json };
    return {
      ok: false,
      problems: parsed.error.issues.flatMap((issue) => {
        const path = ['input', ...issue.path.map(String)];
        // An unknown property is reported on its parent object; name the property itself.
        if (issue.code === 'unrecognized_keys') {
          return issue.keys.map((key) => ({ path: [...path, key].join('.'), message: issue.message }));
        }
        return [{ path: path.join('.'), message: issue.message }];
      }),
    };
  }
}
