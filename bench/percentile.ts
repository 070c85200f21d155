// The p-th quantile of sorted latencies (nearest rank), as every bench section reports them.

/** `sorted[⌊n·p⌋]`, the last one for p = 1, 0 for no samples. */
export const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
