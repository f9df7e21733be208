/** Sections on what HAProxy pays: reloads under load, structural changes, reload cost, edge changes, idle CPU. */
import type { BenchResults } from '../run.js';
import type { Summary } from '../lib/stats.js';
import { BAMBOO } from './baseline.js';
import { num, ms, med, count, table, verdict, result, scenarioNote, wrkCells, stageShares } from './format.js';
import type { ReloadResult, StructuralPath, ReloadCostVariant, EdgeResult, IdleRow } from './shapes.js';

export function reloadSection(r: BenchResults): string {
  const rec = r.scenarios.reload;
  const res = result<ReloadResult>(rec);
  const out = [scenarioNote(rec)];
  if (!res) return out.join('\n');
  out.push(
    '',
    `wrk (threads: ${res.wrk.threads}, connections: ${res.wrk.connections}) through HAProxy to one app with two local backends, on the ${num(res.apps)}-app stack; ` +
      'meanwhile another app\'s rule is edited through the api, each edit waiting for the HAProxy master\'s reload count to go up (managed HAProxy: SIGUSR2, sockets handed over, `option idle-close-on-response`). ' +
      'The baseline is the same load without reloads. Failed = non-2xx + every socket error wrk reports.',
    '',
    table(
      ['Connections', 'Phase', 'Reloads', 'Requests', 'Requests/s', 'Latency p50 / p99 / max', 'Failed'],
      (['keepalive', 'close'] as const)
        .filter((k) => res[k])
        .flatMap((k) => {
          const m = res[k]!;
          const label = k === 'keepalive' ? 'keep-alive' : '`Connection: close`';
          return [
            [label, 'no reloads', '0', ...wrkCells(m.baseline)],
            [label, `reloading (${num(m.reloadPhaseS, 1)} s, ${m.reloadsPerSecond}/s)`, String(m.reloads), ...wrkCells(m.withReloads)],
          ];
        }),
    ),
    '',
    'Original Bamboo, 50 reloads under wrk load: 1,809 failed requests with `Connection: close` and 365 with keep-alive using its default reload command; 0 and 326 with `-x` and `expose-fd listeners` ([bamboo-baseline.md](bamboo-baseline.md)).',
  );
  return out.join('\n');
}

export function structuralSection(r: BenchResults): string {
  const rec = r.scenarios.structural;
  const res = result<{ sizes: Array<{ apps: number; paths: StructuralPath[] }> }>(rec);
  const out = [scenarioNote(rec)];
  if (!res) return out.join('\n');
  out.push(
    '',
    'Changes that need a reload, through the whole stack (`bamboo demo`\'s processes, managed HAProxy), by the paths side by side: ' +
      'the default, where the master\'s reload is the validation (one HAProxy parse; `haproxy -c` only after a refusal, to find the app) and a backend has one `server` line per task (HAProxy.DynamicServers: a task beyond them is added with `add server`); ' +
      'the same with `HAProxy.DynamicServers=false`, every backend with spare slots (the default before dynamic servers); ' +
      'and `HAProxy.ValidateBeforeReload=true` with spare slots, `haproxy -c` before every reload (two parses; the path before issue 20). ' +
      'Each path runs its own stack of the same size and the samples alternate between them. A new app: a Marathon deployment of one task on a fresh local server, ' +
      'timed from the simulator\'s deployment until HAProxy answers from that server at the app\'s path. A rule edit: a PUT of a host rule through the REST API until HAProxy routes the host. ' +
      'Target (issue 20): at most half of the original Bamboo\'s time for a new app (158 ms / 399 ms / 4.5 s at 100 / 1,000 / 10,000 apps, [bamboo-baseline.md](bamboo-baseline.md)). ' +
      'HAProxy lines: what HAProxy wrote per reload (before issue 20 each went to the worker\'s log); logged: the lines the worker wrote at info or above for them.',
    '',
    table(
      ['Apps', 'Path', 'New app -> routed', 'Rule edit -> routed', 'Target (half of Bamboo)', 'Verdict (new app / rule edit)', 'Reloads', '`server` lines', 'HAProxy lines / logged lines per reload'],
      res.sizes.flatMap((sz) =>
        sz.paths.map((p) => {
          const b = BAMBOO.newAppRoutedMs[sz.apps];
          const target = b !== undefined ? b / 2 : undefined;
          const ok = (x: Summary) => (target === undefined || !x.n ? null : x.median <= target);
          return [
            num(sz.apps),
            p.label,
            med(p.newAppToRoutedMs),
            med(p.ruleEditToRoutedMs),
            target !== undefined ? `${ms(target)} (Bamboo ${ms(b)})` : 'n/a',
            `${verdict(ok(p.newAppToRoutedMs))} / ${verdict(ok(p.ruleEditToRoutedMs))}`,
            num(p.reloads),
            num(p.serverLines),
            `${count(p.haproxyLinesPerReload)} / ${count(p.loggedLinesPerReload)}`,
          ];
        }),
      ),
    ),
    '',
    ...simNote(res.sizes),
    "Where the time goes: the worker's stage timings (median) and each one's share of their sum, for the rule edits and for the new apps (whose clock also runs through the api: event, `/v2/apps` fetch, snapshot, hint; hint -> routed is given apart):",
    '',
    table(
      ['Apps', 'Path', 'Rule edit: worker stages', 'New app: worker stages', 'New app: hint -> routed'],
      res.sizes.flatMap((sz) => sz.paths.map((p) => [num(sz.apps), p.label, stageShares(p.ruleStagesMs), stageShares(p.newAppStagesMs), med(p.newAppHintToRoutedMs)])),
    ),
  );
  return out.join('\n');
}

