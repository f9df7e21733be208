/** Sections on the path from a change to traffic: render, latency, storm, per-app fetch. */
import type { BenchResults } from '../run.js';
import type { Summary } from '../lib/stats.js';
import { BAMBOO, TASK_CHANGE_P99_MS } from './baseline.js';
import { num, ms, med, count, table, verdict, result, scenarioNote, stageRow } from './format.js';
import type { RenderSize, RenderWorker, LatencySize, StormSize, FetchRow } from './shapes.js';

export function renderSection(r: BenchResults): string {
  const rec = r.scenarios.render;
  const res = result<{ haproxyFloorMs?: Summary; sizes: RenderSize[]; worker?: RenderWorker }>(rec);
  const out = [scenarioNote(rec)];
  if (res?.haproxyFloorMs) {
    out.push('', `HAProxy's own start-up on this machine: \`haproxy -c\` on a ten-line config takes ${med(res.haproxyFloorMs)}. Every validation and every reload (the master re-executes itself) pays it.`);
  }
  if (res?.sizes.length) {
    const pathKeys = Object.keys(res.sizes[0].haproxyCheckMs);
    out.push(
      '',
      'The default template, apps with an HTTP health check and 3 healthy tasks, one app in ten with a host rule. Each size runs in its own child process ' +
        `(${res.sizes[0].runtime}), so the peak RSS is that size's alone (it includes the runtime itself: "baseline" is the RSS before any work). ` +
        '"Cold" is a fresh renderer (empty memo); "one-app change" is a warm renderer after one app\'s tasks moved, the way the worker gets it from a hint\'s delta (template data built again with the worker\'s per-app memo, the unchanged apps being the objects of the last build, then render); "without a delta" is the same change when the worker reads the snapshot from ZooKeeper instead (a big deployment, a missed hint: only the apps whose text changed since its last read are parsed, the others are that read\'s objects, which the memo recognises; the parse itself is the read stage, not counted here); ' +
        '"render + validate" adds `haproxy -c` on the output. `haproxy -c` is timed with the config at two path lengths, because HAProxy\'s parse time depends on it ([bamboo-baseline.md](bamboo-baseline.md)); ' +
        `${pathKeys[0].replace('path', '')} characters is the length of /etc/haproxy/haproxy.cfg, the production default. ` +
        'Backends are sized as the worker sizes them by default (HAProxy.DynamicServers: one `server` line per task); the last `haproxy -c` column is the same apps with spare slots (3 tasks: 5 lines, `HAProxy.DynamicServers=false`), checked alternately with the first.',
      '',
      table(
        ['Apps', 'Output', 'Build template data', 'Cold render', 'One-app change: build + render (without a delta)', 'Blocks re-rendered', 'Unchanged re-render', ...pathKeys.map((k) => `\`haproxy -c\`, ${k.replace('path', '')}-char path`), '`haproxy -c` with spare slots (server lines)', 'Render + validate: change / cold', 'Peak RSS (baseline)', 'Bamboo: `haproxy -c` / event -> cfg / peak RSS'],
        res.sizes.map((s) => [
          num(s.apps),
          `${num(s.outputBytes / 1e6, 2)} MB`,
          med(s.buildTemplateDataMs),
          med(s.coldRenderMs),
          `${med(s.oneAppChangeBuildAndRenderMs)}${s.oneAppChangeFreshReadBuildAndRenderMs ? ` (${ms(s.oneAppChangeFreshReadBuildAndRenderMs.median)})` : ''}`,
          String(s.oneAppChangeMaxBlocksRendered),
          med(s.unchangedRerenderMs),
          ...pathKeys.map((k) => med(s.haproxyCheckMs[k])),
          s.spareSlots ? `${med(s.spareSlots.haproxyCheckMs)} (${num(s.spareSlots.serverLines)}; ${num(s.serverLines ?? NaN)} without)` : 'n/a',
          `${ms(s.oneAppChangeRenderValidateMs.median)} / ${ms(s.coldBuildRenderValidateMs.median)}`,
          `${num(s.peakRssMB)} MB (${num(s.baselineRssMB)} MB)`,
          `${BAMBOO.check[s.apps] ?? 'n/a'} / ${BAMBOO.eventToCfg[s.apps] ?? 'n/a'} / ${BAMBOO.peakRss[s.apps] ?? 'n/a'}`,
        ]),
      ),
      '',
      `For scale: marathon-lb generates a config in ${BAMBOO.marathonLb[100]} / ${BAMBOO.marathonLb[1000]} / ${BAMBOO.marathonLb[10000]} for 100 / 1,000 / 10,000 apps ([bamboo-baseline.md](bamboo-baseline.md)).`,
    );
  }
  const w = res?.worker;
  if (w) {
    out.push(
      '',
      `**The worker process at ${num(w.apps)} apps** (${num(w.apps * 3)} servers, ${num(w.rules)} rules; \`bamboo worker\` in command mode: built-in \`haproxy -c\` validation, reload command \`true\`; ` +
        `output path ${w.outputPathChars} characters; real ZooKeeper and ZeroMQ, this process playing the api):`,
      '',
      table(
        ['Figure', 'Value'],
        [
          ['Start -> first config applied', ms(w.startToFirstApplyMs)],
          ['First apply, stages', Object.entries(w.firstApplyStages).map(([k, v]) => `${k} ${ms(v)}`).join(', ')],
          ['Rule change: hint -> applied', med(w.ruleChangeHintToAppliedMs)],
          ['Task change (new Marathon snapshot): hint -> applied', med(w.taskChangeHintToAppliedMs)],
          ['One-app change, stages (median)', stageRow(w.oneAppChangeStagesMs)],
          ['Worker peak RSS (VmHWM)', `${num(w.workerPeakRssMB)} MB (Bamboo: ${BAMBOO.peakRss[10000]} at 10,000 apps)`],
          ['haproxy.cfg', `${num(w.configBytes / 1e6, 2)} MB`],
        ],
      ),
    );
  }
  return out.join('\n');
}

