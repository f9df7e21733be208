/** The headline table and the notes on every target missed or figure where the original Bamboo did better. */
import type { BenchResults } from '../run.js';
import { BAMBOO, BAMBOO_NUM, TARGETS, TASK_CHANGE_P99_MS } from './baseline.js';
import { num, ms, med, count, table, verdict, result, stageRow } from './format.js';
import type { RenderSize, RenderWorker, LatencySize, StormSize, ReloadResult, Fleet, Throughput, StructuralPath, FetchRow, IdleRow, MemorySize } from './shapes.js';

export function headline(r: BenchResults): string {
  const render = result<{ sizes: RenderSize[] }>(r.scenarios.render);
  const latency = result<{ sizes: LatencySize[] }>(r.scenarios.latency);
  const storm = result<{ sizes: StormSize[] }>(r.scenarios.storm);
  const reload = result<ReloadResult>(r.scenarios.reload);
  const fanout = result<{ fleets: Fleet[] }>(r.scenarios.fanout);
  const big = render?.sizes.reduce<RenderSize | undefined>((a, s) => (!a || s.apps > a.apps ? s : a), undefined);
  const lat = latency?.sizes.reduce<LatencySize | undefined>((a, s) => (!a || s.apps > a.apps ? s : a), undefined);
  const st = storm?.sizes.reduce<StormSize | undefined>((a, s) => (!a || s.apps > a.apps ? s : a), undefined);
  const rows: string[][] = [];
  if (big) {
    const change = big.oneAppChangeRenderValidateMs;
    const cold = big.coldBuildRenderValidateMs;
    rows.push([
      `${num(big.apps)} apps rendered + validated (\`haproxy -c\`, ${big.configPathChars[0]}-char path): one-app change / cold`,
      `${med(change)} / ${med(cold)}`,
      `event -> haproxy.cfg on disk ${BAMBOO.eventToCfg[big.apps] ?? 'n/a'} (of which \`haproxy -c\` ${BAMBOO.check[big.apps] ?? 'n/a'})`,
      `< ${TARGETS.render10kMs} ms`,
      big.apps >= 10000 ? `${verdict(change.median < TARGETS.render10kMs)} (change), ${verdict(cold.median < TARGETS.render10kMs)} (cold)` : 'n/a (not 10,000 apps)',
    ]);
  }
  if (lat) {
    rows.push([
      `Marathon event -> traffic to the new task, ${num(lat.apps)} apps: p50 / p99 (${lat.events} events)`,
      `${ms(lat.eventToRoutedMs.median)} / ${ms(lat.eventToRoutedMs.p99)}`,
      `${BAMBOO.eventToRouted[lat.apps] ?? 'n/a'} (median)`,
      `p99 < ${TARGETS.p99At1000Ms} ms at 1,000 apps`,
      lat.apps >= 1000 ? verdict(lat.eventToRoutedMs.p99 < TARGETS.p99At1000Ms) : 'n/a (not 1,000 apps)',
    ]);
  }
  if (st) {
    const worst = Math.max(st.paced?.summary.reloads?.max ?? NaN, st.burst?.summary.reloads?.max ?? NaN);
    const updates = st.burst?.summary.statusUpdates?.median ?? st.paced?.summary.statusUpdates?.median ?? 0;
    const window = (r.scenarios.storm?.params as { windowMs?: number } | undefined)?.windowMs;
    rows.push([
      `Reloads per storm of ${num(updates)} status updates, ${num(st.apps)} apps: paced over ${ms(window)} / one burst (median, max)`,
      `${count(st.paced?.summary.reloads?.median ?? NaN)} (max ${count(st.paced?.summary.reloads?.max ?? NaN)}) / ${count(st.burst?.summary.reloads?.median ?? NaN)} (max ${count(st.burst?.summary.reloads?.max ?? NaN)}); ` +
        `applies (reload or Runtime API): ${count(st.paced?.summary.applies?.median ?? NaN)} / ${count(st.burst?.summary.applies?.median ?? NaN)}`,
      '1 per 1,000-event burst',
      `<= ${TARGETS.reloadsPerBurst}`,
      Number.isFinite(worst) ? `${verdict((st.burst?.summary.reloads?.max ?? 0) <= TARGETS.reloadsPerBurst)} (burst), ${verdict((st.paced?.summary.reloads?.max ?? 0) <= TARGETS.reloadsPerBurst)} (paced)` : 'n/a',
    ]);
  }
  if (reload?.keepalive && reload.close) {
    const ka = reload.keepalive;
    const cl = reload.close;
    rows.push([
      `Failed requests during ${ka.reloads} / ${cl.reloads} reloads under wrk load: keep-alive / \`Connection: close\``,
      `${num(ka.failedRequests)} of ${num(ka.withReloads.requests)} / ${num(cl.failedRequests)} of ${num(cl.withReloads.requests)}`,
      '365 / 1,809 per 50 reloads (default reload); 326 / 0 with `-x`',
      '0',
      verdict(ka.failedRequests === 0 && cl.failedRequests === 0),
    ]);
  }
  if (fanout?.fleets.length) {
    const f = fanout.fleets;
    const grows = f.some((x) => x.marathonAppsFetchesPerChange.max > f[0].marathonAppsFetchesPerChange.max);
    rows.push([
      `Marathon /v2/apps fetches per change with ${f.map((x) => x.workers).join(' / ')} workers (median)`,
      f.map((x) => count(x.marathonAppsFetchesPerChange.median)).join(' / '),
      f.map((x) => count(x.bambooFetchesPerChange)).join(' / ') + ' (one per instance)',
      'independent of workers',
      verdict(!grows),
    ]);
  }
  const fetchRows = result<{ rows: FetchRow[] }>(r.scenarios.fetch)?.rows ?? [];
  for (const row of fetchRows.filter((x) => x.path === 'per-app' && x.eventToRoutedMs?.n)) {
    const full = fetchRows.find((x) => x.path === 'full' && x.size === row.size);
    rows.push([
      `One app gains a task -> routed, ${num(row.size)} apps, fetching the named app: p50 / p99 (whole-list fetch in the same run)`,
      `${ms(row.eventToRoutedMs!.median)} / ${ms(row.eventToRoutedMs!.p99)} (${ms(full?.eventToRoutedMs?.median)} / ${ms(full?.eventToRoutedMs?.p99)})`,
      `${BAMBOO.eventToRouted[row.size] ?? 'n/a'} (median)`,
      `p99 < ${TASK_CHANGE_P99_MS} ms at 1,000 and 10,000 apps`,
      row.size >= 1000 ? verdict(row.eventToRoutedMs!.p99 < TASK_CHANGE_P99_MS) : 'n/a (under 1,000 apps)',
    ]);
  }
  // Issue 20, goal 1: structural changes, the default path with the spare-slot path of the same run.
  const structural = result<{ sizes: Array<{ apps: number; paths: StructuralPath[] }> }>(r.scenarios.structural);
  for (const sz of structural?.sizes ?? []) {
    const p = sz.paths.find((x) => x.path === 'reload');
    const spare = sz.paths.find((x) => x.path === 'spare-slots');
    const b = BAMBOO.newAppRoutedMs[sz.apps];
    if (!p?.newAppToRoutedMs.n) continue;
    const ok = (x: number) => (b === undefined ? null : x <= b / 2);
    rows.push([
      `A new app / a rule edit -> routed, ${num(sz.apps)} apps (spare slots, the path before dynamic servers, in the same run)`,
      `${ms(p.newAppToRoutedMs.median)} / ${ms(p.ruleEditToRoutedMs.median)}${spare?.newAppToRoutedMs.n ? ` (${ms(spare.newAppToRoutedMs.median)} / ${ms(spare.ruleEditToRoutedMs.median)})` : ''}`,
      b !== undefined ? `${ms(b)} (a new app${p.newAppSimMs ? '; measured with the older simulator, whose own deployment call took 380-500 ms at 10,000 apps and 33-50 ms at 1,000: section 7' : ''})` : 'n/a',
      b !== undefined ? `at most ${ms(b / 2)}` : 'n/a',
      b !== undefined ? `${verdict(ok(p.newAppToRoutedMs.median))} / ${verdict(ok(p.ruleEditToRoutedMs.median))}` : 'n/a',
    ]);
  }
  // Goal 3: peak RSS in managed mode at the largest size, with the build before issue 20 when measured.
  const memory = result<{ sizes: MemorySize[] }>(r.scenarios.memory)?.sizes ?? [];
  const memAfter = memory.filter((x) => x.build === 'after').reduce<MemorySize | undefined>((a, x) => (!a || x.apps > a.apps ? x : a), undefined);
  if (memAfter) {
    const memBefore = memory.find((x) => x.build === 'before' && x.apps === memAfter.apps);
    rows.push([
      `Peak RSS at ${num(memAfter.apps)} apps, managed mode: api / worker${memBefore ? ` (build ${memBefore.commit}, before issue 20, in the same run)` : ''}`,
      `${num(memAfter.apiPeakMB)} MB / ${num(memAfter.worker.peakMB)} MB${memBefore ? ` (${num(memBefore.apiPeakMB)} / ${num(memBefore.worker.peakMB)} MB)` : ''}`,
      `${BAMBOO.peakRss[memAfter.apps] ?? 'n/a'} (one process)`,
      'api <= 200 MB, worker <= 300 MB at 10,000 apps',
      memAfter.apps >= 10000 ? verdict(memAfter.apiPeakMB <= 200 && memAfter.worker.peakMB <= 300) : 'n/a (not 10,000 apps)',
    ]);
  }
  // Goal 4: bursts of callbacks and rules written one by one.
  const tp = result<Throughput>(r.scenarios.throughput);
  if (tp?.callbackBurst && tp.createRulesOneByOne) {
    const cb = tp.callbackBurst;
    const one = tp.createRulesOneByOne;
    rows.push([
      `A burst of ${num(cb.callbacks)} Marathon callbacks: Marathon fetches; ${num(one.rules)} rules created one by one`,
      `${num(cb.marathonFetches)} (delivered in ${ms(cb.deliveryMs)}); ${ms(one.ms)}`,
      '2 fetches per burst; 1.4 s',
      'at most 2 fetches; at most 1.4 s',
      `${verdict(cb.marathonFetches <= 2)} / ${verdict(one.ms <= 1400)}`,
    ]);
  }
  const idleRows = result<{ rows: IdleRow[] }>(r.scenarios.idle)?.rows ?? [];
  const idleBig = idleRows.filter((x) => x.variant === 'current').reduce<IdleRow | undefined>((a, x) => (!a || x.size > a.size ? x : a), undefined);
  if (idleBig) {
    const before = idleRows.find((x) => x.variant === 'previous' && x.size === idleBig.size);
    rows.push([
      `Idle HAProxy CPU, ${num(idleBig.size)} apps (${num(idleBig.checkedServers)} checked servers): default checks (\`inter 5s\` before)`,
      `${num(idleBig.cpuPercent, 2)} % (${num(before?.cpuPercent, 2)} %)`,
      '7 % at 10,000 apps',
      'within Bamboo\'s at 10,000 apps',
      idleBig.size >= 10000 ? verdict(idleBig.cpuPercent <= 7) : 'n/a (not 10,000 apps)',
    ]);
  }
  if (!rows.length) return '_No scenario produced figures._';
  return table(['Figure', 'Bamboo-TS (this run)', 'Original Bamboo', 'Target', 'Verdict'], rows);
}

