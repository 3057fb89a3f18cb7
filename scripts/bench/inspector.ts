/**
 * Reads a child's V8 heap through the inspector protocol (the child runs with
 * `--inspect=127.0.0.1:<port>`): a full GC first, so that "heap per connection" measures what the
 * connections keep alive rather than where the collector happened to be. No change to the service.
 */
import WebSocket from 'ws';
import { httpGet } from './sys.js';

interface InspectorTarget {
  readonly webSocketDebuggerUrl?: string;
}

interface InspectorReply {
  readonly id?: number;
  readonly result?: { usedSize?: number; totalSize?: number };
  readonly error?: { message: string };
}

/** Used V8 heap in bytes after a full garbage collection. */
export async function heapAfterGc(inspectPort: number, timeoutMs = 20_000): Promise<number> {
  const targets = JSON.parse(
    (await httpGet(`http://127.0.0.1:${inspectPort}/json/list`)).body,
  ) as InspectorTarget[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error('no inspector target');
  const socket = new WebSocket(url, { perMessageDeflate: false });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    let nextId = 1;
    const call = (method: string) =>
      new Promise<InspectorReply['result']>((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => reject(new Error(`inspector: no reply to ${method}`)), timeoutMs);
        const onMessage = (data: WebSocket.RawData) => {
          const reply = JSON.parse(data.toString()) as InspectorReply;
          if (reply.id !== id) return;
          socket.off('message', onMessage);
          clearTimeout(timer);
          if (reply.error) reject(new Error(`inspector ${method}: ${reply.error.message}`));
          else resolve(reply.result);
        };
        socket.on('message', onMessage);
        socket.send(JSON.stringify({ id, method }));
      });
    await call('HeapProfiler.collectGarbage');
    const usage = await call('Runtime.getHeapUsage');
    if (typeof usage?.usedSize !== 'number') throw new Error('inspector: no heap usage');
    return usage.usedSize;
  } finally {
    socket.terminate();
  }
}

/** Bytes and objects of one kind (constructor or V8 node type) in a heap snapshot. */
export interface HeapKind {
  readonly name: string;
  readonly count: number;
  readonly bytes: number;
}

interface HeapSnapshotJson {
  readonly snapshot: { readonly meta: { readonly node_fields: string[]; readonly node_types: [string[]] } };
  readonly nodes: number[];
  readonly strings: string[];
}

/**
 * Takes a heap snapshot through the inspector (after a full GC, which the snapshot does itself) and
 * returns the self size and count of objects per kind: `Constructor` for objects, `(closure) name`,
 * `(string)`, `(array)`, `(code)`, and so on.
 */
export async function heapByKind(inspectPort: number, timeoutMs = 300_000): Promise<Map<string, HeapKind>> {
  const targets = JSON.parse(
    (await httpGet(`http://127.0.0.1:${inspectPort}/json/list`)).body,
  ) as InspectorTarget[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error('no inspector target');
  const socket = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1024 * 1024 * 1024 });
  const chunks: string[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('inspector: heap snapshot timed out')), timeoutMs);
      socket.on('message', (data: WebSocket.RawData) => {
        const message = JSON.parse(data.toString()) as {
          id?: number;
          method?: string;
          params?: { chunk?: string };
          error?: { message: string };
        };
        if (message.method === 'HeapProfiler.addHeapSnapshotChunk' && message.params?.chunk) {
          chunks.push(message.params.chunk);
        } else if (message.id === 1) {
          clearTimeout(timer);
          if (message.error) reject(new Error(message.error.message));
          else resolve();
        }
      });
      socket.send(
        JSON.stringify({ id: 1, method: 'HeapProfiler.takeHeapSnapshot', params: { reportProgress: false } }),
      );
    });
  } finally {
    socket.terminate();
  }
  const snapshot = JSON.parse(chunks.join('')) as HeapSnapshotJson;
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const kinds = new Map<string, { name: string; count: number; bytes: number }>();
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt] ?? 0] ?? 'unknown';
    const name = snapshot.strings[snapshot.nodes[i + nameAt] ?? 0] ?? '';
    const key =
      type === 'object' ? name : type === 'closure' ? `(closure) ${name || 'anonymous'}` : `(${type})`;
    const kind = kinds.get(key) ?? { name: key, count: 0, bytes: 0 };
    kind.count++;
    kind.bytes += snapshot.nodes[i + sizeAt] ?? 0;
    kinds.set(key, kind);
  }
  return kinds;
}