export function latencySection(r: BenchResults): string {
  const rec = r.scenarios.latency;
  const res = result<{ sizes: LatencySize[] }>(rec);
  const out = [scenarioNote(rec)];
  if (!res?.sizes.length) return out.join('\n');
  out.push(
    '',
    'Through the whole stack as `bamboo demo` runs it: the Marathon simulator, two api processes (event-stream mode), ZooKeeper, ZeroMQ, one worker process with a managed HAProxy (master-worker, reloads by SIGUSR2), default settings. ' +
      'Each event scales one app up by a task on a fresh local HTTP server; the clock starts when the simulator emits that task\'s `TASK_RUNNING` status update and stops at the first response from the new server through HAProxy ' +
      '(a tight loop of new connections). Before each event the worker is left idle past its minimum reload interval (500 ms), so pacing is not measured. ' +
      'Spread: p10–p90 over the events (one run).',
    '',
    table(
      ['Apps', 'Events', 'Event -> routed: p50 / p99 (max)', 'p10–p90', 'Event -> hint on ZeroMQ', 'Event -> haproxy.cfg on disk', 'Hint -> routed', 'Bamboo: event -> cfg / routed'],
      res.sizes.map((s) => [
        num(s.apps),
        String(s.events),
        `${ms(s.eventToRoutedMs.median)} / ${ms(s.eventToRoutedMs.p99)} (${ms(s.eventToRoutedMs.max)})`,
        `${ms(s.eventToRoutedMs.p10)}–${ms(s.eventToRoutedMs.p90)}`,
        med(s.eventToHintMs),
        med(s.eventToConfigOnDiskMs) + (s.eventsWithoutNewConfigFile ? ` (${s.eventsWithoutNewConfigFile} events wrote no file)` : ''),
        med(s.hintToRoutedMs),
        `${BAMBOO.eventToCfg[s.apps] ?? 'n/a'} / ${BAMBOO.eventToRouted[s.apps] ?? 'n/a'}`,
      ]),
    ),
    '',
    'Where the time goes: the worker\'s own stage timings for these events (median), its outcomes, the api\'s `/v2/apps` fetch (its /status), and the simulator\'s own cost of a scale call (it runs in the benchmark process and builds Marathon\'s deployment plan, which lists every app):',
    '',
    table(
      ['Apps', 'Worker stages (median)', 'Outcomes', 'api fetch of /v2/apps', 'Simulator scale call (busy after the event)', 'Marathon events per scale', 'haproxy.cfg', 'Path length'],
      res.sizes.map((s) => [
        num(s.apps),
        stageRow(s.workerStagesMs),
        Object.entries(s.workerOutcomes).map(([k, v]) => `${k} ${v}`).join(', '),
        med(s.apiFetchMs),
        `${med(s.simulatorScaleCallMs)} (${ms(s.simulatorBusyAfterEventMs?.median)})`,
        s.eventBytesPerScale
          ? `${num(s.eventBytesPerScale.median / 1000)} kB${s.eventBytesPerScaleFullPlans ? ` (${num(s.eventBytesPerScaleFullPlans.median / 1000)} kB with full plans)` : ''}`
          : 'n/a',
        `${num(s.configBytes / 1e3)} kB`,
        `${s.configPathChars} chars`,
      ]),
    ),
    '',
    'The slowest tenth of the events (the tail behind p99), split the same way:',
    '',
    table(
      ['Apps', 'Events', 'Event -> routed', 'Event -> hint (api)', 'Hint -> routed (worker, HAProxy)', 'Simulator busy after the event'],
      res.sizes
        .filter((s) => s.slowestTenth)
        .map((s) => {
          const t = s.slowestTenth!;
          return [num(s.apps), String(t.events), med(t.eventToRoutedMs), med(t.eventToHintMs), med(t.hintToRoutedMs), med(t.simulatorBusyAfterEventMs)];
        }),
    ),
    '',
    'Rule (ACL) edits through the REST API (PUT on either api copy) until HAProxy routes the new host:',
    '',
    table(
      ['Apps', 'Edits', 'PUT -> routed', 'PUT answered', 'PUT -> hint', 'Worker stages (median)', 'Not routed within 30 s'],
      res.sizes.map((s) => [
        num(s.apps),
        String(s.rules.edits),
        med(s.rules.writeToRoutedMs),
        med(s.rules.putResponseMs),
        med(s.rules.writeToHintMs),
        stageRow(s.rules.workerStagesMs),
        String(s.rules.notRoutedWithin30s ?? 0),
      ]),
    ),
  );
  return out.join('\n');
}