export function reloadCostSection(r: BenchResults): string {
  const rec = r.scenarios.reloadcost;
  const res = result<{ sizes: Array<{ apps: number; variants: ReloadCostVariant[] }> }>(rec);
  const out = [scenarioNote(rec)];
  if (!res) return out.join('\n');
  out.push(
    '',
    "What HAProxy itself pays for one structural change, before and after issue 20, in the same run: the default template for N apps of 3 tasks (HTTP health checks, a server-state file), " +
      '`haproxy -c` and a managed master-worker HAProxy reloaded by SIGUSR2 (until the master lists the new worker), the server state saved before each reload as the worker saves it. ' +
      '*Before*: 8 slots per backend, every server in the state file, `haproxy -c` then the reload. *After*: 5 slots, servers the config disables left out of the state file, the reload alone (the master refusing a config is the validation). ' +
      "CPU times (the master's own per reload, from /proc; `haproxy -c`'s from the shell) are less disturbed by a busy machine than wall times. HAProxy lines: its output per reload (before issue 20 the worker relayed each of them to its log, the per-proxy ones at debug); logged: what the worker's summariser (common/adapters/haproxy/haproxy-log.ts) writes at info or above for them.",
    '',
    table(
      ['Apps', 'Variant', '`server` lines', 'Config', '`haproxy -c`: wall / CPU', 'Reload: wall / master CPU', 'HAProxy CPU per change', 'Server-state file', 'HAProxy lines / logged per reload'],
      res.sizes.flatMap((sz) =>
        sz.variants.map((v) => [
          num(sz.apps),
          v.variant,
          num(v.servers),
          `${num(v.configBytes / 1024)} kB`,
          `${med(v.checkMs)} / ${med(v.checkCpuMs)}`,
          `${med(v.reloadMs)} / ${med(v.masterCpuPerReloadMs)}`,
          ms(v.cpuPerChangeMs),
          `${num(v.serverStateBytes.median / 1024, 1)} kB`,
          `${count(v.haproxyLinesPerReload)} / ${count(v.loggedLinesPerReload)}`,
        ]),
      ),
    ),
  );
  return out.join('\n');
}

