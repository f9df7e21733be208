/**
 * Checks a rule (ACL) with HAProxy before the api acknowledges it: the rule goes into a small probe
 * config in the form the default template gives it (common/core/rule-probe.ts), and `haproxy -c` reads
 * it, as every worker will read the full config. A rule HAProxy rejects is a 400 with HAProxy's own
 * reason, and nothing is stored.
 *
 * Probes are cached by the rule's shape (fetch, converters, flags; patterns only where HAProxy parses
 * them), so a host or path edit reuses an earlier verdict and bulk creation starts a handful of
 * HAProxy processes; rules of one shape checked at the same time share one run. Runs are bounded
 * (`concurrency` at once, `maxQueue` waiting, a timeout each) and get a minimal environment (PATH
 * only), in a temp dir removed afterwards.
 *
 * `Bamboo.RuleCheck`: `haproxy` (default) refuses writes with a 503 while HAProxy cannot be run on
 * the api host; `off` stores rules unchecked (the workers still validate and quarantine).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError } from '../common/core/errors.js';
import { runFile } from '../common/adapters/haproxy/commands.js';
import type { Logger } from '../common/log.js';
import { probeConfig, probeRefusal, ruleReasons, ruleShapeKey } from '../common/core/rule-probe.js';

export type RuleCheckMode = 'haproxy' | 'off';

export interface RuleCheckOptions {
  mode: RuleCheckMode;
  /** HAProxy.Binary. */
  binary: string;
  /** Bamboo.RuleCheckTimeoutMs: one `haproxy -c` run. */
  timeoutMs: number;
  log: Logger;
  /** HAProxy processes at once (default 2). */
  concurrency?: number;
  /** Shapes whose verdict is kept (least recently used dropped first; default 10,000). */
  cacheSize?: number;
  /** Checks waiting for a run slot before new ones get a 503 (default 200). */
  maxQueue?: number;
}

export type RuleVerdict = { ok: true } | { ok: false; reasons: string[] };

export interface RuleCheckStatus {
  /** Bamboo.RuleCheck. */
  ruleCheck: RuleCheckMode;
  /** HAProxy could be run on this host (null: not looked at, as with `off`). */
  available: boolean | null;
  /** First line of `haproxy -v`, when it ran. */
  version: string | null;
  /** Why HAProxy is not available, or why the last run failed to run at all. */
  reason: string | null;
  /** `haproxy -c` runs started for rule checks (cache misses). */
  runs: number;
  /** Checks answered from the cache or from a run in progress for the same shape. */
  cached: number;
  /** Rules HAProxy rejected. */
  rejected: number;
  /** Shapes in the cache. */
  shapes: number;
}

/** HAProxy could not give a verdict (absent, crashed, timed out, too busy): a 503, nothing stored. */
export class RuleCheckUnavailable extends Error {
  override name = 'RuleCheckUnavailable';
}

