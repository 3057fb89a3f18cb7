/** The report's notes on method: how each figure is measured and what it sums. */

import { E2E_HELD_P99_MS, E2E_RATE_TOLERANCE } from './e2e-summary.js';
import type { BenchOptions } from './options.js';
import { BULK_INPUTS } from './protocol.js';

/** Sentences for the report's "Notes", for the phases `options` ran. */
export function methodNotes(options: BenchOptions, confirmPollMs: number): string[] {
  const notes: string[] = [];
  if (options.fanout) {
    notes.push(
      "Fan-out steps time only the completing write: the tasks are created before the step window (their QUEUED events reach the server then), so each measured event is one publish, like the baseline's.",
    );
  }
  notes.push(
    'Latency = receive time in the load generator − sentAt stamped by the publisher (same machine clock, performance.timeOrigin + performance.now()). ' +
      'Lost = events the publisher sent successfully that no connection received within the drain time; duplicates = an event number received twice.',
    `Open+subscribe ends when the server reports every subscription in effect (service: the tss_subscriptions_active gauge, incremented once \`taskCompleted\` has subscribed to the bus and read the log cursor; baseline: once Redis confirmed the SUBSCRIBE), polled every ${confirmPollMs} ms (the service: \`/metrics?name=tss_subscriptions_active\`, which renders that gauge alone).`,
    'Memory per connection = (after − before) ÷ subscribed connections, after an idle settle time; heap after a full GC forced through the V8 inspector (each server runs with --inspect on 127.0.0.1), RSS from /proc/<pid>/status VmRSS.',
  );
  if (options.e2e) {
    notes.push(
      `End to end: each transport is its own ramp over --e2e-rates. A step is sustained when the publisher issued at least ${E2E_RATE_TOLERANCE * 100} % of the offered rate, ` +
        `nothing was lost, duplicated or refused, and p99 ≤ ${options.saturationP99Ms} ms (1 s unless --max-p99 is given); the ramp stops at the first step that is not. ` +
        `Saturation = the highest sustained rate ("N+": the ramp's last rate was still sustained, so the system was not saturated); held = the highest sustained rate with p99 ≤ ${E2E_HELD_P99_MS} ms.`,
      'CPU per task = CPU time of every process of the system under test in the step window ÷ completions received: ' +
        'the baseline = its http/ws server + its BullMQ worker process + Redis; Redis mode = the service process (its workers run inside it) + Redis; ' +
        'embedded mode = the service process. Redis is the whole Redis server (INFO cpu), so anything else using that Redis during the step counts too; it is also shown alone.',
      `A bulk call's ${BULK_INPUTS} tasks all carry the call's send time, so their latency includes the whole call.`,
    );
  }
  return notes;
}
