import type { ControlChannel, ControlMessage } from '../../tasks/ports.js';

/**
 * The control channel of a single process: every listener of this process hears each message, at
 * once, and nothing is ever missed (no gap).
 */
export class MemoryControl implements ControlChannel {
  readonly #listeners = new Set<(message: ControlMessage) => void>();

  async publish(message: ControlMessage): Promise<number> {
    const listeners = [...this.#listeners];
    for (const listener of listeners) listener(message);
    return listeners.length;
  }

  async subscribe(listener: (message: ControlMessage) => void): Promise<() => void> {
    const entry = (message: ControlMessage) => listener(message);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }
}
