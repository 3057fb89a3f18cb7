import { describe, expect, it } from 'vitest';
import { startTestServer } from './utils/tserver.js';
import { collect, createWsClient } from './utils/ws-clients.js';

describe('smoke', () => {
  it('should deliver a completion over graphql-ws', async () => {
    const server = await startTestServer();
    const token = await server.token('alice');
    const ws = createWsClient(server.wsUrl, token);
    const viewer = await server.gql<{ viewer: { lastEventCursor: string } }>(
      '{ viewer { lastEventCursor } }',
      {},
      token,
    );
    const sub = collect<{
      taskCompleted: { cursor: string; task: { id: string; status: string; result: unknown } };
    }>(
      ws,
      'subscription($u: ID!, $after: String) { taskCompleted(userId: $u, after: $after) { cursor replayed task { id status result } } }',
      { u: 'alice', after: viewer.data?.viewer.lastEventCursor },
    );
    const started = await server.gql<{ startTask: { id: string } }>(
      'mutation { startTask(input: { kind: "echo", input: { value: 42 } }) { id status } }',
      {},
      token,
    );
    expect(started.errors).toBeUndefined();
    const [event] = await sub.until(1);
    expect(event?.taskCompleted.task).toMatchObject({
      id: started.data?.startTask.id,
      status: 'SUCCEEDED',
      result: 42,
    });
  });
});
