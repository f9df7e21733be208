/**
 * Scenario 7, memory: peak RSS (`VmHWM`) and final RSS (`VmRSS`) of the real `bamboo api` and
 * `bamboo worker` processes (the demo stack: compiled dist/, managed HAProxy) at N apps, 3 tasks each,
 * with `rules` rules, through a cold start, a few task changes, a new app and a rule edit.
 *
 * The same run measures the previous build beside this one when `BENCH_MEMORY_BASELINE` names the root
 * of another checkout with a built dist/ (e.g. `git worktree add /tmp/base <commit>` then `tsc` there,
 * `node_modules` linked): its demo module starts its own processes. Builds alternate per size
 * (baseline, current), each on a fresh stack, so both see the same machine load.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { execFileSync } from 'node:child_process';
import type { startDemo } from '../../cli/demo.js';
import { httpGet } from '../../harness/http.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import { load } from '../lib/machine.js';
import { startDemoStack, type DemoStack } from '../lib/stack.js';
import { round, until } from '../lib/stats.js';

export interface MemoryParams {
  sizes: number[];
  rules: number;
  taskChanges: number;
}

export function memoryParams(ctx: Ctx): MemoryParams {
  return withOverrides(ctx, 'memory', ctx.smoke ? { sizes: [20], rules: 5, taskChanges: 1 } : { sizes: [100, 1000, 10000], rules: 1000, taskChanges: 3 });
}

/** `VmHWM` and `VmRSS` of a process in MB (NaN when it is gone). */
export function procMemory(pid: number): { peakMB: number; rssMB: number } {
  let text = '';
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return { peakMB: NaN, rssMB: NaN };
  }
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN);
  return { peakMB: round(kb('VmHWM') / 1024), rssMB: round(kb('VmRSS') / 1024) };
}

async function routedTo(url: string, name: string, host?: string): Promise<void> {
  await until(async () => {
    const r = await httpGet(url, { host, timeoutMs: 5000 }).catch(() => null);
    return r !== null && r.status === 200 && (name === '' || r.body.startsWith(`${name} `));
  }, `${url} (Host ${host ?? '-'}) routed to ${name || 'any backend'}`, 300000, 50);
}

async function putRule(api: string, id: string, acl: string): Promise<void> {
  const res = await fetch(`${api}/api/services/${id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ acl }) });
  await res.text();
  if (res.status !== 200 && res.status !== 201) throw new Error(`PUT rule for ${id}: ${res.status}`);
}

/** Drives the changes and reads every bamboo process's memory at the end. */
async function measure(ctx: Ctx, stack: DemoStack, p: MemoryParams, coldMs: number) {
  const { sim, haproxy, size, appIds } = stack;
  const rules = Math.min(p.rules, size);
  const t0 = performance.now();
  // Rules written 20 at a time through both api copies, then the worker has them all.
  for (let r = 0; r < rules; r += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, rules - r) }, (_, j) => {
        const i = r + j;
        return putRule(stack.apis[i % 2], appIds[(i * 7) % size], `hdr(host) -i r${i}.mem`);
      }),
    );
  }
  if (rules) await routedTo(`${haproxy}/`, '', `r${rules - 1}.mem`);
  const rulesMs = performance.now() - t0;
  ctx.log(`memory: ${size} apps, ${rules} rules routed in ${Math.round(rulesMs)} ms`);
  for (let k = 0; k < p.taskChanges; k++) {
    const id = appIds[(k * 7919 + 17) % size];
    const b = await stack.backend(`m${size}-${k}`);
    sim.scaleApp(id, sim.tasks(id).length + 1, { tasks: [{ host: '127.0.0.1', ports: [b.port] }] });
    // The backend balances by leastconn, so a request may not reach the new task: the file HAProxy
    // runs (written by the Runtime API path too) says it is in.
    await until(() => readFileSync(stack.cfgPath, 'utf8').includes(`127.0.0.1:${b.port}`), `task ${k} of ${id} in the config`, 300000, 100);
  }
  const fresh = await stack.backend(`m${size}-new`);
  sim.deployApp({ id: '/bench/memory/new', cmd: 'x', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [{ host: '127.0.0.1', ports: [fresh.port] }] });
  await routedTo(`${haproxy}/bench/memory/new/`, fresh.name);
  await putRule(stack.apis[0], appIds[1 % size], `hdr(host) -i edited.mem`);
  await routedTo(`${haproxy}/`, '', 'edited.mem');
  await stack.settle(1000);
  const apis = stack.demo.apis.map((a) => procMemory(a.pid));
  return {
    apps: size,
    rules,
    coldStartMs: round(coldMs),
    rulesWrittenMs: round(rulesMs),
    // One copy (the stream leader) fetches from Marathon, the other reads the snapshot back: the larger peak counts.
    apiPeakMB: Math.max(...apis.map((a) => a.peakMB)),
    apiRssMB: Math.max(...apis.map((a) => a.rssMB)),
    apiCopies: apis,
    worker: procMemory(stack.demo.worker.pid),
    load: load(),
  };
}

/** The commit a checkout is at (for the report; `BENCH_MEMORY_BASELINE_COMMIT` for an exported tree), or its path. */
function commitOf(root: string): string {
  if (root !== process.cwd() && process.env.BENCH_MEMORY_BASELINE_COMMIT) return process.env.BENCH_MEMORY_BASELINE_COMMIT;
  try {
    return execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return root;
  }
}

export async function memoryScenario(ctx: Ctx) {
  const p = memoryParams(ctx);
  const baseRoot = process.env.BENCH_MEMORY_BASELINE;
  const builds: Array<{ name: string; commit: string; startDemo?: typeof startDemo }> = [];
  if (baseRoot) {
    const mod = join(baseRoot, 'dist', 'cli', 'demo.js');
    if (!existsSync(mod)) throw new Error(`BENCH_MEMORY_BASELINE=${baseRoot} has no dist/cli/demo.js (build it first)`);
    const m = (await import(pathToFileURL(mod).href)) as { startDemo: typeof startDemo };
    builds.push({ name: 'before', commit: commitOf(baseRoot), startDemo: m.startDemo });
  }
  builds.push({ name: 'after', commit: commitOf(process.cwd()) });
  const sizes: unknown[] = [];
  const startedAt = new Date().toISOString();
  for (const size of p.sizes) {
    for (const b of builds) {
      const t0 = performance.now();
      const stack = await startDemoStack(ctx.zk, size, ctx.log, { startDemo: b.startDemo });
      try {
        const r = await measure(ctx, stack, p, performance.now() - t0);
        ctx.log(`memory: ${size} apps, ${b.name} (${b.commit}): api peak ${r.apiPeakMB} MB, worker peak ${r.worker.peakMB} MB, load ${r.load[0]}`);
        sizes.push({ build: b.name, commit: b.commit, ...r });
      } finally {
        await stack.stop().catch(() => undefined);
      }
    }
  }
  // The report may show this scenario beside others from another run: it says when it ran itself.
  return { params: p, result: { startedAt, command: `npm run bench -- --only memory${baseRoot ? ` (BENCH_MEMORY_BASELINE=${baseRoot})` : ''}`, sizes } };
}