export function stormSection(r: BenchResults): string {
  const rec = r.scenarios.storm;
  const res = result<{ sizes: StormSize[] }>(rec);
  const out = [scenarioNote(rec)];
  if (!res?.sizes.length) return out.join('\n');
  const p = rec?.params as { windowMs?: number; quietMs?: number; reps?: number } | undefined;
  out.push(
    '',
    'Real state changes on the same stack: tasks of random bench apps are killed and replaced (`TASK_KILLING`, `TASK_KILLED`, the replacement\'s `TASK_RUNNING`: three status updates each, plus Marathon 1.6\'s instance events). ' +
      `"Paced" spreads them evenly over ${ms(p?.windowMs)}; "burst" emits them as fast as the simulator can. "Config correct" compares every bench app's servers in the installed haproxy.cfg with the simulator's tasks; ` +
      `"quiet" is when fetches, reloads and applies stopped (nothing for ${ms(p?.quietMs)} after). Fetches are counted in the simulator's request log, reloads with the HAProxy master's \`show proc\`. Median (min–max) over ${p?.reps ?? '?'} repetitions.`,
    '',
    table(
      ['Apps', 'Storm', 'Updates', 'Emitted in', '/v2/apps fetches', 'Reloads', 'Applies (reload or Runtime API)', 'Last update -> config correct', 'Last update -> quiet', 'Final config correct', 'Bamboo (1,000-event burst): fetches / reloads / until quiet'],
      res.sizes.flatMap((s) =>
        (['paced', 'burst'] as const)
          .filter((k) => s[k])
          .map((k) => {
            const v = s[k]!.summary;
            return [
              num(s.apps),
              k,
              num(v.statusUpdates?.median),
              med(v.emitMs),
              med(v.marathonFetches, count),
              med(v.reloads, count),
              med(v.applies, count),
              med(v.lastUpdateToConfigMs),
              med(v.lastUpdateToQuietMs),
              s[k]!.allCorrect ? `yes (${s[k]!.reps.length}/${s[k]!.reps.length})` : `**no** (${s[k]!.reps.filter((x) => x.finalConfigCorrect).length}/${s[k]!.reps.length})`,
              BAMBOO.burst[s.apps] ?? 'n/a',
            ];
          }),
      ),
    ),
  );
  const rules = res.sizes.filter((s) => s.rules);
  if (rules.length) {
    out.push(
      '',
      'Rule storm: rule (ACL) writes through the two api copies (PUT, many in flight), cycling over the first 50 apps; then every app must route by its last rule:',
      '',
      table(
        ['Apps', 'Writes', 'Written in', '/v2/apps fetches', 'Reloads', 'Applies', 'Last write -> routed', 'Last write -> quiet', 'Apps left on an older rule, per repetition'],
        rules.map((s) => {
          const v = s.rules!.summary;
          const stale = s.rules!.reps.map((x) => Number(x.appsNotRoutedByTheirLastRule ?? 0));
          const unrouted = s.rules!.reps.filter((x) => x.lastWriteToRoutedMs === null).length;
          return [
            num(s.apps),
            num(v.writes?.median),
            med(v.writeMs),
            med(v.marathonFetches, count),
            med(v.reloads, count),
            med(v.applies, count),
            med(v.lastWriteToRoutedMs) + (unrouted ? ` (${unrouted} of ${stale.length} never routed)` : ''),
            med(v.lastWriteToQuietMs),
            stale.every((x) => x === 0) ? `none (${stale.join(', ')})` : `**${stale.join(', ')}**`,
          ];
        }),
      ),
    );
  }
  return out.join('\n');
}

