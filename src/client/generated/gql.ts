/* eslint-disable */
import * as types from './graphql.js';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  fragment TaskFields on Task {\n    id\n    userId\n    kind\n    status\n    input\n    result\n    error {\n      code\n      message\n    }\n    progress\n    attempts\n    createdAt\n    startedAt\n    finishedAt\n  }\n": typeof types.TaskFieldsFragmentDoc,
    "\n  mutation StartTask($input: StartTaskInput!) {\n    startTask(input: $input) {\n      ...TaskFields\n    }\n  }\n": typeof types.StartTaskDocument,
    "\n  mutation StartTasks($inputs: [StartTaskInput!]!) {\n    startTasks(inputs: $inputs) {\n      task {\n        ...TaskFields\n      }\n      error {\n        code\n        message\n        field\n        taskId\n        retryAfter\n      }\n    }\n  }\n": typeof types.StartTasksDocument,
    "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskFields\n    }\n  }\n": typeof types.CancelTaskDocument,
    "\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskFields\n    }\n  }\n": typeof types.TaskDocument,
    "\n  query Tasks($userId: ID, $status: [TaskStatus!], $first: Int, $after: String) {\n    tasks(userId: $userId, status: $status, first: $first, after: $after) {\n      nodes {\n        ...TaskFields\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n": typeof types.TasksDocument,
    "\n  query TaskKinds {\n    taskKinds {\n      name\n      description\n      external\n      inputSchema\n      attempts\n      timeoutMs\n    }\n  }\n": typeof types.TaskKindsDocument,
    "\n  query Viewer {\n    viewer {\n      userId\n      roles\n      lastEventCursor\n    }\n  }\n": typeof types.ViewerDocument,
    "\n  subscription TaskCompleted($userId: ID!, $after: String) {\n    taskCompleted(userId: $userId, after: $after) {\n      cursor\n      replayed\n      task {\n        ...TaskFields\n      }\n    }\n  }\n": typeof types.TaskCompletedDocument,
    "\n  subscription TaskUpdated($id: ID!) {\n    taskUpdated(id: $id) {\n      ...TaskFields\n    }\n  }\n": typeof types.TaskUpdatedDocument,
};
const documents: Documents = {
    "\n  fragment TaskFields on Task {\n    id\n    userId\n    kind\n    status\n    input\n    result\n    error {\n      code\n      message\n    }\n    progress\n    attempts\n    createdAt\n    startedAt\n    finishedAt\n  }\n": types.TaskFieldsFragmentDoc,
    "\n  mutation StartTask($input: StartTaskInput!) {\n    startTask(input: $input) {\n      ...TaskFields\n    }\n  }\n": types.StartTaskDocument,
    "\n  mutation StartTasks($inputs: [StartTaskInput!]!) {\n    startTasks(inputs: $inputs) {\n      task {\n        ...TaskFields\n      }\n      error {\n        code\n        message\n        field\n        taskId\n        retryAfter\n      }\n    }\n  }\n": types.StartTasksDocument,
    "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskFields\n    }\n  }\n": types.CancelTaskDocument,
    "\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskFields\n    }\n  }\n": types.TaskDocument,
    "\n  query Tasks($userId: ID, $status: [TaskStatus!], $first: Int, $after: String) {\n    tasks(userId: $userId, status: $status, first: $first, after: $after) {\n      nodes {\n        ...TaskFields\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n": types.TasksDocument,
    "\n  query TaskKinds {\n    taskKinds {\n      name\n      description\n      external\n      inputSchema\n      attempts\n      timeoutMs\n    }\n  }\n": types.TaskKindsDocument,
    "\n  query Viewer {\n    viewer {\n      userId\n      roles\n      lastEventCursor\n    }\n  }\n": types.ViewerDocument,
    "\n  subscription TaskCompleted($userId: ID!, $after: String) {\n    taskCompleted(userId: $userId, after: $after) {\n      cursor\n      replayed\n      task {\n        ...TaskFields\n      }\n    }\n  }\n": types.TaskCompletedDocument,
    "\n  subscription TaskUpdated($id: ID!) {\n    taskUpdated(id: $id) {\n      ...TaskFields\n    }\n  }\n": types.TaskUpdatedDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment TaskFields on Task {\n    id\n    userId\n    kind\n    status\n    input\n    result\n    error {\n      code\n      message\n    }\n    progress\n    attempts\n    createdAt\n    startedAt\n    finishedAt\n  }\n"): (typeof documents)["\n  fragment TaskFields on Task {\n    id\n    userId\n    kind\n    status\n    input\n    result\n    error {\n      code\n      message\n    }\n    progress\n    attempts\n    createdAt\n    startedAt\n    finishedAt\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation StartTask($input: StartTaskInput!) {\n    startTask(input: $input) {\n      ...TaskFields\n    }\n  }\n"): (typeof documents)["\n  mutation StartTask($input: StartTaskInput!) {\n    startTask(input: $input) {\n      ...TaskFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation StartTasks($inputs: [StartTaskInput!]!) {\n    startTasks(inputs: $inputs) {\n      task {\n        ...TaskFields\n      }\n      error {\n        code\n        message\n        field\n        taskId\n        retryAfter\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation StartTasks($inputs: [StartTaskInput!]!) {\n    startTasks(inputs: $inputs) {\n      task {\n        ...TaskFields\n      }\n      error {\n        code\n        message\n        field\n        taskId\n        retryAfter\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskFields\n    }\n  }\n"): (typeof documents)["\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskFields\n    }\n  }\n"): (typeof documents)["\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Tasks($userId: ID, $status: [TaskStatus!], $first: Int, $after: String) {\n    tasks(userId: $userId, status: $status, first: $first, after: $after) {\n      nodes {\n        ...TaskFields\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n"): (typeof documents)["\n  query Tasks($userId: ID, $status: [TaskStatus!], $first: Int, $after: String) {\n    tasks(userId: $userId, status: $status, first: $first, after: $after) {\n      nodes {\n        ...TaskFields\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query TaskKinds {\n    taskKinds {\n      name\n      description\n      external\n      inputSchema\n      attempts\n      timeoutMs\n    }\n  }\n"): (typeof documents)["\n  query TaskKinds {\n    taskKinds {\n      name\n      description\n      external\n      inputSchema\n      attempts\n      timeoutMs\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Viewer {\n    viewer {\n      userId\n      roles\n      lastEventCursor\n    }\n  }\n"): (typeof documents)["\n  query Viewer {\n    viewer {\n      userId\n      roles\n      lastEventCursor\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription TaskCompleted($userId: ID!, $after: String) {\n    taskCompleted(userId: $userId, after: $after) {\n      cursor\n      replayed\n      task {\n        ...TaskFields\n      }\n    }\n  }\n"): (typeof documents)["\n  subscription TaskCompleted($userId: ID!, $after: String) {\n    taskCompleted(userId: $userId, after: $after) {\n      cursor\n      replayed\n      task {\n        ...TaskFields\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription TaskUpdated($id: ID!) {\n    taskUpdated(id: $id) {\n      ...TaskFields\n    }\n  }\n"): (typeof documents)["\n  subscription TaskUpdated($id: ID!) {\n    taskUpdated(id: $id) {\n      ...TaskFields\n    }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;