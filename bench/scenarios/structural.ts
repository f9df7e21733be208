/**
 * Scenario: structural changes (those that need a reload) -> routed, in managed mode, by three paths
 * side by side in the same run:
 * - `reload`: the default, where the master's reload is the validation (one HAProxy parse) and
 *   backends have one server line per task (HAProxy.DynamicServers: growth by `add server`);
 * - `spare-slots`: the same with HAProxy.DynamicServers=false, every backend with spare slots (3 tasks:
 *   5 server lines), the default before dynamic servers;
 * - `validate-first`: HAProxy.ValidateBeforeReload=true, `haproxy -c` before every reload (two parses)
 *   and spare slots, the path before issue 20.
 * Each path gets its own demo stack of the same size (bench/lib/stack.ts); samples alternate between
 * the two, so both see the same machine load. A sample is either a new Marathon app (one task on a
 * fresh local HTTP server), timed from the simulator's deployment until HAProxy answers from that
 * server at the app's path, or a rule (ACL) edit through the REST API, timed from the PUT until
 * HAProxy routes the new host. Per path it also records the worker's stage timings (their share of
 * the apply) and the HAProxy output lines per reload: written by HAProxy, and logged by the worker.
 */
import { performance } from 'node:perf_hooks';
import { httpGet } from '../../harness/http.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import { appPath, startDemoStack, type DemoStack } from '../lib/stack.js';
import { round, sleep, summarize, summarizeKeys } from '../lib/stats.js';

export interface StructuralParams {
  sizes: number[];
  newApps: number;
  rules: number;
}

export function structuralParams(ctx: Ctx): StructuralParams {
  return withOverrides(ctx, 'structural', ctx.smoke ? { sizes: [20], newApps: 2, rules: 2 } : { sizes: [100, 1000], newApps: 20, rules: 20 });
}

/** The two paths compared, with the settings that select them. */
export const PATHS = [
  { name: 'reload', label: 'the reload is the validation (default)', env: {} },
  { name: 'spare-slots', label: 'spare slots, no dynamic servers (HAProxy.DynamicServers=false)', env: { HAPROXY_DYNAMIC_SERVERS: 'false' } },
  { name: 'validate-first', label: '`haproxy -c` first, spare slots (HAProxy.ValidateBeforeReload=true, DynamicServers=false)', env: { HAPROXY_VALIDATE_BEFORE_RELOAD: 'true', HAPROXY_DYNAMIC_SERVERS: 'false' } },
] as const;

async function routedWhen(url: string, want: (status: number, body: string) => boolean, host?: string, timeoutMs = 60000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const r = await httpGet(url, { host, timeoutMs: 2000 }).catch(() => null);
    const at = performance.now();
    if (r && want(r.status, r.body)) return at;
    if (at > deadline) throw new Error(`timed out after ${timeoutMs} ms polling ${url}${host ? ` (Host: ${host})` : ''}`);
  }
}

interface HAProxyOutput {
  lines: number;
  logged: number;
}

async function outputCounts(stack: DemoStack): Promise<HAProxyOutput> {
  const res = await fetch(stack.demo.workerStatusUrl);
  const s = (await res.json()) as { haproxy?: { output?: HAProxyOutput } };
  return s.haproxy?.output ?? { lines: NaN, logged: NaN };
}

interface PathRun {
  stack: DemoStack;
  newAppMs: number[];
  newAppHintToRoutedMs: number[];
  newAppStages: Array<Record<string, number>>;
  /** How long the simulator's deployApp call itself took (counted in newAppMs: it runs before its events). */
  newAppSimMs: number[];
  ruleMs: number[];
  ruleStages: Array<Record<string, number>>;
  outcomes: Record<string, number>;
}

