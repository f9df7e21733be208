/** Summaries of repeated measurements: median and spread, never a lone number. */

export interface Summary {
  n: number;
  min: number;
  p10: number;
  median: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export const round = (x: number, digits = 1): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** Nearest-rank quantile of sorted samples (q in 0..1). */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** Median (mean of the two middle samples for an even count), p10/p90/p99 by nearest rank, min, max. */
export function summarize(samples: number[], digits = 1): Summary {
  const xs = samples.filter((x) => Number.isFinite(x));
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { n: 0, min: NaN, p10: NaN, median: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const mid = n >> 1;
  const median = n % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  const r = (x: number) => round(x, digits);
  return {
    n,
    min: r(s[0]),
    p10: r(quantile(s, 0.1)),
    median: r(median),
    p90: r(quantile(s, 0.9)),
    p99: r(quantile(s, 0.99)),
    max: r(s[n - 1]),
    mean: r(s.reduce((a, b) => a + b, 0) / n),
  };
}

/** Summaries of every numeric key seen in a list of records (e.g. per-stage timings). */
export function summarizeKeys(records: Array<Record<string, number | undefined>>, digits = 1): Record<string, Summary> {
  const keys = new Set<string>();
  for (const r of records) for (const [k, v] of Object.entries(r)) if (typeof v === 'number') keys.add(k);
  const out: Record<string, Summary> = {};
  for (const k of keys) out[k] = summarize(records.map((r) => r[k]).filter((v): v is number => typeof v === 'number'), digits);
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value; throws with the label after timeoutMs. */
export async function until<T>(fn: () => T | Promise<T>, label: string, timeoutMs = 30000, everyMs = 5): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}
