/** Side-by-side tables of figures, as the benchmarks print them. */

/** Right-aligned columns of the given widths; the first one left-aligned. */
export function columns(widths: number[], cells: string[]): string {
  return `  ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' ')}`;
}

/** A share as a percentage with one decimal; - when there is none (0 / 0). */
export const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : '-');

/** Milliseconds as seconds with two decimals. */
export const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
