import { graphql } from './generated/index.js';

/** Every field of a task, so the SDK hands out complete tasks. */
export const TaskFieldsFragment = graphql(`
  fragment TaskFields on Task {
    id
    userId
    kind
    status
    input
    result
    error {
      code
      message
    }
    progress
    attempts
    createdAt
    startedAt
    finishedAt
  }
`);

export const StartTaskMutation = graphql(`
  mutation StartTask($input: StartTaskInput!) {
    startTask(input: $input) {
      ...TaskFields
    }
  }
`);

export const StartTasksMutation = graphql(`
  mutation StartTasks($inputs: [StartTaskInput!]!) {
    startTasks(inputs: $inputs) {
      task {
        ...TaskFields
      }
      error {
        code
        message
        field
        taskId
        retryAfter
      }
    }
  }
`);

export const CancelTaskMutation = graphql(`
  mutation CancelTask($id: ID!) {
    cancelTask(id: $id) {
      ...TaskFields
    }
  }
`);

export const TaskQuery = graphql(`
  query Task($id: ID!) {
    task(id: $id) {
      ...TaskFields
    }
  }
`);

export const TasksQuery = graphql(`
  query Tasks($userId: ID, $status: [TaskStatus!], $first: Int, $after: String) {
    tasks(userId: $userId, status: $status, first: $first, after: $after) {
      nodes {
        ...TaskFields
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

export const TaskKindsQuery = graphql(`
  query TaskKinds {
    taskKinds {
      name
      description
      external
      inputSchema
      attempts
      timeoutMs
    }
  }
`);

export const ViewerQuery = graphql(`
  query Viewer {
    viewer {
      userId
      roles
      lastEventCursor
    }
  }
`);

export const TaskCompletedSubscription = graphql(`
  subscription TaskCompleted($userId: ID!, $after: String) {
    taskCompleted(userId: $userId, after: $after) {
      cursor
      replayed
      task {
        ...TaskFields
      }
    }
  }
`);

export const TaskUpdatedSubscription = graphql(`
  subscription TaskUpdated($id: ID!) {
    taskUpdated(id: $id) {
      ...TaskFields
    }
  }
`);
