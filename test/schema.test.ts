import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  buildSchema,
  type GraphQLField,
  type GraphQLInputObjectType,
  type GraphQLSchema,
  isEnumType,
  isInputObjectType,
  isObjectType,
  isScalarType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { renderSchema } from '../scripts/print-schema.js';

const SCHEMA_FILE = fileURLToPath(new URL('../schema.graphql', import.meta.url));
const committed = readFileSync(SCHEMA_FILE, 'utf8');

/** Field name -> type as printed; for root fields, also argument name -> type. */
type FieldContract = Record<string, string | { type: string; args: Record<string, string> }>;

/** The public contract of ARCHITECTURE.md: names (and types) clients depend on. */
const OBJECT_TYPES: Record<string, FieldContract> = {
  Task: {
    id: 'ID!',
    userId: 'ID!',
    kind: 'String!',
    status: 'TaskStatus!',
    input: 'JSON!',
    result: 'JSON',
    error: 'TaskError',
    progress: 'Float!',
    attempts: 'Int!',
    createdAt: 'DateTime!',
    startedAt: 'DateTime',
    finishedAt: 'DateTime',
  },
  TaskError: { code: 'String!', message: 'String!' },
  TaskEvent: { cursor: 'String!', task: 'Task!', replayed: 'Boolean!' },
  Viewer: { userId: 'ID!', roles: '[String!]!', lastEventCursor: 'String' },
  TaskKind: { name: 'String!', description: 'String!', inputSchema: 'JSON!' },
  StartTaskResult: { task: 'Task', error: 'StartTaskError' },
  StartTaskError: {
    code: 'String!',
    message: 'String!',
    field: 'String',
    taskId: 'ID',
    retryAfter: 'Int',
  },
  // Relay style
  TaskConnection: { edges: '[TaskEdge!]!', pageInfo: 'PageInfo!' },
  TaskEdge: { cursor: 'String!', node: 'Task!' },
  PageInfo: { hasNextPage: 'Boolean!', endCursor: 'String' },
  Query: {
    viewer: 'Viewer!',
    task: { type: 'Task', args: { id: 'ID!' } },
    tasks: {
      type: 'TaskConnection!',
      args: { userId: 'ID', status: '[TaskStatus!]', first: 'Int', after: 'String' },
    },
    taskKinds: '[TaskKind!]!',
  },
  Mutation: {
    startTask: { type: 'Task!', args: { input: 'StartTaskInput!' } },
    startTasks: { type: '[StartTaskResult!]!', args: { inputs: '[StartTaskInput!]!' } },
    cancelTask: { type: 'Task!', args: { id: 'ID!' } },
    reportTaskProgress: { type: 'Task!', args: { id: 'ID!', progress: 'Float!' } },
    completeTask: { type: 'Task!', args: { id: 'ID!', result: 'JSON' } },
    failTask: { type: 'Task!', args: { id: 'ID!', message: 'String!', code: 'String' } },
  },
  Subscription: {
    taskCompleted: { type: 'TaskEvent!', args: { userId: 'ID!', after: 'String' } },
    taskUpdated: { type: 'Task!', args: { id: 'ID!' } },
  },
};

const INPUT_TYPES: Record<string, Record<string, string>> = {
  StartTaskInput: { kind: 'String!', input: 'JSON', userId: 'ID', idempotencyKey: 'String' },
};

const TASK_STATUS = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];

function describeField(field: GraphQLField<unknown, unknown>) {
  return {
    type: String(field.type),
    args: Object.fromEntries(field.args.map((arg) => [arg.name, String(arg.type)])),
  };
}

function describeInput(type: GraphQLInputObjectType) {
  return Object.fromEntries(Object.values(type.getFields()).map((field) => [field.name, String(field.type)]));
}

describe('schema.graphql', () => {
  it('matches the schema the code prints', () => {
    expect(
      committed,
      'schema.graphql has drifted from the Pothos schema: run `npm run schema:print` and commit the result',
    ).toBe(renderSchema());
  });

  describe('holds the public contract of ARCHITECTURE.md', () => {
    const schema: GraphQLSchema = buildSchema(committed);

    it('declares the DateTime and JSON scalars', () => {
      expect(isScalarType(schema.getType('DateTime'))).toBe(true);
      expect(isScalarType(schema.getType('JSON'))).toBe(true);
    });

    it('declares every TaskStatus value', () => {
      const status = schema.getType('TaskStatus');
      if (!isEnumType(status)) throw new Error('TaskStatus is not an enum');
      expect(status.getValues().map((value) => value.name)).toEqual(expect.arrayContaining(TASK_STATUS));
    });

    it.each(Object.entries(OBJECT_TYPES))(
      'declares type %s with its fields and arguments',
      (name, fields) => {
        const type = schema.getType(name);
        if (!isObjectType(type)) throw new Error(`${name} is not an object type in schema.graphql`);
        const actual = type.getFields();
        for (const [fieldName, expected] of Object.entries(fields)) {
          const field = actual[fieldName];
          expect(field, `${name}.${fieldName} is missing`).toBeDefined();
          if (!field) continue;
          const described = describeField(field);
          if (typeof expected === 'string') {
            expect(described.type, `${name}.${fieldName}`).toBe(expected);
          } else {
            expect(described.type, `${name}.${fieldName}`).toBe(expected.type);
            expect(described.args, `arguments of ${name}.${fieldName}`).toMatchObject(expected.args);
          }
        }
      },
    );

    it.each(Object.entries(INPUT_TYPES))('declares input %s with its fields', (name, fields) => {
      const type = schema.getType(name);
      if (!isInputObjectType(type)) throw new Error(`${name} is not an input type in schema.graphql`);
      expect(describeInput(type)).toMatchObject(fields);
    });

    it('uses the contract types as the query, mutation and subscription roots', () => {
      expect(schema.getQueryType()?.name).toBe('Query');
      expect(schema.getMutationType()?.name).toBe('Mutation');
      expect(schema.getSubscriptionType()?.name).toBe('Subscription');
    });
  });
});
