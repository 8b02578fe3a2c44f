/** Seeded randomness for the fleet bench: the same seed, the same fleet and the same run. */

/** A small, fast 32-bit generator (mulberry32): uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Draws from one generator: uniform, and lognormal around a median (latencies and data sizes are skewed). */
export class Draw {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }
  /** Lognormal with the given median and shape (sigma of the underlying normal), clamped to [min, max]. */
  lognormal(median: number, sigma: number, min = 0, max = Number.POSITIVE_INFINITY): number {
    // Box-Muller: one standard normal from two uniforms.
    const u = Math.max(this.next(), 1e-12);
    const v = this.next();
    const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    return Math.min(max, Math.max(min, median * Math.exp(sigma * normal)));
  }
}
