/** The orchestrator's progress lines, on stderr (stdout carries the report). */
export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