export async function structuralScenario(ctx: Ctx): Promise<{ params: StructuralParams; result: unknown }> {
  const p = structuralParams(ctx);
  const sizes: unknown[] = [];
  for (const size of p.sizes) {
    const runs = new Map<string, PathRun>();
    try {
      for (const path of PATHS) {
        const stack = await startDemoStack(ctx.zk, size, (l) => ctx.log(`structural (${path.name}): ${l}`), { env: { ...path.env } });
        runs.set(path.name, { stack, newAppMs: [], newAppHintToRoutedMs: [], newAppStages: [], newAppSimMs: [], ruleMs: [], ruleStages: [], outcomes: {} });
      }
      const before = new Map<string, { out: HAProxyOutput; reloads: number }>();
      for (const [name, r] of runs) {
        await r.stack.settle(2500);
        before.set(name, { out: await outputCounts(r.stack), reloads: await r.stack.reloads() });
      }
      const note = async (r: PathRun, into: Array<Record<string, number>>) => {
        const st = await r.stack.status();
        into.push(st.lastApplyStages);
        r.outcomes[st.lastOutcome] = (r.outcomes[st.lastOutcome] ?? 0) + 1;
      };
      // Alternate the paths sample by sample: both see the same load.
      for (let k = 0; k < p.newApps; k++) {
        for (const [name, r] of runs) {
          const { stack } = r;
          const b = await stack.backend(`new-${name}-${size}-${k}`);
          const id = `/bench/new/${name}-${k}`;
          await stack.settle(600);
          const lastVersion = Math.max(-1, ...stack.hints.hints.map((h) => h.snapshotVersion));
          const t0 = performance.now();
          stack.sim.deployApp({ id, cmd: 'bench', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [{ host: '127.0.0.1', ports: [b.port] }] });
          r.newAppSimMs.push(performance.now() - t0);
          const at = await routedWhen(`${stack.haproxy}${appPath(id)}`, (s, body) => s === 200 && body.startsWith(`${b.name} `));
          r.newAppMs.push(at - t0);
          const hint = stack.hints.first(t0, (h) => h.kind === 'marathon' && h.snapshotVersion > lastVersion);
          if (hint) r.newAppHintToRoutedMs.push(at - hint.receivedAt);
          await note(r, r.newAppStages);
        }
      }
      for (let k = 0; k < p.rules; k++) {
        for (const [name, r] of runs) {
          const { stack } = r;
          const id = stack.appIds[(k * 104729 + size - 1) % size];
          const host = `edit${k}-${name}.bench`;
          await stack.settle(600);
          const api = stack.apis[k % stack.apis.length];
          const t0 = performance.now();
          const res = await fetch(`${api}/api/services/${id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ acl: `hdr(host) -i ${host}` }) });
          await res.text();
          if (res.status !== 200 && res.status !== 201) throw new Error(`PUT rule for ${id}: ${res.status}`);
          const at = await routedWhen(`${stack.haproxy}/`, (s) => s === 200, host, 30000);
          r.ruleMs.push(at - t0);
          await note(r, r.ruleStages);
        }
      }
      const paths: unknown[] = [];
      for (const path of PATHS) {
        const r = runs.get(path.name)!;
        // The summary of an old worker's lines comes up to 2 s after its reload.
        await r.stack.settle(2500);
        const b = before.get(path.name)!;
        const out = await outputCounts(r.stack);
        const reloads = (await r.stack.reloads()) - b.reloads;
        const per = (x: number) => (reloads > 0 ? round(x / reloads) : NaN);
        paths.push({
          path: path.name,
          label: path.label,
          newAppToRoutedMs: summarize(r.newAppMs),
          newAppHintToRoutedMs: summarize(r.newAppHintToRoutedMs),
          newAppStagesMs: summarizeKeys(r.newAppStages),
          newAppSimMs: summarize(r.newAppSimMs),
          ruleEditToRoutedMs: summarize(r.ruleMs),
          ruleStagesMs: summarizeKeys(r.ruleStages),
          outcomes: r.outcomes,
          reloads,
          serverLines: (r.stack.installs.installs.at(-1)?.text ?? '').split('\n').filter((l) => /^\s+server /.test(l)).length,
          haproxyLinesPerReload: per(out.lines - b.out.lines),
          loggedLinesPerReload: per(out.logged - b.out.logged),
        });
      }
      sizes.push({ apps: size, paths });
      ctx.log(`structural: ${size} apps done`);
    } finally {
      for (const r of runs.values()) await r.stack.stop().catch(() => undefined);
      await sleep(100);
    }
  }
  return { params: p, result: { sizes } };
}
