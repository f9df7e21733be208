/**
 * Prometheus on both processes and HAProxy's exporter, against the real thing: an api copy and a
 * managed worker in-process (each with its own registry), real ZooKeeper, ZeroMQ and HAProxy 2.6,
 * the Marathon simulator. Every scrape goes through a real exposition-format parser.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { PromMetrics } from '../../common/adapters/prometheus/prom-metrics.js';
import { runApi, type RunningApi } from '../../api/main.js';
import { runWorker, type WorkerHandle } from '../../worker/main.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/process.js';
import { REPO_ROOT } from '../builders.js';
import { haproxyCheck } from '../support/haproxy.js';
import { labelValues, scrape, seriesNames, total, type Families } from '../support/prometheus.js';
import { testLogger, testSetup, workerConfig, type TestSetup } from '../worker-fixtures.js';

const log = testLogger('metrics');
const ALICE = 'alice-token-0123456789';
const BOB = 'bob-token-0123456789ab';
const STATS = { user: 'op', password: 'scrape me' };
const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

/** Metric names a PromQL expression uses: the identifiers that are not functions, keywords or labels. */
export function promqlMetricNames(expr: string): string[] {
  const keywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings (label values, label_replace arguments)
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ''); // label lists
  const names = new Set<string>();
  for (const m of bare.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call || keywords.has(name.toLowerCase())) continue;
    const prev = bare[m.index - 1];
    if (prev !== undefined && /[0-9.]/.test(prev)) continue; // 1e3, 5m
    names.add(name);
  }
  return [...names];
}

