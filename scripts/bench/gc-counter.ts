/** Counts a server's GC work from its `--trace-gc` lines. */

/** Running GC totals of one isolate. */
export interface GcTotals {
  scavenges: number;
  scavengeMs: number;
  markCompacts: number;
  /** Atomic (final) pauses of major GCs. */
  majorPauseMs: number;
  /** Incremental marking steps interleaved with JavaScript before major GCs ("+ X ms in N steps"). */
  markingMs: number;
  /** Longest single major pause or marking step since the last mark. */
  longestMs: number;
}

/**
 * Counts GC work from a child's `--trace-gc` lines. Lines start with `[pid:isolate]`; the busiest
 * isolate is the main thread (a loader thread, if any, runs beside it).
 */
export class GcCounter {
  readonly #isolates = new Map<string, GcTotals>();

  onLine(line: string): void {
    const match =
      /^\[\d+:(0x[0-9a-f]+)\]\s+\d+ ms: (Scavenge|Minor Mark-Compact|Mark-Compact|Mark-Sweep)[^,]*, ([\d.]+) \/ [\d.]+ ms(?:\s+\(\+ ([\d.]+) ms in \d+ steps since start of marking, biggest step ([\d.]+) ms)?/.exec(
        line,
      );
    if (!match?.[1]) return;
    let totals = this.#isolates.get(match[1]);
    if (!totals) {
      totals = { scavenges: 0, scavengeMs: 0, markCompacts: 0, majorPauseMs: 0, markingMs: 0, longestMs: 0 };
      this.#isolates.set(match[1], totals);
    }
    const pause = Number(match[3]);
    if (match[2] === 'Scavenge' || match[2] === 'Minor Mark-Compact') {
      totals.scavenges++;
      totals.scavengeMs += pause;
      return;
    }
    totals.markCompacts++;
    totals.majorPauseMs += pause;
    totals.markingMs += Number(match[4] ?? 0);
    totals.longestMs = Math.max(totals.longestMs, pause, Number(match[5] ?? 0));
  }

  /** Totals of the main isolate so far; `longestMs` since the previous mark. */
  mark(): GcTotals {
    let main: GcTotals | undefined;
    for (const totals of this.#isolates.values()) {
      if (!main || totals.scavenges > main.scavenges) main = totals;
    }
    const snapshot = main
      ? { ...main }
      : { scavenges: 0, scavengeMs: 0, markCompacts: 0, majorPauseMs: 0, markingMs: 0, longestMs: 0 };
    if (main) main.longestMs = 0;
    return snapshot;
  }
}
