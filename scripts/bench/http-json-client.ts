/** JSON POSTs over keep-alive HTTP connections, as the publisher sends them to the system under test. */
import http from 'node:http';
import { REPLY_TIMEOUT_MS } from './pacing.js';

/** A request that failed on a reused keep-alive socket the server had just closed: it never arrived. */
class StaleSocketError extends Error {}

export interface JsonReply {
  readonly status: number;
  /** The parsed body; `null` when it was not JSON. */
  readonly body: unknown;
  /** The body as text, for error messages. */
  readonly text: string;
}

const newAgent = () =>
  // Idle sockets go before the server's 5 s keep-alive timeout would close them under a request.
  new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 4_000 });

/**
 * Keep-alive HTTP connections to one server, replaced by {@link JsonHttpClient.refresh} before each
 * phase: between phases they sit idle longer than the server's keep-alive timeout, and a request on
 * a socket the server is closing fails with ECONNRESET.
 */
export class JsonHttpClient {
  #agent = newAgent();

  refresh(): void {
    this.#agent.destroy();
    this.#agent = newAgent();
  }

  close(): void {
    this.#agent.destroy();
  }

  /** POSTs `body` as JSON; a request lost to a stale keep-alive socket is sent once more. */
  async post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonReply> {
    const text = JSON.stringify(body);
    try {
      return await this.#post(url, text, headers);
    } catch (error) {
      if (error instanceof StaleSocketError) return this.#post(url, text, headers);
      throw error;
    }
  }

  #post(url: string, body: string, headers: Record<string, string>): Promise<JsonReply> {
    return new Promise((resolve, reject) => {
      const request = http.request(
        url,
        {
          method: 'POST',
          agent: this.#agent,
          headers: {
            ...headers,
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(body)),
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: unknown = null;
            try {
              parsed = JSON.parse(text);
            } catch {
              // Not JSON: the caller reports the text.
            }
            resolve({ status: response.statusCode ?? 0, body: parsed, text });
          });
          response.on('error', reject);
        },
      );
      request.setTimeout(REPLY_TIMEOUT_MS, () => request.destroy(new Error('request timed out')));
      request.on('error', (error: NodeJS.ErrnoException) => {
        const stale =
          request.reusedSocket && (error.code === 'ECONNRESET' || error.message === 'socket hang up');
        reject(stale ? new StaleSocketError(error.message) : error);
      });
      request.end(body);
    });
  }
}