/** Data-driven notes on every target missed, with the stage timings that explain it. */
export function misses(r: BenchResults): string {
  const notes: string[] = [];
  const render = result<{ sizes: RenderSize[]; worker?: RenderWorker }>(r.scenarios.render);
  const big = render?.sizes.find((s) => s.apps >= 10000);
  if (big && big.oneAppChangeRenderValidateMs.median >= TARGETS.render10kMs) {
    const check = big.haproxyCheckMs[Object.keys(big.haproxyCheckMs)[0]];
    notes.push(
      `- **10,000 apps rendered + validated in ${ms(big.oneAppChangeRenderValidateMs.median)}** (target ${TARGETS.render10kMs} ms): build ${ms(big.oneAppChangeBuildAndRenderMs.median - big.oneAppChangeRenderMs.median)} + render ${ms(big.oneAppChangeRenderMs.median)} + \`haproxy -c\` ${ms(check?.median)}. ` +
        `The render is incremental (${big.oneAppChangeMaxBlocksRendered} blocks re-rendered; an unchanged re-render costs ${ms(big.unchangedRerenderMs.median)}) and so is the build (the worker's per-app memo rebuilds only the changed app: ${ms(big.oneAppChangeBuildAndRenderMs.median - big.oneAppChangeRenderMs.median)} with a hint's delta${big.oneAppChangeFreshReadBuildAndRenderMs ? `, ${ms(big.oneAppChangeFreshReadBuildAndRenderMs.median - big.oneAppChangeRenderMs.median)} when it reads the snapshot instead (apps unchanged since its last read reused)` : ''}); HAProxy's own parse of a ${num(big.outputBytes / 1e6, 1)} MB file is what remains (docs/templates.md, "Cost of validation", counts where its instructions go)` +
        (big.serverLines
          ? big.disabledServerLines
            ? `: ${num(big.serverLines)} \`server\` lines for ${num(big.apps * 3)} tasks (${num(big.disabledServerLines)} of them disabled spare slots that let task churn go through the Runtime API), so validation parses ${num(big.serverLines / (big.apps * 3), 1)} times the servers Bamboo's config had.`
            : `: ${num(big.serverLines)} \`server\` lines for ${num(big.apps * 3)} tasks, one per task as in Bamboo's config (HAProxy.DynamicServers: no spare slot), so what is left is HAProxy's parse of the routing rules and servers themselves.`
          : '.'),
    );
  }
  const latency = result<{ sizes: LatencySize[] }>(r.scenarios.latency);
  for (const s of latency?.sizes ?? []) {
    if (s.apps < 1000 || s.eventToRoutedMs.p99 < TARGETS.p99At1000Ms) continue;
    const st = s.workerStagesMs;
    const runtime = s.workerOutcomes.runtime ?? 0;
    const reloaded = s.workerOutcomes.reloaded ?? 0;
    const t = s.slowestTenth;
    const parts = [
      `- **Event -> traffic p99 ${ms(s.eventToRoutedMs.p99)} at ${num(s.apps)} apps** (target ${TARGETS.p99At1000Ms} ms; p50 ${ms(s.eventToRoutedMs.median)}, p90 ${ms(s.eventToRoutedMs.p90)}).`,
      runtime
        ? `${runtime} of ${s.events} events were applied through the Runtime API (no \`haproxy -c\`, no reload)${reloaded ? `, ${reloaded} by a reload` : ''}, so HAProxy is not on the path.`
        : `Every event went through \`haproxy -c\` and a reload (${ms((st.validate?.median ?? 0) + (st.reload?.median ?? 0))} of the median: two full HAProxy start-ups); the Runtime API would remove both.`,
      `The median splits into event -> hint ${ms(s.eventToHintMs.median)} (the api: ${[
        s.eventBytesPerScale
          ? `reading ${num(s.eventBytesPerScale.median / 1000)} kB of Marathon events per scale (typed by their \`event:\` line, not parsed; the stream asks for the light plan format${s.eventBytesPerScaleFullPlans ? `, without which Marathon 1.6 sends ${num(s.eventBytesPerScaleFullPlans.median / 1000)} kB` : ''})`
          : '',
        'a fetch that starts at once after a quiet spell (`Marathon.MinFetchIntervalMs` paces the next ones)',
        `the fetch of the app the event names (\`GET /v2/apps/{id}\`${s.apiFetchMs ? `, ${ms(s.apiFetchMs.median)}` : ''})`,
        'the snapshot cut into segments, of which only the changed ones are gzipped and written to ZooKeeper (it is the truth workers fall back on), ZeroMQ',
      ]
        .filter(Boolean)
        .join(', ')}) and hint -> routed ${ms(s.hintToRoutedMs.median)} (the worker, which starts at once when idle: ${stageRow(st)}).`,
    ];
    if (t) {
      parts.push(
        `The slowest tenth took ${ms(t.eventToRoutedMs.median)}: event -> hint ${ms(t.eventToHintMs.median)}, hint -> routed ${ms(t.hintToRoutedMs.median)}; ` +
          `the simulator, which runs in the benchmark process and must answer the api's fetch, stayed busy ${ms(s.simulatorBusyAfterEventMs?.median)} after emitting the event (median; Marathon's deployment events list every app). ` +
          `With the load average at ${r.load.mean1m} on ${r.machine.cores} cores, scheduling delays of the five processes on the path show up in this tail.`,
      );
    }
    parts.push(
      "The worker's read stage is small because the hint carries the apps that changed, and the api parses only the apps that changed (both common/core/snapshot-delta.ts). What remains grows with the number of apps, not with the change (section 10 shows it from 100 to 10,000 apps): the worker builds and renders over every app (memoised per app, but visited), and the api's step after the fetch lays out and hashes the whole snapshot; the other api copy reads every snapshot too, competing for the same cores. What would close it: carrying the changed apps through every stage (build, render, segment hash) instead of visiting all, or applying a task change to HAProxy's Runtime API straight from the hint's delta.",
    );
    notes.push(parts.join(' '));
  }
  const storm = result<{ sizes: StormSize[] }>(r.scenarios.storm);
  for (const s of storm?.sizes ?? []) {
    for (const k of ['paced', 'burst'] as const) {
      const v = s[k]?.summary;
      if (!v || (v.reloads?.max ?? 0) <= TARGETS.reloadsPerBurst) continue;
      notes.push(
        `- **${num(v.reloads.median)} reloads (max ${num(v.reloads.max)}) for a ${k} storm at ${num(s.apps)} apps** (target <= ${TARGETS.reloadsPerBurst}; ${num(v.marathonFetches?.median)} fetches): ` +
          (k === 'paced'
            ? 'updates keep arriving for 5 s, the api stores a new snapshot after every fetch (at most one per 250 ms) and the worker applies the latest one at most every 500 ms (`Worker.MinReloadIntervalMs`), so a 5-second storm costs about one reload per interval. A longer interval, or applying task changes without reloads, lowers it.'
            : 'the first fetch lands inside the burst, so the config changes again after it.'),
      );
    }
    if (s.rules && !s.rules.allCorrect) {
      const stale = s.rules.reps.map((x) => Number(x.appsNotRoutedByTheirLastRule ?? 0));
      notes.push(
        `- **After rule storms at ${num(s.apps)} apps, ${stale.join(', ')} apps (per repetition) were still routed by an older rule** once everything was quiet: ` +
          'the worker reported `noop unchanged` although ZooKeeper held newer rules, until its next full listing of the rules (up to `Worker.ResyncIntervalMs` and more). A watch race in worker/desired.ts `RuleCache` with this symptom was fixed in commit 69d35ab (a watch is marked armed before its read); seeing this again means another path loses a rule change.',
      );
    }
    if (s.paced && !s.paced.allCorrect) notes.push(`- **The final config was wrong after a paced storm at ${num(s.apps)} apps.**`);
    if (s.burst && !s.burst.allCorrect) notes.push(`- **The final config was wrong after a burst at ${num(s.apps)} apps.**`);
  }
  const reload = result<ReloadResult>(r.scenarios.reload);
  for (const k of ['keepalive', 'close'] as const) {
    const m = reload?.[k];
    if (m && m.failedRequests > 0) notes.push(`- **${num(m.failedRequests)} failed requests during ${m.reloads} reloads (${k})**: ${JSON.stringify(m.withReloads.socketErrors)}, non-2xx ${m.withReloads.non2xx}.`);
  }
  const fanout = result<{ fleets: Fleet[] }>(r.scenarios.fanout);
  if (fanout?.fleets.length) {
    const f = fanout.fleets;
    if (f.some((x) => x.marathonAppsFetchesPerChange.max > f[0].marathonAppsFetchesPerChange.max)) {
      notes.push(`- **Marathon fetches per change grew with the workers**: ${f.map((x) => `${x.workers}: ${x.marathonAppsFetchesPerChange.max}`).join(', ')} (max).`);
    }
  }
  const structural = result<{ sizes: Array<{ apps: number; paths: StructuralPath[] }> }>(r.scenarios.structural);
  for (const sz of structural?.sizes ?? []) {
    const p = sz.paths.find((x) => x.path === 'reload');
    const b = BAMBOO.newAppRoutedMs[sz.apps];
    if (!p || b === undefined || !p.newAppToRoutedMs.n) continue;
    const worst = Math.max(p.newAppToRoutedMs.median, p.ruleEditToRoutedMs.median);
    if (worst <= b / 2) continue;
    const reload = p.ruleStagesMs.reload?.median;
    const spare = sz.paths.find((x) => x.path === 'spare-slots');
    const dynamic = spare?.newAppToRoutedMs.n
      ? `Dynamic servers took the file from ${num(spare.serverLines)} to ${num(p.serverLines)} server lines (one per task) and these times from ${ms(spare.newAppToRoutedMs.median)} / ${ms(spare.ruleEditToRoutedMs.median)} with spare slots in the same run. `
      : '';
    notes.push(
      `- **A new app / a rule edit -> routed at ${num(sz.apps)} apps in ${ms(p.newAppToRoutedMs.median)} / ${ms(p.ruleEditToRoutedMs.median)}** (target ${ms(b / 2)}, half of Bamboo's ${ms(b)}): ` +
        `one HAProxy parse per change now (section 7: the median reload stage of a rule edit is ${ms(reload)}; the rest is the worker's other stages and, for a new app, the api's event -> hint). ${dynamic}` +
        "What remains is HAProxy 2.6 loading the whole config on every reload; what would close it is not reloading: rule edits of a host or path shape through a map edited over the Runtime API, and new apps into pre-rendered spare backends (HAProxy 2.6 cannot add a backend at run time); neither is built.",
    );
  }
  const fetchRows = result<{ rows: FetchRow[] }>(r.scenarios.fetch)?.rows ?? [];
  for (const row of fetchRows) {
    if (row.path !== 'per-app' || row.size < 1000 || !row.eventToRoutedMs || row.eventToRoutedMs.p99 < TASK_CHANGE_P99_MS) continue;
    const whole = fetchRows.find((x) => x.size === row.size && x.path === 'full');
    notes.push(
      `- **One app gains a task -> routed at ${num(row.size)} apps: p99 ${ms(row.eventToRoutedMs.p99)}** (goal ${TASK_CHANGE_P99_MS} ms; p50 ${ms(row.eventToRoutedMs.median)}${whole?.eventToRoutedMs ? `, against ${ms(whole.eventToRoutedMs.median)} / ${ms(whole.eventToRoutedMs.p99)} fetching the whole list in the same run` : ''}). ` +
        `Fetching the named app took the api's Marathon fetch to ${med(row.apiFetchMs)}${whole?.apiFetchMs ? ` (whole list ${med(whole.apiFetchMs)})` : ''}, but both halves still grow with the number of apps (section 10): event -> hint ${med(row.eventToHintMs)} (the api after the fetch: the answer merged into the stored content, the snapshot laid out and hashed over every app, the changed segments written) and hint -> routed ${med(row.hintToRoutedMs)} (the worker: ${row.workerStagesMs ? stageRow(row.workerStagesMs) : 'stages not recorded'}; build and render visit every app even when the memo reuses them). ` +
        'What would close it: carrying the changed apps through every stage instead of visiting all of them (the snapshot hash kept per segment, the template data and render updated for the changed apps only), or a task change applied to HAProxy through the Runtime API straight from the hint\'s delta, with the full pipeline behind it only to confirm.',
    );
  }
  const idleRows = result<{ rows: IdleRow[] }>(r.scenarios.idle)?.rows ?? [];
  for (const row of idleRows) {
    if (row.size < 10000 || row.variant !== 'current' || row.cpuPercent <= 7) continue;
    notes.push(
      `- **Idle HAProxy CPU at ${num(row.size)} apps: ${num(row.cpuPercent, 1)} % of a core** (Bamboo 7 %, section 11): ${num(row.checksPerSecond)} checks/s for ${num(row.checkedServers)} servers, the rate of Bamboo's \`inter 30000\` (30,000 servers every 30 s), so the rest is per check and per machine: Bamboo's 7 % was measured on another machine ([bamboo-baseline.md](bamboo-baseline.md)) and the same timing gave 7.9 % in an earlier run on that machine type (AMD EPYC; this run: ${r.machine.cpuModel}), and an app with a Marathon HTTP health check gets an HTTP check, which costs HAProxy more than a TCP connect. ` +
        'What would close it: Bamboo measured again on the same machine to compare like for like; a longer `inter` lowers the rate, and the CPU, in proportion, at the cost of slower detection of a task that dies without Marathon noticing.',
    );
  }
  const failed = Object.entries(r.scenarios).filter(([, rec]) => rec && !rec.ok);
  for (const [name] of failed) notes.push(`- **Scenario ${name} did not complete** (see its section).`);
  const text = notes.length ? notes.join('\n') : 'Every target was met in this run.';
  const slow = slowerThanBamboo(r);
  return slow.length ? `${text}\n\nWhere the original Bamboo's figure ([bamboo-baseline.md](bamboo-baseline.md), another run on a similar machine) is better than ours:\n\n${slow.join('\n')}` : text;
}

