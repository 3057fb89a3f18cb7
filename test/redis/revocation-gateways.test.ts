/**
 * revokeUserConnections across gateway processes on one Redis (repro 1, distributed mode): the
 * count covers every gateway, and a gateway whose control subscription was cut while the
 * revocation was published catches up once it is back. Gateway B reaches Redis through a TCP
 * proxy that the test can blackhole.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildServer, startChildServer } from '../utils/child-server.js';
import { waitFor } from '../utils/deferred.js';
import { COMPLETED, extensionsOf, lastEventCursor } from '../utils/ops.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';
import { startTcpProxy, type TcpProxy } from '../utils/tcp-proxy.js';
import { openRawSocket } from '../utils/ws-clients.js';

const REVOKE = 'mutation($u: ID!) { revokeUserConnections(userId: $u) }';
const VIEWER = '{ viewer { userId } }';

const prefix = uniquePrefix();
const redisEnv = { REDIS_KEY_PREFIX: prefix, WORKER_CONCURRENCY: '0' };
let gatewayA: ChildServer;
/** Reaches Redis through {@link proxy}. */
let gatewayB: ChildServer;
let proxy: TcpProxy;

beforeAll(async () => {
  proxy = await startTcpProxy(Number(new URL(TEST_REDIS_URL).port || 6379));
  [gatewayA, gatewayB] = await Promise.all([
    startChildServer({ env: { ...redisEnv, REDIS_URL: TEST_REDIS_URL } }),
    startChildServer({ env: { ...redisEnv, REDIS_URL: `redis://127.0.0.1:${proxy.port}` } }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all(
    [gatewayA, gatewayB].map(async (gateway) => {
      gateway?.kill('SIGKILL');
      await gateway?.waitExit();
    }),
  );
  await proxy?.close();
  await deletePrefix(TEST_REDIS_URL, prefix);
});

/** An SSE subscription to the user's completions on `gateway`, read in the background. */
async function openEventStream(gateway: ChildServer, userId: string, token: string) {
  const response = await fetch(gateway.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'text/event-stream',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({
      query: COMPLETED,
      variables: { u: userId, after: await lastEventCursor(gateway, token) },
    }),
  });
  expect(response.status).toBe(200);
  // A gateway stopped while the stream is open cuts it: nothing ended it, no errors.
  const text = response.text().catch(() => '');
  return {
    /** Resolves with the errors the stream ended with. */
    ended: text.then((body) =>
      [...body.matchAll(/^data: (.+)$/gm)].flatMap(
        (match) => (JSON.parse(match[1] ?? '{}') as { errors?: unknown[] }).errors ?? [],
      ),
    ),
  };
}

describe('revokeUserConnections with two gateways', () => {
  it('counts what every gateway ended — sockets with the token at connect or per operation, SSE streams — and every gateway refuses the old token', async () => {
    const alice = await gatewayA.token('multi-alice');
    const bob = await gatewayA.token('multi-bob');
    const service = await gatewayA.token('multi-service', { service: true });
    const onA = await openRawSocket(gatewayA.wsUrl);
    await onA.init({ authorization: `Bearer ${alice}` });
    const onB = await openRawSocket(gatewayB.wsUrl);
    await onB.init({ authorization: `Bearer ${alice}` });
    const perOperationOnB = await openRawSocket(gatewayB.wsUrl);
    await perOperationOnB.init({ authorization: `Bearer ${bob}` });
    perOperationOnB.send({
      id: 'q',
      type: 'subscribe',
      payload: { query: VIEWER, extensions: { headers: { authorization: `Bearer ${alice}` } } },
    });
    await perOperationOnB.next((m) => m['id'] === 'q' && m['type'] === 'next', 'the per-operation answer');
    // Yoga answers an SSE request once the subscription is in effect.
    const sseOnB = await openEventStream(gatewayB, 'multi-alice', alice);

    const revoked = await gatewayA.gql<{ revokeUserConnections: number }>(
      REVOKE,
      { u: 'multi-alice' },
      service,
    );
    expect(revoked.errors).toBeUndefined();
    expect(revoked.data?.revokeUserConnections).toBe(4);
    for (const raw of [onA, onB, perOperationOnB]) {
      expect(await raw.closed).toEqual({ code: 4403, reason: 'Forbidden: connections revoked' });
    }
    expect((await sseOnB.ended).map(extensionsOf)).toEqual([{ code: 'UNAUTHENTICATED' }]);

    for (const gateway of [gatewayA, gatewayB]) {
      const refused = await gateway.gql(VIEWER, {}, alice);
      expect(refused.status).toBe(401);
      expect(refused.errors?.[0]?.message).toMatch(/token revoked/);
      const reconnect = await openRawSocket(gateway.wsUrl);
      reconnect.send({ type: 'connection_init', payload: { authorization: `Bearer ${alice}` } });
      expect(await reconnect.closed).toEqual({ code: 4403, reason: 'Forbidden: token revoked' });
    }
    expect((await gatewayB.gql(VIEWER, {}, bob)).data).toEqual({ viewer: { userId: 'multi-bob' } });
  });

  it('ends what the user holds on a gateway whose control subscription was cut when the revocation was published, once it is back', async () => {
    const carol = await gatewayA.token('multi-carol');
    const service = await gatewayA.token('multi-service', { service: true });
    const onB = await openRawSocket(gatewayB.wsUrl);
    await onB.init({ authorization: `Bearer ${carol}` });
    let closed: { code: number; reason: string } | undefined;
    void onB.closed.then((value) => {
      closed = value;
    });
    const sseOnB = await openEventStream(gatewayB, 'multi-carol', carol);

    // Gateway B hears nothing from Redis now, its connections kept open: the broadcast is lost.
    proxy.blackhole();
    const revoked = await gatewayA.gql<{ revokeUserConnections: number }>(
      REVOKE,
      { u: 'multi-carol' },
      service,
    );
    expect(revoked.errors).toBeUndefined();
    // Only gateway A answered (it had nothing of carol's open).
    expect(revoked.data?.revokeUserConnections).toBe(0);
    expect(closed).toBeUndefined();

    // Back: B's subscriber connection lost bytes, so it is cut and reconnects.
    proxy.restore();
    await waitFor(() => closed, "gateway B to close carol's socket after its reconnect");
    expect(closed).toEqual({ code: 4403, reason: 'Forbidden: connections revoked' });
    expect((await sseOnB.ended).map(extensionsOf)).toEqual([{ code: 'UNAUTHENTICATED' }]);
    const refused = await gatewayB.gql(VIEWER, {}, carol);
    expect(refused.status).toBe(401);
  });
});