export function fetchSection(r: BenchResults): string {
  const rec = r.scenarios.fetch;
  const res = result<{ rows: FetchRow[] }>(rec);
  const out = [scenarioNote(rec)];
  if (!res?.rows.length) return out.join('\n');
  out.push(
    '',
    'One app gains a task -> HAProxy routes to it, through the demo stack (two api copies reading the event stream, one worker with a managed HAProxy), with the api fetching only the app the events name (`GET /v2/apps/{id}`, the default) and with the previous path, a fetch of the whole `/v2/apps` per change (`Marathon.PerAppFetchMax=0`), one stack each, in the same run. Goal: p99 under ' +
      `${TASK_CHANGE_P99_MS} ms at 1,000 and 10,000 apps (Bamboo: ${BAMBOO.eventToRouted[1000]} at 1,000 apps).`,
    '',
    table(
      ['Apps', 'Fetch', 'Event -> routed p50', 'p99', 'Event -> hint', 'Hint -> routed', 'Marathon fetch (api)', 'Fetches (of them per-app)', 'Worker stages (median)', 'Goal'],
      res.rows.map((row) => [
        num(row.size),
        row.path === 'per-app' ? 'the named app' : 'whole list',
        ms(row.eventToRoutedMs?.median),
        ms(row.eventToRoutedMs?.p99),
        med(row.eventToHintMs),
        med(row.hintToRoutedMs),
        med(row.apiFetchMs),
        `${num(row.fetches)} (${num(row.appFetches)})`,
        stageRow(row.workerStagesMs),
        row.path === 'per-app' && row.size >= 1000 && row.eventToRoutedMs?.n ? verdict(row.eventToRoutedMs.p99 <= TASK_CHANGE_P99_MS) : '',
      ]),
    ),
  );
  return out.join('\n');
}
