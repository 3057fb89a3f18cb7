import {
  type ExecutionArgs,
  execute,
  executeSync,
  GraphQLBoolean,
  GraphQLObjectType,
  GraphQLSchema,
  GraphQLString,
  parse,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { compileEventExecutor } from '../src/graphql/event-executor.js';
import { schema } from '../src/schema/index.js';
import type { DeliveredEvent } from '../src/tasks/delivery.js';
import { type Task, TaskStatus } from '../src/tasks/task.js';

const task: Task = {
  id: 'b7e1c2d4-0000-4000-8000-000000000001',
  userId: 'user-1',
  kind: 'echo',
  status: TaskStatus.Failed,
  input: { value: [1, 'two', { three: null }] },
  result: null,
  error: { code: 'HANDLER_ERROR', message: 'boom' },
  progress: 0.5,
  attempts: 2,
  createdAt: Date.UTC(2026, 10, 26, 12, 0, 0),
  startedAt: Date.UTC(2026, 10, 26, 12, 0, 1),
  finishedAt: Date.UTC(2026, 10, 26, 12, 0, 2),
  runAt: Date.UTC(2026, 10, 26, 12, 0, 0),
  external: false,
  idempotencyKey: null,
  version: 4,
};
const succeeded: Task = { ...task, status: TaskStatus.Succeeded, result: { ok: true }, error: null };
const event = (t: Task, replayed = false): DeliveredEvent => ({ cursor: '17-3', task: t, replayed });

const TASK_FIELDS =
  'id userId kind status input result error { code message } progress attempts createdAt startedAt finishedAt';

/** Operations and variables whose compiled results must equal graphql-js's, event for event. */
const CASES: { name: string; query: string; variables?: Record<string, unknown> }[] = [
  {
    name: 'the benchmark operation',
    query:
      'subscription Bench($u: ID!) { taskCompleted(userId: $u) { cursor replayed task { id status result finishedAt } } }',
    variables: { u: 'user-1' },
  },
  {
    name: 'every field, aliases and __typename',
    query: `subscription { c: taskCompleted(userId: "user-1", after: "0") { __typename at: cursor replayed task { __typename ${TASK_FIELDS} again: id } } }`,
  },
  {
    name: 'named and inline fragments, merged selections of one key',
    query: `subscription S { taskCompleted(userId: "user-1") { ...E task { status } ... on TaskEvent { task { kind error { code } } } } }
      fragment E on TaskEvent { cursor task { id error { message } } }`,
  },
  {
    name: '@skip and @include decided by variables',
    query: `subscription S($yes: Boolean!, $no: Boolean = false) { taskCompleted(userId: "user-1") {
      cursor @include(if: $yes) replayed @skip(if: $yes) task { id @include(if: $no) status @skip(if: $no) ... on Task @include(if: $yes) { kind } } } }`,
    variables: { yes: true },
  },
  {
    name: 'taskUpdated',
    query: `subscription U($id: ID!) { taskUpdated(id: $id) { ...F progress } } fragment F on Task { ${TASK_FIELDS} }`,
    variables: { id: task.id },
  },
];

function args(query: string, variables: Record<string, unknown> = {}): ExecutionArgs {
  return {
    schema,
    document: parse(query),
    variableValues: variables,
    contextValue: {},
  };
}

describe('compiled subscription results', () => {
  for (const { name, query, variables } of CASES) {
    it(`equal graphql-js's for ${name}`, () => {
      const operation = args(query, variables);
      const executor = compileEventExecutor(operation);
      expect(executor).not.toBeNull();
      const payloads: unknown[] = query.includes('taskUpdated')
        ? [task, succeeded]
        : [event(task), event(succeeded, true)];
      for (const payload of payloads) {
        const compiled = executor?.(payload);
        const reference = execute({ ...operation, rootValue: payload });
        expect(compiled).toEqual(reference);
        // Same keys in the same order: the frames are byte for byte the same.
        expect(JSON.stringify(compiled)).toBe(JSON.stringify(reference));
      }
    });
  }

  it('declines an event that graphql-js would answer with errors, so the errors are graphql-js own', () => {
    const operation = args(
      `subscription { taskCompleted(userId: "user-1") { cursor task { id createdAt } } }`,
    );
    const executor = compileEventExecutor(operation);
    const broken = [
      event({ ...task, id: null as unknown as string }),
      event({ ...task, createdAt: Number.NaN }),
      { cursor: '1-0', task: null, replayed: false },
    ];
    for (const payload of broken) {
      expect(executor?.(payload)).toBeNull();
      expect(executeSync({ ...operation, rootValue: payload }).errors?.length).toBeGreaterThan(0);
    }
  });

  it('shares one plan between subscriptions to one document, each with its own arguments and variables', () => {
    const Echo = new GraphQLObjectType({
      name: 'Echo',
      fields: {
        arg: { type: GraphQLString },
        seen: { type: GraphQLString },
        root: { type: GraphQLBoolean },
      },
    });
    const echoSchema = new GraphQLSchema({
      query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLBoolean } } }),
      subscription: new GraphQLObjectType({
        name: 'Subscription',
        fields: {
          echo: {
            type: Echo,
            args: { arg: { type: GraphQLString } },
            resolve: (event: { n: number }, { arg }, _context, info) => ({
              arg,
              seen: `${String(info.variableValues['a'])}/${event.n}`,
              root: info.rootValue === event,
            }),
          },
        },
      }),
    });
    const document = parse('subscription E($a: String) { echo(arg: $a) { arg seen root } }');
    const operations = ['first', 'second'].map(
      (a): ExecutionArgs => ({ schema: echoSchema, document, variableValues: { a }, contextValue: {} }),
    );
    const executors = operations.map((operation) => compileEventExecutor(operation));
    for (const n of [1, 2]) {
      operations.forEach((operation, index) => {
        const result = executors[index]?.({ n });
        expect(result).toEqual(executeSync({ ...operation, rootValue: { n } }));
        expect(result?.data).toEqual({
          echo: {
            arg: operation.variableValues?.['a'],
            seen: `${operation.variableValues?.['a']}/${n}`,
            root: true,
          },
        });
      });
    }
  });

  it('declines to compile an operation with variables that do not fit', () => {
    expect(compileEventExecutor(args(CASES[0]?.query ?? '', { u: { not: 'an id' } }))).toBeNull();
  });
});
