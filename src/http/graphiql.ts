import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { GraphiQLOptions } from 'graphql-yoga';

/** Tokens minted at start when no key is configured outside production. */
export interface DevTokens {
  readonly userId: string;
  readonly user: string;
  readonly serviceId: string;
  readonly service: string;
}

/**
 * GraphiQL as yoga serves it to a browser on the GraphQL path: subscriptions over WebSocket, the
 * demo user's token in the Headers tab when there is one, and a first tab that walks through the
 * service's main job.
 */
export function graphiqlOptions(devTokens: () => DevTokens | null): () => GraphiQLOptions {
  return () => {
    const tokens = devTokens();
    return {
      title: 'Task status service',
      subscriptionsProtocol: 'WS',
      headers: JSON.stringify(tokens ? { Authorization: `Bearer ${tokens.user}` } : {}, null, 2),
      defaultQuery: GRAPHIQL_DEFAULT_QUERY,
    };
  };
}

/** yoga's GraphiQL page, rendered once per set of options (they change only with the dev tokens). */
export const renderGraphiQLOnce = memoize(renderGraphiQL);

function memoize<T>(render: (options: T) => string): (options: T) => string {
  const cache = new Map<string, string>();
  return (options) => {
    const key = JSON.stringify(options);
    let html = cache.get(key);
    if (html === undefined) {
      if (cache.size > 16) cache.clear();
      html = render(options);
      cache.set(key, html);
    }
    return html;
  };
}

const GRAPHIQL_DEFAULT_QUERY = `# Task status service. The Headers tab holds a token for the demo user.
#
# 1. Run "Listen" in this tab: it waits for completions (over WebSocket).
# 2. Open a new tab, paste "Start" (or "StartMany") and run it: the completion arrives here.

subscription Listen {
  taskCompleted(userId: "demo-user") {
    cursor
    replayed
    task { id kind status result error { code message } finishedAt }
  }
}

mutation Start {
  startTask(input: { kind: "sleep", input: { ms: 2000 } }) { id status }
}

# Up to 1,000 at once: one result per input, in order, each its task or its error.
mutation StartMany {
  startTasks(inputs: [
    { kind: "echo", input: { value: "first" } }
    { kind: "sleep", input: { ms: 1500 }, idempotencyKey: "walkthrough-sleep" }
    { kind: "no-such-kind" }
  ]) {
    task { id kind status }
    error { code message field taskId retryAfter }
  }
}

query Recent {
  viewer { userId roles lastEventCursor }
  tasks(first: 5) { edges { node { id kind status progress } } pageInfo { hasNextPage endCursor } }
  taskKinds { name description inputSchema }
}
`;