const MINIMAL_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export class RuleChecker {
  private readonly concurrency: number;
  private readonly cacheSize: number;
  private readonly maxQueue: number;
  /** Shape key -> verdict, in least-recently-used order (Map keeps insertion order). */
  private readonly cache = new Map<string, RuleVerdict>();
  private readonly inFlight = new Map<string, Promise<RuleVerdict>>();
  private readonly waiting: Array<() => void> = [];
  private active = 0;
  private available: boolean | null = null;
  private version: string | null = null;
  private reason: string | null = null;
  private runs = 0;
  private cached = 0;
  private rejected = 0;

  constructor(private readonly opts: RuleCheckOptions) {
    this.concurrency = Math.max(1, opts.concurrency ?? 2);
    this.cacheSize = Math.max(1, opts.cacheSize ?? 10_000);
    this.maxQueue = Math.max(0, opts.maxQueue ?? 200);
  }

  /**
   * Looks for HAProxy (`haproxy -v`) and logs one warning line when it cannot be run while
   * `Bamboo.RuleCheck` is `haproxy`. Never rejects. Nothing to do with `off`.
   */
  async start(): Promise<void> {
    if (this.opts.mode === 'off') {
      this.opts.log.info({ ruleCheck: 'off' }, 'rules are stored without an HAProxy check (Bamboo.RuleCheck=off)');
      return;
    }
    const r = await runFile(this.opts.binary, ['-v'], { timeoutMs: this.opts.timeoutMs, env: this.env() });
    if (r.ok) {
      this.available = true;
      this.version = r.output.split('\n')[0].trim().slice(0, 200) || null;
      this.reason = null;
    } else {
      this.available = false;
      this.reason = `${this.opts.binary} -v failed: ${describeFailure(r)}`;
      this.opts.log.warn(
        { binary: this.opts.binary, reason: this.reason },
        'HAProxy cannot be run on this api host: rule writes are refused (503) until it can; install HAProxy or set Bamboo.RuleCheck=off',
      );
    }
  }

  status(): RuleCheckStatus {
    return {
      ruleCheck: this.opts.mode,
      available: this.available,
      version: this.version,
      reason: this.reason,
      runs: this.runs,
      cached: this.cached,
      rejected: this.rejected,
      shapes: this.cache.size,
    };
  }

  /**
   * HAProxy's verdict on a rule (trimmed, as the template data holds it). Rejects with
   * RuleCheckUnavailable when HAProxy could not be run, timed out, or too many checks are waiting,
   * and with a 400 ApiError (`BAMBOO_INVALID_ACL`, reason `ACL_FILE_ACCESS`) for a rule that would
   * make HAProxy read a file (never probed). Always `{ ok: true }` with `off`.
   */
  async check(acl: string): Promise<RuleVerdict> {
    if (this.opts.mode === 'off') return { ok: true };
    const rule = acl.trim();
    // Never let a probe read files: HAProxy would quote them back in its alerts.
    const refusal = probeRefusal(rule);
    if (refusal) throw new ApiError('BAMBOO_INVALID_ACL', `${refusal} (HAProxy would read it when the config is loaded)`, { reason: 'ACL_FILE_ACCESS' });
    const key = ruleShapeKey(rule);
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      this.cached++;
      return this.count(hit);
    }
    const running = this.inFlight.get(key);
    if (running) {
      this.cached++;
      return this.count(await running);
    }
    const p = this.probe(rule);
    this.inFlight.set(key, p);
    try {
      const verdict = await p;
      this.cache.set(key, verdict);
      if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value as string);
      return this.count(verdict);
    } finally {
      this.inFlight.delete(key);
    }
  }

  /** check() for the write path: a rejection is a 400, no verdict a 503 (both coded). */
  async assertAccepted(acl: string): Promise<void> {
    let verdict: RuleVerdict;
    try {
      verdict = await this.check(acl);
    } catch (err) {
      if (!(err instanceof RuleCheckUnavailable)) throw err;
      throw new ApiError(
        'BAMBOO_RULE_CHECK_UNAVAILABLE',
        `the rule could not be checked with HAProxy (${err.message}); nothing was stored. Retry later; GET /status shows "haproxy"`,
        {},
        { 'Retry-After': '5' },
      );
    }
    if (verdict.ok) return;
    const reason = verdict.reasons.length > 0 ? verdict.reasons.join('; ') : 'HAProxy rejected it without a reason';
    throw new ApiError('BAMBOO_ACL_REJECTED_BY_HAPROXY', `HAProxy rejects this rule: ${reason}; nothing was stored`, { haproxy: verdict.reasons });
  }

  private count(v: RuleVerdict): RuleVerdict {
    if (!v.ok) this.rejected++;
    return v;
  }

  private env(): NodeJS.ProcessEnv {
    // Never the api's own environment: it holds the ZooKeeper digest and the auth token.
    return { PATH: process.env.PATH || MINIMAL_PATH };
  }

  private async slot(): Promise<void> {
    if (this.active < this.concurrency) {
      this.active++;
      return;
    }
    if (this.waiting.length >= this.maxQueue) throw new RuleCheckUnavailable(`${this.waiting.length} rule checks are already waiting`);
    // The slot is handed over by release(), so active stays counted.
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  private async probe(rule: string): Promise<RuleVerdict> {
    await this.slot();
    let dir: string | null = null;
    try {
      dir = await mkdtemp(join(tmpdir(), 'bamboo-rule-'));
      const probe = probeConfig(rule);
      const file = join(dir, 'probe.cfg');
      await writeFile(file, probe.text, { mode: 0o600 });
      this.runs++;
      const r = await runFile(this.opts.binary, ['-c', '-f', file], { timeoutMs: this.opts.timeoutMs, cwd: dir, env: this.env() });
      if (r.ok) {
        this.setAvailable();
        return { ok: true };
      }
      // HAProxy ran and refused the file (exit 1 with alerts); anything else is no verdict.
      const reasons = ruleReasons(r.output, probe);
      if (!r.timedOut && r.code !== null && r.code !== 0 && r.signal === null && reasons.length > 0) {
        this.setAvailable();
        return { ok: false, reasons };
      }
      const why = describeFailure(r);
      if (r.code === null && !r.timedOut) {
        this.available = false;
        this.reason = `${this.opts.binary} -c failed: ${why}`;
      }
      this.opts.log.warn({ binary: this.opts.binary, reason: why }, 'rule check gave no verdict');
      throw new RuleCheckUnavailable(why);
    } finally {
      this.release();
      if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private setAvailable(): void {
    this.available = true;
    this.reason = null;
  }
}

function describeFailure(r: { timedOut: boolean; code: number | null; signal: string | null; output: string }): string {
  if (r.timedOut) return 'HAProxy timed out (Bamboo.RuleCheckTimeoutMs)';
  const last = r.output.trim().split('\n').pop()?.trim().slice(0, 200) ?? '';
  if (r.signal) return `HAProxy was killed by ${r.signal}`;
  if (r.code === null) return last || 'HAProxy could not be started';
  return `HAProxy exited with ${r.code}${last ? `: ${last}` : ''}`;
}
