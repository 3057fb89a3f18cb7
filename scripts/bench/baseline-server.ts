/**
 * The benchmark's baseline: a minimal raw `ws` + ioredis server that unicasts each message of a
 * user's Redis channel to that user's sockets — what the service does, minus GraphQL, auth, the
 * event log and every guarantee. It speaks just enough graphql-transport-ws for the load generator
 * (connection_init -> connection_ack; subscribe -> SUBSCRIBE the user's channel; ping -> pong) and
 * wraps each Redis message, which is already the frame's payload, as a `next` frame without parsing
 * it. Like the service it subscribes to a user's channel while that user has a socket here, and
 * pings each socket every KEEPALIVE_MS from a timer of its own.
 *
 * For the end-to-end baseline (JOBS_ENDPOINT=1) it also serves `POST /tasks`, which adds a BullMQ
 * job that the baseline worker process (e2e-baseline/worker.ts) runs and publishes the completion of
 * on the user's channel: see e2e-baseline/job-endpoint.ts.
 *
 * Environment: PORT, REDIS_URL, REDIS_KEY_PREFIX (channels `<prefix>:{u:<user>}:live`, the queue
 * under `{<prefix>:q}`), KEEPALIVE_MS, JOBS_ENDPOINT.
 * `GET /stats` answers `{ connections, subscribed, heapUsed, rss }`; `subscribed` counts channels whose
 * SUBSCRIBE Redis has confirmed.
 */
import http from 'node:http';
import { Redis } from 'ioredis';
import { type WebSocket, WebSocketServer } from 'ws';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { createJobEndpoint } from './e2e-baseline/job-endpoint.js';

const port = Number(process.env['PORT'] ?? 4100);
const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const keys = new RedisKeys(process.env['REDIS_KEY_PREFIX'] ?? 'baseline');
const keepAliveMs = Number(process.env['KEEPALIVE_MS'] ?? 12_000);
const jobs = process.env['JOBS_ENDPOINT'] === '1' ? createJobEndpoint(redisUrl, keys.queuePrefix()) : null;

interface Listener {
  readonly socket: WebSocket;
  /** The `next` frame up to its payload. */
  readonly head: string;
}

const subscriber = new Redis(redisUrl, { maxRetriesPerRequest: null });
/** Channel -> sockets listening on it here. */
const channels = new Map<string, Set<Listener>>();
let subscribed = 0;

subscriber.on('message', (channel: string, message: string) => {
  const listeners = channels.get(channel);
  if (!listeners) return;
  for (const listener of listeners) listener.socket.send(`${listener.head}${message}}`);
});

function listen(channel: string, listener: Listener): void {
  let listeners = channels.get(channel);
  if (!listeners) {
    listeners = new Set();
    channels.set(channel, listeners);
    subscriber.subscribe(channel).then(
      () => {
        subscribed++;
      },
      (error: unknown) => console.error('subscribe failed', error),
    );
  }
  listeners.add(listener);
}

function unlisten(channel: string, listener: Listener): void {
  const listeners = channels.get(channel);
  if (!listeners) return;
  listeners.delete(listener);
  if (listeners.size > 0) return;
  channels.delete(channel);
  subscribed--;
  subscriber.unsubscribe(channel).catch((error: unknown) => console.error('unsubscribe failed', error));
}

const server = http.createServer((req, res) => {
  if (req.url === '/stats') {
    const memory = process.memoryUsage();
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        connections: wss.clients.size,
        subscribed,
        heapUsed: memory.heapUsed,
        rss: memory.rss,
      }),
    );
    return;
  }
  if (jobs && req.method === 'POST' && req.url === '/tasks') {
    jobs.handle(req, res);
    return;
  }
  res.writeHead(404).end();
});

const wss = new WebSocketServer({
  server,
  path: '/graphql',
  perMessageDeflate: false,
  handleProtocols: (protocols) => (protocols.has('graphql-transport-ws') ? 'graphql-transport-ws' : false),
});

wss.on('connection', (socket: WebSocket) => {
  const own: { channel: string; listener: Listener }[] = [];
  socket.on('message', (data: WebSocket.RawData) => {
    let message: { type?: unknown; id?: unknown; payload?: { variables?: { u?: unknown } } };
    try {
      message = JSON.parse(data.toString()) as typeof message;
    } catch {
      socket.close(4400, 'Invalid message');
      return;
    }
    if (message.type === 'connection_init') socket.send('{"type":"connection_ack"}');
    else if (message.type === 'ping') socket.send('{"type":"pong"}');
    else if (message.type === 'subscribe' && typeof message.id === 'string') {
      const user = message.payload?.variables?.u;
      if (typeof user !== 'string') {
        socket.send(JSON.stringify({ id: message.id, type: 'error', payload: [{ message: 'no user' }] }));
        return;
      }
      const channel = keys.live(user);
      const listener: Listener = {
        socket,
        head: `{"id":${JSON.stringify(message.id)},"type":"next","payload":`,
      };
      own.push({ channel, listener });
      listen(channel, listener);
    }
  });
  socket.on('close', () => {
    for (const { channel, listener } of own) unlisten(channel, listener);
  });
  socket.on('error', () => socket.terminate());
});

/** Keep-alive as the service does it: a timer per socket (so pings are spread, not one burst). */
wss.on('connection', (socket: WebSocket) => {
  let pongWait: NodeJS.Timeout | null = null;
  const ping = setInterval(() => {
    if (socket.readyState !== socket.OPEN) return;
    pongWait = setTimeout(() => socket.terminate(), keepAliveMs);
    socket.once('pong', () => {
      if (pongWait) clearTimeout(pongWait);
      pongWait = null;
    });
    socket.ping();
  }, keepAliveMs);
  socket.once('close', () => {
    clearInterval(ping);
    if (pongWait) clearTimeout(pongWait);
  });
});

subscriber.once('ready', () => {
  server.listen(port, '127.0.0.1', () => console.log(`baseline listening on ${port}`));
});

const stop = () => {
  for (const socket of wss.clients) socket.terminate();
  server.close();
  subscriber.disconnect();
  (jobs?.close() ?? Promise.resolve()).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
