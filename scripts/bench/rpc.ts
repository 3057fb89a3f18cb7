/**
 * A tiny request/response channel between the bench orchestrator and its child processes: one JSON
 * object per line, requests on the child's stdin, replies on its stdout (so a child must log to
 * stderr only). Every request carries an id; a call that gets no reply in `timeoutMs` rejects.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** The commands a child answers: one argument in, one JSON-serialisable value out. */
export type RpcApi = Record<string, (arg: never) => Promise<unknown>>;

type Request = { readonly id: number; readonly cmd: string; readonly arg: unknown };
type Reply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string };

/** Child side: answers requests read from stdin with `handlers`, until stdin ends. */
export function serveRpc(handlers: RpcApi): void {
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    let request: Request;
    try {
      request = JSON.parse(line) as Request;
    } catch {
      process.stderr.write(`rpc: unreadable request ${line.slice(0, 200)}\n`);
      return;
    }
    const handler = handlers[request.cmd];
    const send = (reply: Reply) => process.stdout.write(`${JSON.stringify(reply)}\n`);
    if (!handler) {
      send({ id: request.id, ok: false, error: `unknown command ${request.cmd}` });
      return;
    }
    handler(request.arg as never).then(
      (value) => send({ id: request.id, ok: true, value: value ?? null }),
      (error: unknown) =>
        send({
          id: request.id,
          ok: false,
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        }),
    );
  });
  // The orchestrator went away: nothing left to do here.
  lines.on('close', () => process.exit(0));
}

/** Orchestrator side of {@link serveRpc}. */
export class RpcClient<Api extends RpcApi> {
  readonly #child: ChildProcess;
  readonly #name: string;
  readonly #pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();
  #nextId = 1;
  #exited: string | null = null;

  constructor(child: ChildProcess, name: string) {
    this.#child = child;
    this.#name = name;
    if (!child.stdout || !child.stdin) throw new Error(`${name}: child needs piped stdin and stdout`);
    createInterface({ input: child.stdout }).on('line', (line) => this.#onLine(line));
    child.once('exit', (code, signal) => {
      this.#exited = `${name} exited (code ${code}, signal ${signal})`;
      for (const [id, pending] of this.#pending) {
        clearTimeout(pending.timer);
        pending.reject(new Error(this.#exited));
        this.#pending.delete(id);
      }
    });
  }

  call<K extends keyof Api & string>(
    cmd: K,
    arg: Parameters<Api[K]>[0],
    timeoutMs = 120_000,
  ): Promise<Awaited<ReturnType<Api[K]>>> {
    if (this.#exited) return Promise.reject(new Error(this.#exited));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.#name}: no reply to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (value) => resolve(value as Awaited<ReturnType<Api[K]>>),
        reject,
        timer,
      });
      this.#child.stdin?.write(`${JSON.stringify({ id, cmd, arg: arg ?? null } satisfies Request)}\n`);
    });
  }

  #onLine(line: string): void {
    let reply: Reply;
    try {
      reply = JSON.parse(line) as Reply;
    } catch {
      process.stderr.write(`[${this.#name}:stdout] ${line}\n`);
      return;
    }
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    this.#pending.delete(reply.id);
    clearTimeout(pending.timer);
    if (reply.ok) pending.resolve(reply.value);
    else pending.reject(new Error(`${this.#name}: ${reply.error}`));
  }
}
