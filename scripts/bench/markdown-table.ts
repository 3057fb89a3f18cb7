/** Markdown tables and the number formats the bench report writes in them. */

/** A number with `decimals` decimals, or — when missing. */
export const fmt = (value: number | null | undefined, decimals = 0) =>
  value === null || value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(decimals);
export const kb = (bytes: number | null | undefined) =>
  bytes === null || bytes === undefined ? '—' : `${(bytes / 1024).toFixed(1)} KB`;
export const mb = (bytes: number | null | undefined) =>
  bytes === null || bytes === undefined ? '—' : `${(bytes / 1024 / 1024).toFixed(0)} MB`;
/** A ratio as `1.23×`, or — when missing. */
export const times = (value: number | null | undefined) =>
  value === null || value === undefined ? '—' : `${value.toFixed(2)}×`;

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
}
