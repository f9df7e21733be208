/** What every scenario gets from bench/run.ts. */
export interface Ctx {
  /** Scaled-down sizes and a few iterations (npm test runs this). */
  smoke: boolean;
  /** Connection string of the ZooKeeper shared by the run (each stack uses its own paths). */
  zk: string;
  /** A temp directory for this run (removed at exit). */
  dir: string;
  /** A progress line on stderr. */
  log(line: string): void;
  /** `--set scenario.key=value` overrides (numbers, or comma-separated numbers for lists). */
  overrides: Record<string, string>;
}

/**
 * The scenario's parameters with `--set <scenario>.<key>=<value>` applied: a number replaces a
 * number, a comma-separated list of numbers replaces a list. An unknown key is an error, so a typo
 * cannot silently run the defaults.
 */
export function withOverrides<T extends object>(ctx: Ctx, scenario: string, params: T): T {
  const out = { ...params } as Record<string, unknown>;
  for (const [k, v] of Object.entries(ctx.overrides)) {
    const [s, key] = k.split('.', 2);
    if (s !== scenario) continue;
    if (!(key in out)) throw new Error(`--set ${k}: ${scenario} has no parameter ${key} (it has ${Object.keys(out).join(', ')})`);
    const nums = v.split(',').map(Number);
    if (nums.some((n) => !Number.isFinite(n))) throw new Error(`--set ${k}=${v}: not a number or list of numbers`);
    out[key] = Array.isArray(out[key]) ? nums : nums[0];
  }
  return out as T;
}