describe('Prometheus metrics (api, worker, HAProxy exporter)', function () {
  this.timeout(120000);
  let s: TestSetup;
  let sim: MarathonSimulator;
  let api: RunningApi;
  let worker: WorkerHandle;
  let statsPort: number;
  const backends: Backend[] = [];

  const apiMetrics = () => scrape(`${api.url}/metrics`);
  const workerMetrics = () => scrape(`http://127.0.0.1:${worker.port}/metrics`);
  const haproxyMetrics = () => scrape(`http://127.0.0.1:${statsPort}/metrics`, basic(STATS.user, STATS.password));
  const hp = (path: string) => `http://127.0.0.1:${s.httpPort}${path}`;

  async function put(path: string, body: unknown, token: string): Promise<number> {
    const r = await fetch(`${api.url}${path}`, { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
    await r.arrayBuffer();
    return r.status;
  }

  before(async () => {
    s = await testSetup();
    backends.push(await startBackend('web-0'), await startBackend('web-1'));
    sim = new MarathonSimulator({ heartbeatMs: 200 });
    await sim.start();
    sim.deployApp({ id: '/web', cmd: 'x', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [{ host: '127.0.0.1', ports: [backends[0].port] }] });
    const apiCfg: Readonly<Config> = loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': s.zkHost,
        'Bamboo.Zookeeper.Path': s.rulesPath,
        'Bamboo.Zookeeper.ControlPath': s.controlPath,
        'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
        'Bamboo.AuthTokens': JSON.stringify({ alice: ALICE, bob: BOB }),
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': sim.url,
        'Marathon.UseEventStream': true,
        'Marathon.TimeoutMs': 2000,
        'Marathon.ResyncIntervalMs': 0,
        'Marathon.FetchDebounceMs': 20,
        'Log.Level': 'silent',
      },
    });
    api = await runApi(apiCfg, log, { bind: '127.0.0.1:0', intake: { retryMinMs: 100, retryMaxMs: 400, streamBackoffMinMs: 50, streamBackoffMaxMs: 300 } });
    statsPort = await freePort();
    worker = await runWorker(
      workerConfig(s, {
        'HAProxy.StatsBind': `127.0.0.1:${statsPort}`,
        'HAProxy.StatsUser': STATS.user,
        'HAProxy.StatsPassword': STATS.password,
        'HAProxy.DrainTimeoutMs': 500,
      }),
      log,
      { bind: '127.0.0.1:0', retryInitialMs: 200 },
    );
    await waitFor(async () => (await httpGet(hp('/web/'))).body.startsWith('web-0'), '/web routed through HAProxy', 30000, 50);
    await waitFor(() => !worker.reconciler.busy, 'worker idle', 20000);
  });

  after(async () => {
    await worker?.close();
    await api?.close();
    await sim?.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('serves every family on both processes in the text exposition format', async () => {
    const a = await apiMetrics();
    for (const name of [
      'bamboo_info', 'bamboo_marathon_events_total', 'bamboo_marathon_fetches_total', 'bamboo_marathon_fetch_duration_seconds',
      'bamboo_marathon_answer_held', 'bamboo_hints_published_total', 'bamboo_zookeeper_connected', 'bamboo_zookeeper_session_expiries_total',
      'bamboo_rule_writes_total', 'bamboo_http_requests_total', 'bamboo_http_request_duration_seconds', 'bamboo_snapshot_version',
      'process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds',
    ]) expect(a.has(name), `api: ${name}`).to.equal(true);
    expect(total(a, 'bamboo_info', { role: 'api' })).to.equal(1);
    expect(total(a, 'bamboo_zookeeper_connected')).to.equal(1);
    expect(total(a, 'bamboo_marathon_fetches_total', { result: 'ok' })).to.be.greaterThan(0);
    expect(total(a, 'bamboo_snapshot_version')).to.be.greaterThanOrEqual(0);
    expect(a.get('bamboo_reconcile_duration_seconds')?.type).to.equal('HISTOGRAM');

    const w = await workerMetrics();
    for (const name of [
      'bamboo_reconcile_total', 'bamboo_reconcile_duration_seconds', 'bamboo_reconcile_stage_duration_seconds', 'bamboo_runtime_servers_total',
      'bamboo_runtime_fallbacks_total', 'bamboo_haproxy_reloads_total', 'bamboo_haproxy_reload_failures_total', 'bamboo_quarantined_apps',
      'bamboo_haproxy_old_generations', 'bamboo_hints_received_total', 'bamboo_hint_gaps_total', 'bamboo_zookeeper_connected', 'bamboo_snapshot_version',
    ]) expect(w.has(name), `worker: ${name}`).to.equal(true);
    expect(total(w, 'bamboo_info', { role: 'worker' })).to.equal(1);
    expect(total(w, 'bamboo_zookeeper_connected')).to.equal(1);
    expect(total(w, 'bamboo_reconcile_total', { outcome: 'reloaded', reason: 'first_config' }) + total(w, 'bamboo_reconcile_total', { outcome: 'reloaded', reason: 'config_changed' })).to.be.greaterThan(0);
    expect(total(w, 'bamboo_reconcile_stage_duration_seconds', { stage: 'render' })).to.be.greaterThan(0);
    // The worker's snapshot in force equals the api's newest: the fleet is fresh.
    expect(total(w, 'bamboo_snapshot_version')).to.equal(total(a, 'bamboo_snapshot_version'));
  });

  it('moves rule writes by credential name, HTTP requests by route, hints, reconciles and reloads after a rule write', async () => {
    const [a0, w0] = [await apiMetrics(), await workerMetrics()];
    const reloads = () => total(w0, 'bamboo_haproxy_reloads_total');
    expect(await put('/api/services//web', { acl: 'path_beg /alice' }, ALICE)).to.be.oneOf([200, 201]);
    expect(await put('/api/services//web', { acl: 'path_beg /bob' }, BOB)).to.equal(200);
    await waitFor(async () => (await httpGet(hp('/bob'))).body.startsWith('web-0'), 'rule live', 20000, 50);
    await waitFor(async () => total(await workerMetrics(), 'bamboo_haproxy_reloads_total') > reloads(), 'reload counted', 20000, 50);
    const [a1, w1] = [await apiMetrics(), await workerMetrics()];
    const writes = (f: Families, credential: string) => total(f, 'bamboo_rule_writes_total', { credential });
    expect(writes(a1, 'alice') - writes(a0, 'alice')).to.equal(1);
    expect(writes(a1, 'bob') - writes(a0, 'bob')).to.equal(1);
    expect(total(a1, 'bamboo_rule_writes_total', { credential: 'bob', action: 'replaced' })).to.be.greaterThan(0);
    const route = { method: 'PUT', route: '/api/services/*' };
    expect(total(a1, 'bamboo_http_requests_total', { ...route, status: '200' }) + total(a1, 'bamboo_http_requests_total', { ...route, status: '201' })).to.be.greaterThanOrEqual(2);
    expect(total(a1, 'bamboo_hints_published_total', { kind: 'rules' }) - total(a0, 'bamboo_hints_published_total', { kind: 'rules' })).to.be.greaterThanOrEqual(2);
    expect(total(w1, 'bamboo_hints_received_total', { kind: 'rules' }) - total(w0, 'bamboo_hints_received_total', { kind: 'rules' })).to.be.greaterThan(0);
    expect(total(w1, 'bamboo_reconcile_total', { outcome: 'reloaded', reason: 'config_changed' })).to.be.greaterThan(total(w0, 'bamboo_reconcile_total', { outcome: 'reloaded', reason: 'config_changed' }));
    expect(total(w1, 'bamboo_haproxy_reload_duration_seconds')).to.be.greaterThan(total(w0, 'bamboo_haproxy_reload_duration_seconds'));
    expect(total(w1, 'bamboo_reconcile_stage_duration_seconds', { stage: 'reload' })).to.be.greaterThan(total(w0, 'bamboo_reconcile_stage_duration_seconds', { stage: 'reload' }));
  });

  it('moves Marathon events, fetches and Runtime API changes when a task is added to an app', async () => {
    const [a0, w0] = [await apiMetrics(), await workerMetrics()];
    sim.scaleApp('/web', 2, { tasks: [{ host: '127.0.0.1', ports: [backends[1].port] }] });
    await waitFor(async () => {
      for (let i = 0; i < 6; i++) if ((await httpGet(hp('/bob/'))).body.startsWith('web-1')) return true;
      return false;
    }, 'new task gets traffic', 20000, 50);
    await waitFor(async () => total(await workerMetrics(), 'bamboo_runtime_servers_total', { action: 'changed' }) > total(w0, 'bamboo_runtime_servers_total', { action: 'changed' }), 'runtime change counted', 20000, 50);
    const [a1, w1] = [await apiMetrics(), await workerMetrics()];
    expect(total(a1, 'bamboo_marathon_events_total', { type: 'status_update_event' })).to.be.greaterThan(total(a0, 'bamboo_marathon_events_total', { type: 'status_update_event' }));
    expect(total(a1, 'bamboo_marathon_fetches_total', { result: 'ok' })).to.be.greaterThan(total(a0, 'bamboo_marathon_fetches_total', { result: 'ok' }));
    expect(total(w1, 'bamboo_reconcile_total', { outcome: 'runtime', reason: 'runtime' })).to.be.greaterThan(total(w0, 'bamboo_reconcile_total', { outcome: 'runtime', reason: 'runtime' }));
    expect(total(w1, 'bamboo_reconcile_stage_duration_seconds', { stage: 'runtime' })).to.be.greaterThan(total(w0, 'bamboo_reconcile_stage_duration_seconds', { stage: 'runtime' }));
    // A runtime change is not a reload.
    expect(total(w1, 'bamboo_hints_received_total', { kind: 'marathon' })).to.be.greaterThan(total(w0, 'bamboo_hints_received_total', { kind: 'marathon' }));
  });

  it('never turns a URL, an app id or a forged event type into a label value', async () => {
    const secret = 'zz-secret-app-7f3a';
    await fetch(`${api.url}/api/services//${secret}`).then((r) => r.arrayBuffer());
    await fetch(`${api.url}/no/such/${secret}?q=${secret}`).then((r) => r.arrayBuffer());
    await fetch(`${api.url}/api/services//${secret}`, { method: 'PATCH' }).then((r) => r.arrayBuffer());
    expect(await put(`/api/services//${secret}`, { acl: 'path_beg /x' }, `${secret}-wrong-token`)).to.equal(401);
    // An event type Marathon never sends, by the stream and by the callback route.
    sim.emit(`${secret}_event`, { eventType: `${secret}_event` });
    await fetch(`${api.url}/api/marathon/event_callback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ eventType: `${secret}"}\n` }) }).then((r) => r.arrayBuffer());
    await waitFor(async () => total(await apiMetrics(), 'bamboo_marathon_events_total', { type: 'other' }) >= 1, 'odd events counted as other', 10000, 50);
    const text = await (await fetch(`${api.url}/metrics`)).text();
    expect(text).to.not.include(secret);
    expect(text).to.not.include(ALICE);
    const a = await apiMetrics();
    expect(total(a, 'bamboo_http_requests_total', { route: 'unmatched' })).to.be.greaterThan(0);
    const routes = labelValues(a, 'bamboo_http_requests_total', 'route');
    for (const r of routes) expect(r, 'route label is a pattern').to.match(/^(unmatched|\/[A-Za-z0-9_/*:-]*)$/);
    // The worker's view too: it never labels by app.
    expect(await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text()).to.not.include('/web');
  });

  it("serves HAProxy's exporter on the default template's stats listener, behind the stats credentials, with haproxy -c valid", async () => {
    const check = await haproxyCheck(s.outputPath);
    expect(check.ok, check.output).to.equal(true);
    expect(readFileSync(s.outputPath, 'utf8')).to.include('use-service prometheus-exporter');
    const h = await haproxyMetrics();
    expect(h.has('haproxy_process_nbthread')).to.equal(true);
    const backends = labelValues(h, 'haproxy_backend_http_responses_total', 'proxy');
    expect([...backends].some((p) => p !== undefined && p.includes('web')), [...backends].join(', ')).to.equal(true);
    // Without the stats credentials, or with wrong ones: nothing (the exporter is not covered by `stats auth`).
    for (const headers of [{}, basic(STATS.user, 'wrong'), basic('someone', STATS.password)]) {
      const r = await fetch(`http://127.0.0.1:${statsPort}/metrics`, { headers });
      const body = await r.text();
      expect(r.status, JSON.stringify(headers)).to.equal(401);
      expect(body).to.not.include('haproxy_');
    }
  });

  it('the Grafana dashboard queries only metrics that exist in a live scrape', async () => {
    const dashboard = JSON.parse(readFileSync(`${REPO_ROOT}/deploy/grafana/bamboo.json`, 'utf8')) as Record<string, unknown>;
    const exprs: string[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          if (k === 'expr' && typeof x === 'string') exprs.push(x);
          else walk(x);
        }
      }
    };
    walk(dashboard);
    expect(exprs.length).to.be.greaterThan(8);
    const known = new Set([...seriesNames(await apiMetrics()), ...seriesNames(await workerMetrics()), ...seriesNames(await haproxyMetrics())]);
    const used = new Set(exprs.flatMap((e) => promqlMetricNames(e.replace(/\$__rate_interval|\$__interval|\$[A-Za-z_]+/g, '5m'))));
    expect(used.size).to.be.greaterThan(8);
    const missing = [...used].filter((n) => !known.has(n));
    expect(missing, `queried but not exported: ${missing.join(', ')}`).to.deep.equal([]);
    // Each area the dashboard promises has a panel.
    for (const n of ['bamboo_reconcile_duration_seconds_bucket', 'bamboo_reconcile_total', 'bamboo_haproxy_reloads_total', 'bamboo_haproxy_reload_failures_total',
      'bamboo_quarantined_apps', 'bamboo_marathon_fetches_total', 'bamboo_marathon_answer_held', 'bamboo_snapshot_version', 'bamboo_workers']) {
      expect(used.has(n), n).to.equal(true);
    }
    expect([...used].some((n) => n.startsWith('haproxy_backend_'))).to.equal(true);
  });

  it('reads metric names out of PromQL: not functions, label names, label values or keywords', () => {
    const got = promqlMetricNames('histogram_quantile(0.9, sum by (le, stage) (rate(a_seconds_bucket{stage=~"x|y_total"}[5m]))) - on (instance) group_left b_info{role="api"} / ignoring(x) c_total offset 1h');
    expect(got.sort()).to.deep.equal(['a_seconds_bucket', 'b_info', 'c_total']);
  });

  it('PromMetrics bounds every label: unknown event types, odd reasons and methods become `other`', () => {
    const m = new PromMetrics('test', { defaults: false });
    for (let i = 0; i < 500; i++) {
      m.marathonEvent(`forged_${i}_event`);
      m.marathonFetch(1, false, `reason with spaces ${i}`);
      m.httpRequest(`M${i}`, '/api/services/*', 200, 0.001);
    }
    return m.exposition().then((e) => {
      expect(e.text).to.not.match(/forged_|reason with|M\d+/);
      expect(e.text).to.include('bamboo_marathon_events_total{type="other"} 500');
      expect(e.text).to.include('bamboo_marathon_fetches_total{result="other"} 500');
    });
  });
});