export function edgeSection(r: BenchResults): string {
  const rec = r.scenarios.edge;
  const res = result<EdgeResult>(rec);
  const out = [scenarioNote(rec)];
  if (!res) return out.join('\n');
  out.push(
    '',
    `The demo stack (managed HAProxy, HTTPS on) grown to ${num(res.apps)} apps; ${res.samples} rounds, each making the three changes in turn on an idle worker. ` +
      'Certificate: a renewed bundle of `secure.demo.local` renamed into HAProxy.CertDir, until a new TLS connection with that SNI gets the new serial. ' +
      'Label: a new `HAPROXY_0_VHOST` on one app through the Marathon simulator (configuration change, event stream), until that host is routed to it. ' +
      'Rule: a host rule on another app through `PUT /api/services/:id`, until that host is routed to it. Reloads: the HAProxy master\'s count around each change.',
    '',
    table(
      ['Change', 'Change -> served', 'HAProxy reloads per change (median, max)'],
      (
        [
          ['Certificate renewed in HAProxy.CertDir (Runtime API)', res.certRenewedToServedMs, res.reloadsPerChange.cert],
          ['Label `HAPROXY_0_VHOST` changed in Marathon', res.labelChangeToRoutedMs, res.reloadsPerChange.label],
          ['Rule written through the api', res.ruleWriteToRoutedMs, res.reloadsPerChange.rule],
        ] as Array<[string, Summary, Summary]>
      ).map(([label, t, rl]) => [label, med(t), `${count(rl.median)} (max ${count(rl.max)})`]),
    ),
    '',
    'Of a certificate\'s time, 250 ms is the worker waiting, after the first change it sees in the directory, for the rest of a renewal\'s files (`CERT_WATCH_DEBOUNCE_MS`, worker/tls-certs.ts); the rest is reading and checking the bundle and the Runtime API (`set/commit ssl cert`). ' +
      'Label and rule changes take the path of the latency scenario plus a reload (a new host is a new rule in the frontend). ' +
      'marathon-lb needs a restart to load a new certificate; the original Bamboo has no TLS and no labels.',
  );
  return out.join('\n');
}

export function idleSection(r: BenchResults): string {
  const rec = r.scenarios.idle;
  const res = result<{ rows: IdleRow[] }>(rec);
  const out = [scenarioNote(rec)];
  if (!res?.rows.length) return out.join('\n');
  const p = rec?.params as { warmupS?: number; measureS?: number } | undefined;
  out.push(
    '',
    `A bare HAProxy (\`haproxy -db\`) on the default template rendered for N apps of 3 healthy tasks with an HTTP health check, no traffic: its CPU time over ${num(p?.measureS)} s after ${num(p?.warmupS)} s of warm-up, with the template's check timing and with the earlier \`inter 5s\`. Checks counted at the three local backends. Bamboo at 10,000 apps: 7 % of a core (\`check inter 30000\`); ours with \`inter 5s\` was 25 % ([bamboo-baseline.md](bamboo-baseline.md)).`,
    '',
    table(
      ['Apps', 'Check timing', 'Servers checked', 'Checks/s', 'HAProxy CPU (% of a core)'],
      res.rows.map((row) => [num(row.size), `\`${row.timing}\`${row.variant === 'current' ? ' (default)' : ' (before)'}`, num(row.checkedServers), num(row.checksPerSecond, 1), num(row.cpuPercent, 2)]),
    ),
  );
  return out.join('\n');
}

/** The simulator's own time inside a new app's figure (it runs deployApp before emitting any event). */
function simNote(sizes: Array<{ apps: number; paths: StructuralPath[] }>): string[] {
  const parts = sizes.flatMap((sz) => {
    const p = sz.paths.find((x) => x.newAppSimMs?.n);
    return p?.newAppSimMs ? [`${ms(p.newAppSimMs.median)} at ${num(sz.apps)} apps`] : [];
  });
  if (parts.length === 0) return [];
  return [
    `A new app's time includes the Marathon simulator's own \`deployApp\` call, which runs in the benchmark process before it emits the deployment's first event: ${parts.join(', ')} (median). ` +
      'Until 2026-12-07 evening it built every deployment\'s heavy plan and copied every app definition first: about 380-500 ms at 10,000 apps and 33-50 ms at 1,000, which the figures of earlier runs include, and so, most likely, do the original Bamboo\'s (measured against the same simulator, [bamboo-baseline.md](bamboo-baseline.md)): compare a new app at 10,000 apps with that in mind.',
    '',
  ];
}
