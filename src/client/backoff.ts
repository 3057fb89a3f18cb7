/**
 * Jittered exponential backoff: the delay before retry number `retries` (0-based) lies between
 * half and all of `minDelayMs`·2^retries, capped at `maxDelayMs`.
 */
export function backoff(minDelayMs: number, maxDelayMs: number): (retries: number) => number {
  return (retries) => {
    const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(retries, 30));
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  };
}
