import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { makeTempDir } from '../scripts/lib/local.js';
import { type App, createApp } from '../src/app.js';
import { mintToken } from '../src/auth/tokens.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { BUILT_IN_KINDS } from '../src/tasks/kinds/index.js';
import { createDeferred } from './utils/deferred.js';
import { TEST_SECRET } from './utils/tserver.js';
import { openRawSocket } from './utils/ws-clients.js';

/**
 * The old notifier's client put its token in the WebSocket URL. Such an upgrade is refused with a
 * close every client can read, saying where the token goes, instead of an anonymous socket whose
 * every operation then fails with UNAUTHENTICATED.
 */
describe('seed compatibility: a token in the WebSocket URL', () => {
  let app: App;
  let wsUrl: string;
  let token: string;
  /** Every log line the server writes, to check that no token reaches one. */
  const logLines: string[] = [];
  beforeAll(async () => {
    const config = loadConfig({
      PORT: '0',
      AUTH_JWT_SECRET: TEST_SECRET,
      DATA_DIR: makeTempDir(),
      LOG_LEVEL: 'debug',
    });
    const logger = createLogger('debug', (line) => logLines.push(line));
    app = await createApp({ config, kinds: BUILT_IN_KINDS, logger });
    wsUrl = (await app.start()).url.replace(/^http/, 'ws');
    token = await mintToken(TEST_SECRET, 'seed-user');
  });
  afterAll(() => app?.stop());

  /** Opens a socket as a seed-style client would, says connection_init, and reports how it ends. */
  async function seedStyleSocket(query: string, protocol: string | undefined = 'graphql-transport-ws') {
    const url = `${wsUrl}?${query}`;
    const socket = protocol === undefined ? new WebSocket(url) : new WebSocket(url, protocol);
    const messages: string[] = [];
    const closed = createDeferred<{ code: number; reason: string }>();
    socket.on('message', (data) => messages.push(String(data)));
    socket.on('close', (code, reason) => closed.resolve({ code, reason: String(reason) }));
    socket.on('error', () => undefined);
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: {} })));
    try {
      return { ...(await closed.promise), messages };
    } finally {
      socket.terminate();
    }
  }

  it.each(['token', 'access_token'])(
    'should close a socket opened with ?%s= with 4400 and a reason naming connectionParams.authorization',
    async (parameter) => {
      const { code, reason, messages } = await seedStyleSocket(
        `${parameter}=${encodeURIComponent(token)}&client=seed`,
      );
      expect(code).toBe(4400);
      expect(reason).toContain('connectionParams.authorization');
      expect(reason).not.toContain(token);
      // No connection_ack: the socket was never an (anonymous) graphql-ws connection.
      expect(messages).toEqual([]);
      expect(logLines.join('\n')).toContain('websocket token in URL refused');
      expect(logLines.join('\n')).not.toContain(token);
    },
  );

  it('should close it so even without the graphql-ws subprotocol (as the old client offered none)', async () => {
    const { code, reason } = await seedStyleSocket(`token=${encodeURIComponent(token)}`, undefined);
    expect(code).toBe(4400);
    expect(reason).toContain('connectionParams.authorization');
  });

  it('should accept other query parameters and a token in connectionParams', async () => {
    const raw = await openRawSocket(`${wsUrl}?client=seed&tokenized=1&v=2`);
    await raw.init({ authorization: `Bearer ${token}` });
    raw.send({ id: '1', type: 'subscribe', payload: { query: '{ viewer { userId } }' } });
    const result = await raw.next((message) => message['type'] === 'next', 'the viewer');
    expect(result['payload']).toEqual({ data: { viewer: { userId: 'seed-user' } } });
    raw.socket.close(1000);
  });
});
