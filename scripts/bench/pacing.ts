/** Issuing operations at a fixed rate with a bound on those awaiting a reply. */
import { nowMs } from './sys.js';

/** Upper bound on the wait for replies after the last send. */
export const REPLY_TIMEOUT_MS = 30_000;

/**
 * What one operation came to: `null` when it succeeded, an error message when it failed, or a
 * tally when it carried several events (a bulk call: some of its inputs may fail alone).
 */
export type Outcome =
  | string
  | null
  | { readonly sent: number; readonly errors: number; readonly firstError: string | null };

export interface PaceResult {
  /** Operations issued. */
  issued: number;
  /** Events sent successfully (one per succeeded operation, or as its tally says). */
  sent: number;
  errors: number;
  firstError: string | null;
  /** From the first send to the last one issued. */
  issueMs: number;
  /** From the first send to the last reply. */
  elapsedMs: number;
}

/**
 * Issues `total` operations at `rate` per second (in 1 ms ticks), at most `maxInFlight` awaiting a
 * reply; gives up issuing after `maxIssueMs` (the rest count as not issued) and waiting for replies
 * after {@link REPLY_TIMEOUT_MS} more.
 */
export function paced(
  total: number,
  rate: number,
  maxInFlight: number,
  maxIssueMs: number,
  issue: (n: number) => Promise<Outcome>,
): Promise<PaceResult> {
  const started = nowMs();
  const result: PaceResult = { issued: 0, sent: 0, errors: 0, firstError: null, issueMs: 0, elapsedMs: 0 };
  let inFlight = 0;
  return new Promise((resolve) => {
    let issuing = true;
    let waitTimer: NodeJS.Timeout | undefined;
    const maybeDone = () => {
      if (issuing || inFlight > 0) return;
      clearTimeout(waitTimer);
      result.elapsedMs = nowMs() - started;
      resolve(result);
    };
    const onReply = (outcome: Outcome) => {
      inFlight--;
      if (outcome === null) result.sent++;
      else if (typeof outcome === 'string') {
        result.errors++;
        result.firstError ??= outcome;
      } else {
        result.sent += outcome.sent;
        result.errors += outcome.errors;
        result.firstError ??= outcome.firstError;
      }
      maybeDone();
    };
    const tick = () => {
      const elapsed = nowMs() - started;
      const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
      while (result.issued < due && inFlight < maxInFlight) {
        const n = result.issued++;
        inFlight++;
        issue(n).then(onReply, (error: unknown) =>
          onReply(error instanceof Error ? error.message : String(error)),
        );
      }
      if (result.issued >= total || elapsed >= maxIssueMs) {
        issuing = false;
        result.issueMs = nowMs() - started;
        waitTimer = setTimeout(() => {
          result.errors += inFlight;
          result.firstError ??= `${inFlight} replies missing after ${REPLY_TIMEOUT_MS} ms`;
          inFlight = 0;
          maybeDone();
        }, REPLY_TIMEOUT_MS);
        maybeDone();
        return;
      }
      setTimeout(tick, 1);
    };
    tick();
  });
}

/**
 * Operations per second actually issued: n operations paced at r/s span (n - 1) / r seconds. A
 * single operation issued in full counts as on time.
 */
export function achievedRate(result: PaceResult, total: number, rate: number): number {
  if (result.issued === 1 && total === 1) return rate;
  return result.issued > 1 && result.issueMs > 0 ? ((result.issued - 1) * 1000) / result.issueMs : 0;
}
