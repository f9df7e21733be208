/**
 * The benchmark suite, scaled down (`npm run bench -- --smoke`), so it never rots: every scenario must
 * complete and write well-formed results, and the report must render from them. No timing is
 * asserted here (figures belong to docs/BENCHMARKS.md, made by the full run on a known machine).
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

type Json = Record<string, unknown>;

/** A sample summary as bench/lib/stats.ts writes it: n samples, finite median and spread. */
function expectSummary(s: unknown, label: string, minN = 1): void {
  const x = s as Json;
  expect(x, label).to.be.an('object');
  expect(x.n, `${label}.n`).to.be.a('number').at.least(minN);
  for (const k of ['min', 'p10', 'median', 'p90', 'p99', 'max']) expect(Number.isFinite(x[k]), `${label}.${k} finite`).to.equal(true);
  expect(x.min as number, `${label}: min <= median <= max`).to.be.at.most(x.median as number);
  expect(x.median as number, `${label}: median <= max`).to.be.at.most(x.max as number);
}

function expectWrk(w: unknown, label: string): void {
  const x = w as Json;
  expect(x.requests, `${label}.requests`).to.be.a('number').above(0);
  expect(x.failed, `${label}.failed`).to.be.a('number');
  expect((x.latencyMs as Json).p99, `${label}.latencyMs.p99`).to.be.a('number');
}

