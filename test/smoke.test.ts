import { describe, expect, it } from 'vitest';
import { startTestServer } from './utils/tserver.js';
import { collect, createWsClient } from './utils/ws-clients.js';

describe('smoke', () => {
  it('should deliver a completion over graphql-ws', async () => {
    const server = await startTestServer();
    const token = await server.token('alice');
    const ws = createWsClient(server.wsUrl, token);
    const sub = collect<{
      taskCompleted: { cursor: string; task: { id: string; status: string; result: unknown } };
    }>(
      ws,
      'subscription($u: ID!) { taskCompleted(userId: $u) { cursor replayed task { id status result } } }',
      { u: 'alice' },
    );
    await new Promise((r) => setTimeout(r, 200));
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
