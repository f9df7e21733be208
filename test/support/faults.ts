/**
 * Helpers for the fault suites (test/faults/): a background HTTP load that counts every
 * failed request, JSON calls to the api, and a record of what each scenario measured (printed, and
 * written as JSON to $FAULTS_RESULTS when set, which is where docs/RELIABILITY.md takes its numbers).
 */
import { appendFileSync } from 'node:fs';
import { httpGet, jsonCall, type JsonResponse } from '../../harness/http.js';

/** Requests sent one after the other (per lane) until stop(); every failure is kept with its time. */
export class HttpLoad {
  ok = 0;
  readonly failures: Array<{ at: number; what: string }> = [];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly url: string,
    private readonly opts: { lanes?: number; host?: string; timeoutMs?: number; pauseMs?: number; expect?: (body: string) => boolean } = {},
  ) {}

  start(): this {
    this.running = true;
    this.loops = Array.from({ length: this.opts.lanes ?? 2 }, () => this.loop());
    return this;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        const r = await httpGet(this.url, { host: this.opts.host, timeoutMs: this.opts.timeoutMs ?? 5000 });
        if (r.status === 200 && (this.opts.expect?.(r.body) ?? true)) this.ok++;
        else this.failures.push({ at: Date.now(), what: `status ${r.status}: ${r.body.slice(0, 80)}` });
      } catch (err) {
        this.failures.push({ at: Date.now(), what: (err as Error).message });
      }
      await new Promise((r) => setTimeout(r, this.opts.pauseMs ?? 10));
    }
  }

  /** Counts between two moments (a scenario's window). */
  mark(): { ok: number; failed: number } {
    return { ok: this.ok, failed: this.failures.length };
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** One JSON call; a connection error comes back as status 0 (the copy is down), never a throw. */
export async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = 10000): Promise<JsonResponse> {
  const t0 = performance.now();
  try {
    return await jsonCall(method, url, body, headers, timeoutMs);
  } catch (err) {
    return { status: 0, headers: new Headers(), text: (err as Error).message, json: null, ms: performance.now() - t0 };
  }
}

/** What a scenario measured: printed under the test, and appended to $FAULTS_RESULTS (JSON lines). */
export function measured(scenario: string, values: Record<string, unknown>): void {
  const line = Object.entries(values)
    .map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : JSON.stringify(v)}`)
    .join(' ');
  console.log(`      measured ${scenario}: ${line}`);
  if (process.env.FAULTS_RESULTS) appendFileSync(process.env.FAULTS_RESULTS, JSON.stringify({ scenario, at: new Date().toISOString(), ...values }) + '\n');
}

/** Milliseconds since `t0`, rounded. */
export function since(t0: number): number {
  return Math.round(Date.now() - t0);
}