describe('benchmark suite (smoke run of every scenario)', function () {
  // Eight scenarios, two of them starting two demo stacks each (fetch) on a shared machine.
  this.timeout(600000);
  const dir = tempDir('bamboo-bench-smoke-');
  const out = join(dir, 'smoke.json');
  const doc = join(dir, 'BENCHMARKS.md');
  let results: Json;
  let scenarios: Record<string, Json>;

  before(async () => {
    const t0 = Date.now();
    const run = startProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'run.ts'), '--smoke', '--out', out, '--doc', doc], { cwd: ROOT });
    const code = await run.exited;
    console.log(`      smoke run took ${Math.round((Date.now() - t0) / 1000)} s`);
    expect(code, `bench/run.ts --smoke failed:\n${run.output().slice(-4000)}`).to.equal(0);
    results = JSON.parse(readFileSync(out, 'utf8')) as Json;
    scenarios = results.scenarios as Record<string, Json>;
  });

  it('records the machine, versions and load of the run', () => {
    expect(results.kind).to.equal('smoke');
    const m = results.machine as Json;
    expect(m.cpuModel).to.be.a('string').and.not.equal('');
    expect(m.cores).to.be.a('number').above(0);
    expect(m.memoryMB).to.be.a('number').above(0);
    const v = results.versions as Json;
    for (const k of ['node', 'haproxy', 'zookeeper', 'liquidjs', 'package']) expect(v[k], `versions.${k}`).to.be.a('string').and.not.equal('');
    expect((results.load as Json).before).to.have.length(3);
  });

  it('runs every scenario to completion', () => {
    for (const name of ['render', 'latency', 'storm', 'reload', 'structural', 'reloadcost', 'fanout', 'throughput', 'edge', 'fetch', 'idle', 'memory']) {
      expect(scenarios[name], name).to.be.an('object');
      expect(scenarios[name].errors, `${name} errors`).to.deep.equal([]);
      expect(scenarios[name].ok, name).to.equal(true);
    }
  });

  it('structural: a new app and a rule edit -> routed by each path, with stages, server lines and HAProxy lines per reload', () => {
    const r = scenarios.structural.result as { sizes: Array<{ apps: number; paths: Json[] }> };
    expect(r.sizes).to.have.length(1);
    expect(r.sizes[0].paths.map((p) => p.path)).to.deep.equal(['reload', 'spare-slots', 'validate-first']);
    for (const p of r.sizes[0].paths) {
      expectSummary(p.newAppToRoutedMs, `${p.path} newAppToRoutedMs`, 2);
      expectSummary(p.ruleEditToRoutedMs, `${p.path} ruleEditToRoutedMs`, 2);
      expect((p.ruleStagesMs as Json).reload, `${p.path} reload stage`).to.be.an('object');
      expect(p.reloads, `${p.path} reloads`).to.be.a('number').at.least(4);
      expect(p.haproxyLinesPerReload, `${p.path} HAProxy lines per reload`).to.be.a('number').above(0);
      expect(p.loggedLinesPerReload, `${p.path} logged lines per reload`).to.be.a('number');
    }
    // Only the validate-first path runs haproxy -c before its reloads.
    expect((r.sizes[0].paths[0].ruleStagesMs as Json).validate, 'validate stage of the default path').to.equal(undefined);
    expect((r.sizes[0].paths[2].ruleStagesMs as Json).validate, 'validate stage of validate-first').to.be.an('object');
    // Dynamic servers (the default): one server line per task; spare slots: more.
    const [dynamic, spare] = r.sizes[0].paths.map((p) => p.serverLines as number);
    expect(dynamic, 'server lines of the default path').to.be.above(0);
    expect(spare, 'server lines with spare slots').to.be.above(dynamic);
  });

  it('reloadcost: HAProxy check and reload costs, state file and output lines, before and after', () => {
    const r = scenarios.reloadcost.result as { sizes: Array<{ apps: number; variants: Json[] }> };
    expect(r.sizes).to.have.length(1);
    const [before, after] = r.sizes[0].variants;
    expect([before.variant, after.variant]).to.deep.equal(['before', 'after']);
    for (const v of [before, after]) {
      for (const k of ['checkMs', 'checkCpuMs', 'reloadMs', 'masterCpuPerReloadMs', 'serverStateBytes']) expectSummary(v[k], `${v.variant} ${k}`, 2);
      expect(v.haproxyLinesPerReload, `${v.variant} HAProxy lines per reload`).to.be.a('number').above(0);
    }
    // Counts, not timings: 8 slots per app before, 5 after; the state file without the spare slots.
    expect(before.servers).to.equal(8 * r.sizes[0].apps);
    expect(after.servers).to.equal(5 * r.sizes[0].apps);
    expect((after.serverStateBytes as Json).median as number).to.be.below((before.serverStateBytes as Json).median as number);
  });

  it('memory: peak and final RSS of both api copies and the worker, per size', () => {
    const r = scenarios.memory.result as { sizes: Json[] };
    expect(r.sizes.length).to.be.at.least(1);
    for (const s of r.sizes) {
      expect(s.build).to.be.oneOf(['before', 'after']);
      expect(s.apiCopies).to.have.length(2);
      for (const m of [...(s.apiCopies as Json[]), s.worker as Json]) {
        expect(m.peakMB).to.be.a('number').above(0);
        expect(m.peakMB as number).to.be.at.least(m.rssMB as number);
      }
    }
    expect(readFileSync(doc, 'utf8')).to.include('## 12. Memory');
  });

  it('render: per-size timings and peak RSS, and the worker process at scale', () => {
    const r = scenarios.render.result as { sizes: Json[]; worker: Json };
    expect(r.sizes).to.have.length(2);
    for (const s of r.sizes) {
      for (const k of ['buildTemplateDataMs', 'coldRenderMs', 'oneAppChangeBuildAndRenderMs', 'coldBuildRenderValidateMs', 'oneAppChangeRenderValidateMs']) expectSummary(s[k], `${s.apps} apps ${k}`);
      expect(Object.keys(s.haproxyCheckMs as Json)).to.have.length(2);
      expect(s.peakRssMB).to.be.a('number').above(0);
    }
    expect(r.worker.startToFirstApplyMs).to.be.a('number');
    expect(r.worker.workerPeakRssMB).to.be.a('number').above(0);
    expectSummary(r.worker.ruleChangeHintToAppliedMs, 'worker rule change');
  });

  it('latency: event -> routed through the whole stack, with its parts', () => {
    const [s] = (scenarios.latency.result as { sizes: Json[] }).sizes;
    expectSummary(s.eventToRoutedMs, 'eventToRoutedMs', 3);
    expectSummary(s.eventToHintMs, 'eventToHintMs', 1);
    expectSummary((s.rules as Json).writeToRoutedMs, 'rule writeToRoutedMs');
    expect(s.workerStagesMs).to.be.an('object');
  });

  it('storm: fetches, reloads, convergence and a final-config check for each kind of storm', () => {
    const [s] = (scenarios.storm.result as { sizes: Json[] }).sizes;
    for (const k of ['paced', 'burst', 'rules']) {
      const v = s[k] as { summary: Json; reps: Json[]; allCorrect: unknown };
      expect(v.reps.length, k).to.be.at.least(1);
      expect(v.allCorrect, `${k}.allCorrect`).to.be.a('boolean');
      expectSummary(v.summary.reloads, `${k} reloads`);
      expectSummary(v.summary.marathonFetches, `${k} fetches`);
    }
    expect((s.paced as { reps: Json[] }).reps[0].finalConfigCorrect).to.be.a('boolean');
  });

  it('reload: wrk results with and without reloads, keep-alive and close', () => {
    const r = scenarios.reload.result as Json;
    for (const mode of ['keepalive', 'close']) {
      const m = r[mode] as Json;
      expectWrk(m.baseline, `${mode} baseline`);
      expectWrk(m.withReloads, `${mode} with reloads`);
      expect(m.reloads, `${mode} reloads`).to.be.a('number').above(0);
    }
  });

  it('fanout: per fleet size, time to all workers and Marathon requests per change', () => {
    const fleets = (scenarios.fanout.result as { fleets: Json[] }).fleets;
    expect(fleets.map((f) => f.workers)).to.deep.equal([1, 2]);
    for (const f of fleets) {
      expectSummary(f.eventToAllAppliedMs, `${f.workers} workers`);
      expectSummary(f.marathonAppsFetchesPerChange, `${f.workers} workers fetches`);
    }
  });

  it('throughput: GET and PUT rates, rule creation, the callback burst', () => {
    const t = scenarios.throughput.result as Json;
    for (const k of ['getServicesNoRules', 'getServices', 'getOneService', 'putService']) expectWrk(t[k], k);
    expect((t.createRulesOneByOne as Json).ms).to.be.a('number');
    expect((t.callbackBurst as Json).marathonFetches).to.be.a('number');
    expectSummary(t.eventToHintMs, 'eventToHintMs');
  });

  it('edge: certificate, label and rule changes timed side by side, with the reloads each caused', () => {
    const e = scenarios.edge.result as Json;
    for (const k of ['certRenewedToServedMs', 'labelChangeToRoutedMs', 'ruleWriteToRoutedMs']) expectSummary(e[k], k, 2);
    const reloads = e.reloadsPerChange as Json;
    for (const k of ['cert', 'label', 'rule']) expectSummary(reloads[k], `reloads ${k}`, 2);
  });

  it('fetch: task change -> routed with the per-app and the whole-list fetch, side by side', () => {
    const rows = (scenarios.fetch.result as Json).rows as Json[];
    expect(rows.map((r) => r.path)).to.deep.equal(['per-app', 'full']);
    for (const r of rows) expectSummary(r.eventToRoutedMs, `fetch ${String(r.path)} eventToRoutedMs`);
    // Behaviour, not timing: the default path fetched the named app, the switched-off one never did.
    expect(rows[0].appFetches as number, 'per-app fetches by default').to.be.above(0);
    expect(rows[1].appFetches, 'none with Marathon.PerAppFetchMax=0').to.equal(0);
  });

  it('idle: HAProxy CPU with the current and the previous check timing', () => {
    const rows = (scenarios.idle.result as Json).rows as Json[];
    expect(rows.map((r) => r.variant)).to.deep.equal(['current', 'previous']);
    for (const r of rows) {
      expect(r.checkedServers as number, 'servers checked').to.be.above(0);
      expect(Number.isFinite(r.cpuPercent), 'cpu measured').to.equal(true);
    }
  });

  it('renders the report from the results', () => {
    expect(existsSync(doc)).to.equal(true);
    const text = readFileSync(doc, 'utf8');
    for (const h of ['## The run', '## Headline', '## 1. Render', '## 2. Latency', '## 3. Storm', '## 4. Reloads under load', '## 5. Fan-out', '## 6. Throughput', '## 7. Structural changes', '## 8. What HAProxy pays', '## 9. Edge changes', '## 10. Task change', '## 11. HAProxy idle CPU', '## 12. Memory']) expect(text).to.include(h);
    expect(text).to.not.include('NaN');
    expect(text).to.not.include('undefined');
  });
});