/** Figures where the original Bamboo did better (not targets, but reported as honestly). */
function slowerThanBamboo(r: BenchResults): string[] {
  const out: string[] = [];
  const latency = result<{ sizes: LatencySize[] }>(r.scenarios.latency);
  for (const s of latency?.sizes ?? []) {
    const b = BAMBOO_NUM.eventToRoutedMs[s.apps];
    if (b !== undefined && s.eventToRoutedMs.median > b) {
      out.push(
        `- Event -> routed at ${num(s.apps)} apps: ${ms(s.eventToRoutedMs.median)} median against ${ms(b)} ` +
          `(event -> hint ${ms(s.eventToHintMs.median)}: the api's event intake, \`/v2/apps\` fetch${s.apiFetchMs ? ` (${ms(s.apiFetchMs.median)})` : ''} and ZooKeeper write; hint -> routed ${ms(s.hintToRoutedMs.median)}: the worker). Bamboo fetched and rendered in the process that received the event, with no hop through ZooKeeper.`,
      );
    }
  }
  const render = result<{ sizes: RenderSize[]; worker?: RenderWorker }>(r.scenarios.render);
  for (const s of render?.sizes ?? []) {
    const c = s.haproxyCheckMs[Object.keys(s.haproxyCheckMs)[0]];
    const b = BAMBOO_NUM.checkMs[s.apps];
    if (b !== undefined && c && c.median > b) out.push(`- \`haproxy -c\` on our ${num(s.apps)}-app config: ${ms(c.median)} against ${ms(b)} on Bamboo's (same HAProxy version; see the start-up floor in section 1).`);
  }
  const w = render?.worker;
  if (w && BAMBOO_NUM.peakRssMB[w.apps] !== undefined && w.workerPeakRssMB > BAMBOO_NUM.peakRssMB[w.apps]) {
    out.push(`- Peak RSS of the worker at ${num(w.apps)} apps: ${num(w.workerPeakRssMB)} MB against Bamboo's 146-174 MB (a Node.js process with a memoised renderer against a Go binary).`);
  }
  const storm = result<{ sizes: StormSize[] }>(r.scenarios.storm);
  for (const s of storm?.sizes ?? []) {
    const q = s.burst?.summary.firstUpdateToQuietMs?.median;
    const b = BAMBOO_NUM.burstQuietMs[s.apps];
    if (q !== undefined && b !== undefined && q > b) out.push(`- A burst at ${num(s.apps)} apps is quiet ${ms(q)} after it began, against ${ms(b)} for Bamboo's (smaller: 1,000 events) burst.`);
  }
  const t = result<Throughput>(r.scenarios.throughput);
  if (t?.getServicesNoRules && t.getServicesNoRules.requestsPerSecond < BAMBOO_NUM.getNoRulesPerS) {
    out.push(`- \`GET /api/services\` with no rules: ${num(t.getServicesNoRules.requestsPerSecond)}/s against 7,300/s (with 1,000 rules we serve ${num(t.getServices?.requestsPerSecond)}/s against Bamboo's 14/s).`);
  }
  const cb = t?.callbackBurst;
  if (cb && cb.marathonFetches > 2) {
    out.push(
      `- A burst of ${num(cb.callbacks)} Marathon callbacks cost ${num(cb.marathonFetches)} \`/v2/apps\` fetches against Bamboo's 2: the simulator delivered the callbacks over ${ms(cb.deliveryMs)} (one POST at a time), ` +
        'so the api saw a stream rather than a burst and fetched again after each minimum fetch interval (250 ms) while events kept coming (each of those a `GET /v2/apps/{id}` of the one app the updates name, not the whole list). ' +
        'What would close it: waiting for a quiet gap in the events, bounded by a longest wait, before the follow-up fetch; not done, because under the continuous events of a large cluster it would hold every change back by that longest wait.',
    );
  }
  const c = t?.createRulesOneByOne;
  if (c && c.rules > 0 && (c.ms * 1000) / c.rules > BAMBOO_NUM.createOneByOneMsPer1000) {
    out.push(
      `- Creating ${num(c.rules)} rules one by one: ${ms(c.ms)} against 1.4 s for 1,000 (${ms(c.ms / c.rules)} per POST; ZooKeeper's write latency here is ${med(t?.zookeeperWriteMs)} and each create is one transaction writing the rule and its parent, plus the api's checks: the rule's shape against the probe cache, the audit entry written in the same transaction). A CPU profile of the api doing this (2026-12-07) found it idle about two thirds of the time, waiting on ZooKeeper: each POST is sequential, so it pays a ZooKeeper round trip and an HTTP round trip in full, on two cores shared with ZooKeeper and the client. The one avoidable round trip (the audit node read before every write) is gone: 3.2 s -> 2.5-2.7 s for 1,000 POSTs, alternating builds on one machine. What would close the rest: a faster ZooKeeper round trip (its own disk and core), or clients writing in parallel (50 in flight: section 6).`,
    );
  }
  return out;
}
