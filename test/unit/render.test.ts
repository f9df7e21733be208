import { expect } from 'chai';
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { jsonClone, jsonEqual, sameApp } from '../../common/core/app-equality.js';
import * as filters from '../../common/core/liquid-filters.js';
import type { HAProxySettings, ServiceRecord, TemplateData } from '../../common/core/model.js';
import { TemplateError, appsAtLines, createRenderer, renderOnce, type Origin } from '../../common/core/render.js';
import { renderFromFiles } from '../../common/core/render-input.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import { TemplateDataMemo } from '../../common/core/template-memo.js';
import {
  NOW,
  REPO_ROOT,
  app,
  defaultTemplate,
  fixtureApps,
  healthy,
  inState,
  onHost,
  service,
  services,
  settings,
  startedAgo,
  task,
  unhealthy,
  withDeployment,
  withEnv,
  withHealthCheck,
  withLabels,
  withVersion,
  withPortDefinitions,
  withReadinessCheck,
  withReadinessResult,
  withTasks,
} from '../builders.js';

const GOLDEN_DIR = resolve(REPO_ROOT, 'test/golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

function data(apps: unknown[], svc: Record<string, ServiceRecord> = {}): TemplateData {
  return buildTemplateData({ apps, services: svc, now: NOW }).data;
}

// ------------------------------------------------------------------------------------------------
// Golden files: whole haproxy.cfg for representative inputs (test/integration/render-haproxy.test.ts
// runs each through the real HAProxy).
// ------------------------------------------------------------------------------------------------

interface GoldenCase {
  name: string;
  why: string;
  apps: () => unknown[];
  services?: Record<string, ServiceRecord>;
  settings?: Partial<HAProxySettings>;
}

const GOLDEN: GoldenCase[] = [
  {
    name: 'http-bluegreen-0.15',
    why: 'HTTP health checks (Marathon 0.15, Docker bridge) and one app with a host rule',
    apps: () => fixtureApps('apps/v2-apps-embed-tasks__real-marathon-0.15_marathon-lb_bluegreen_apps.json'),
    services: services(service('/nginx-blue', 'hdr(host) -i blue.example.com')),
  },
  {
    name: 'tcp',
    why: 'BAMBOO_TCP_PORT gives a TCP listener; a non-numeric one is ignored',
    apps: () => [
      app('/db/postgres', withEnv({ BAMBOO_TCP_PORT: '15432' }), withHealthCheck('TCP'), withTasks(task('db_postgres.1', onHost('10.0.1.1', 31432), healthy()), task('db_postgres.2', onHost('10.0.1.2', 31433), healthy()))),
      app('/db/broken', withEnv({ BAMBOO_TCP_PORT: 'not-a-port' }), withTasks(task('db_broken.1', onHost('10.0.1.3', 31434)))),
    ],
  },
  {
    name: 'tcp-healthcheck-1.6',
    why: 'Marathon 1.6 container/bridge app with a TCP health check and a fixed host port',
    apps: () => fixtureApps('apps/v2-apps-embed-tasks__TRIMMED-real-marathon-1.6_gestalt-dcos_tcp-healthcheck-vip.json'),
  },
  {
    name: 'multi-port',
    why: 'two service ports: the second becomes a TCP listener on the tasks\' second port',
    apps: () => fixtureApps('apps/v2-apps-list__real-marathon-0.x_f5_two-service-ports.json'),
  },
  {
    name: 'ip-per-task-stub',
    why: 'Bamboo\'s own IP-per-task stub: ids without a slash, ipAddress.discovery ports',
    apps: () => fixtureApps('apps/v2-apps-embed-tasks__STUB-bamboo-test_ip-per-task-minimal.json'),
  },
  {
    name: 'ip-per-task-1.5-container-network',
    why: 'Marathon 1.5+ container network: task IP and container ports, MESOS_HTTP check on portIndex 1',
    apps: () => fixtureApps('apps/v2-apps-id__ANONYMISED-real-marathon-1.5plus_firewatcher_container-network-dcos.json'),
  },
  {
    name: 'unhealthy',
    why: 'a failing task keeps its slot but is disabled, an unknown one inside its grace period too, and an app whose only task fails has no server in rotation',
    apps: () => [
      app('/web', withHealthCheck('HTTP', '/health'), withTasks(task('web.1', onHost('10.0.2.1', 31001), healthy()), task('web.2', onHost('10.0.2.2', 31002), unhealthy()), task('web.3', onHost('10.0.2.3', 31003), startedAgo(5_000)))),
      app('/down', withHealthCheck('HTTP', '/health'), withTasks(task('down.1', onHost('10.0.2.4', 31004), unhealthy()))),
      app('/killing', withTasks(task('killing.1', onHost('10.0.2.5', 31005), inState('TASK_KILLING')), task('killing.2', onHost('10.0.2.6', 31006)))),
    ],
  },
  {
    name: 'robustness-f5-missing-data',
    why: 'F5\'s hand-broken negative test data: alive:false, a task without results, a task without a host',
    apps: () => fixtureApps('apps/v2-apps-list__EDITED-negative-test_f5_missing-data.json'),
  },
  {
    name: 'not-ready',
    why: 'during a deployment only tasks whose readiness check passed get traffic (the others are disabled in their slots)',
    apps: () => [
      app('/api', withDeployment(), withReadinessCheck('/ready', 10), withReadinessResult('api.new', false), withReadinessResult('api.newer', true),
        withTasks(task('api.old', onHost('10.0.3.1', 31001), startedAgo(3_600_000)), task('api.new', onHost('10.0.3.2', 31002), startedAgo(3_000)), task('api.newer', onHost('10.0.3.3', 31003), startedAgo(3_000)))),
    ],
  },
  {
    name: 'nested-groups',
    why: 'nested group ids (F5 capture and the RAML group example): more specific paths are matched first',
    apps: () => [
      ...fixtureApps('apps/v2-apps-list__EDITED-real-marathon-0.x_f5_nested-group-id.json'),
      ...fixtureApps('apps/v2-groups__marathon-raml-group-nested.json'),
      app('/my_services', withTasks(task('my_services.1', onHost('10.0.4.1', 31001)))),
    ],
  },
  {
    name: 'secrets-in-env',
    why: 'env values that are secret references never reach the output, even BAMBOO_TCP_PORT',
    apps: () => [
      app('/vault', withPortDefinitions(10100), withEnv({ DB_PASSWORD: { secret: 'db-password' }, BAMBOO_TCP_PORT: { secret: 'port' }, PLAIN: 'x' }), withTasks(task('vault.1', onHost('10.0.5.1', 31001)))),
      ...fixtureApps('apps/definitions/app-definition__marathon-raml-app.json'),
    ],
  },
  {
    name: 'mesos-http-1.5',
    why: 'Marathon 1.5 MESOS_HTTP health checks with results',
    apps: () => fixtureApps('apps/v2-apps-embed-tasks__real-marathon-1.5_marathon-lb_mesos-http-healthchecks.json'),
  },
  {
    name: 'container-bridge-1.5.2',
    why: 'Marathon 1.5.2 networks + container.portMappings, two HTTP checks',
    apps: () => fixtureApps('apps/v2-apps-list__real-marathon-1.5.2_f5_container-bridge.json'),
  },
  {
    name: 'https-no-stats',
    why: 'an HTTPS health check talks TLS to the servers; without stats credentials there is no stats page',
    apps: () => [app('/secure', withHealthCheck('HTTPS', '/healthz'), withTasks(task('secure.1', onHost('10.0.6.1', 31443), healthy())))],
    settings: { StatsUser: '', StatsPassword: '' },
  },
  {
    name: 'https-sni',
    why: 'HTTPS on: a crt-list bind in the HTTP frontend (SNI), HSTS, and HTTP redirected to HTTPS for the app whose label asks (test/integration/tls.test.ts runs it through haproxy -c with real certificates)',
    apps: () => [
      app('/secure', withLabels({ HAPROXY_0_REDIRECT_TO_HTTPS: 'true', HAPROXY_0_SSL_CERT: '../../etc/passwd' }), withTasks(task('secure.1', onHost('10.0.7.1', 31001)))),
      app('/plain', withLabels({ HAPROXY_0_REDIRECT_TO_HTTPS: 'false' }), withTasks(task('plain.1', onHost('10.0.7.2', 31002)))),
    ],
    services: services(service('/secure', 'hdr(host) -i secure.example.com')),
    settings: { HttpsBind: '*:443', CrtList: '/run/bamboo-worker/tls/crt-list', HstsMaxAge: '31536000' },
  },
  {
    name: 'labels-vhost-path',
    why: 'marathon-lb labels: hosts with a path first (weight), hosts alone, sticky cookie, balance, a health check port index, port 0 disabled, a host on a second port',
    apps: () => [
      app('/shop', withLabels({ HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'shop.example.com,www.shop.example.com', HAPROXY_0_STICKY: 'true', HAPROXY_0_BALANCE: 'roundrobin' }),
        withTasks(task('shop.1', onHost('10.0.7.1', 31001)), task('shop.2', onHost('10.0.7.2', 31002)))),
      app('/shop-api', withLabels({ HAPROXY_0_VHOST: 'api.shop.example.com', HAPROXY_0_PATH: '/api /v2/api' }), withVersion('2026-01-01T00:00:00.000Z'),
        withTasks(task('shop-api.1', onHost('10.0.7.3', 31003)))),
      app('/z-admin', withPortDefinitions(10300, 10301),
        withHealthCheck('HTTP', '/health', { portIndex: 0 }), withLabels({ HAPROXY_0_PATH: '/z-admin/ui', HAPROXY_0_BACKEND_WEIGHT: '5', HAPROXY_0_BACKEND_HEALTHCHECK_PORT_INDEX: '1' }),
        withTasks(task('z-admin.1', onHost('10.0.7.4', 31004, 31005), healthy()))),
      app('/hidden', withLabels({ HAPROXY_0_ENABLED: 'false' }), withTasks(task('hidden.1', onHost('10.0.7.5', 31006)))),
      app('/console', withPortDefinitions(10700, 10701), withLabels({ HAPROXY_1_VHOST: 'console.example.com', HAPROXY_1_STICKY: 'true' }),
        withTasks(task('console.1', onHost('10.0.7.6', 31007, 31008)))),
    ],
  },
  {
    name: 'labels-tcp',
    why: 'marathon-lb labels: port 0 in TCP mode on a port of its own, a second port moved and a third disabled',
    apps: () => [
      app('/redis', withLabels({ HAPROXY_0_MODE: 'tcp', HAPROXY_0_PORT: '16379', HAPROXY_0_BALANCE: 'leastconn' }), withPortDefinitions(10400),
        withTasks(task('redis.1', onHost('10.0.8.1', 31001)))),
      app('/multi', withLabels({ HAPROXY_1_PORT: '15001', HAPROXY_2_ENABLED: 'no', HAPROXY_0_VHOST: 'multi.example.com' }), withPortDefinitions(10500, 10501, 10502),
        withTasks(task('multi.1', onHost('10.0.8.2', 31002, 31003, 31004)))),
      app('/legacy', withLabels({ HAPROXY_0_PORT: '10600' }), withPortDefinitions(10600),
        withTasks(task('legacy.1', onHost('10.0.8.3', 31005)))),
    ],
  },
  {
    name: 'labels-conflicts-and-attacks',
    why: 'two apps claim one host: a rule\'s Config takes it from both, then the earlier label keeps its place over the later; an ACL rule replaces labels; hostile label values and a path outside the app\'s id are ignored',
    apps: () => [
      app('/first', withLabels({ HAPROXY_0_VHOST: 'taken.example.com' }), withVersion('2025-01-01T00:00:00.000Z'), withTasks(task('first.1', onHost('10.0.9.1', 31001)))),
      app('/second', withLabels({ HAPROXY_0_VHOST: 'taken.example.com' }), withVersion('2026-01-01T00:00:00.000Z'), withTasks(task('second.1', onHost('10.0.9.2', 31002)))),
      app('/ruled', withLabels({ HAPROXY_0_VHOST: 'ruled-label.example.com' }), withTasks(task('ruled.1', onHost('10.0.9.3', 31003)))),
      app('/evil', withLabels({
        HAPROXY_0_VHOST: 'a.example.com\n    use_backend ::first-cluster',
        HAPROXY_0_PATH: '/x }#',
        HAPROXY_0_BALANCE: 'roundrobin\nuser x',
        HAPROXY_0_SSL_CERT: '../../etc/passwd',
        HAPROXY_0_BACKEND_WEIGHT: '99999999',
        HAPROXY_1_VHOST: 'x'.repeat(300),
      }), withTasks(task('evil.1', onHost('10.0.9.4', 31004)))),
      app('/thief', withLabels({ HAPROXY_0_PATH: '/first' }), withTasks(task('thief.1', onHost('10.0.9.5', 31005)))),
      app('/ruler', withLabels({ HAPROXY_0_VHOST: 'ruler.example.com' }), withTasks(task('ruler.1', onHost('10.0.9.6', 31006)))),
    ],
    services: services(service('/ruled', 'hdr(host) -i ruled.example.com'), service('/ruler', '', { HAPROXY_0_VHOST: 'taken.example.com' })),
  },
];

describe('default template golden files', function () {
  this.timeout(30_000);
  const template = defaultTemplate();
  const rendered = new Map<string, string>();

  before(() => {
    if (UPDATE) mkdirSync(GOLDEN_DIR, { recursive: true });
  });

  for (const c of GOLDEN) {
    it(`renders ${c.name}.cfg: ${c.why}`, () => {
      const { data: d } = buildTemplateData({ apps: c.apps(), services: c.services ?? {}, now: NOW });
      const text = renderOnce(template, d, settings(c.settings), { filename: 'templates/haproxy.cfg.liquid' }).text;
      const file = join(GOLDEN_DIR, `${c.name}.cfg`);
      if (UPDATE) writeFileSync(file, text);
      expect(existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1`).to.equal(true);
      expect(text).to.equal(readFileSync(file, 'utf8'));
      rendered.set(c.name, file);
    });
  }

  it('keeps secrets and the injected ACL out of the golden output', () => {
    const secrets = readFileSync(join(GOLDEN_DIR, 'secrets-in-env.cfg'), 'utf8');
    expect(secrets).not.to.contain('db-password');
    expect(secrets).not.to.contain('-cluster-tcp');
  });
});

// ------------------------------------------------------------------------------------------------

describe('createRenderer', () => {
  const S = settings();

  describe('routing rules in the default template', () => {
    const text = renderOnce(defaultTemplate(), data([
      app('/app', withTasks(task('app.1'))),
      app('/app2', withTasks(task('app2.1'))),
      app('/group', withTasks(task('group.1'))),
      app('/group/app', withTasks(task('group_app.1'))),
      app('/custom', withTasks(task('custom.1'))),
    ], services(service('/custom', 'hdr(host) -i custom.example.com'))), S).text;

    it('matches /app exactly or under /app/, so /app does not capture /app2', () => {
      expect(text).to.contain('use_backend ::app-cluster if { path -i /app } || { path_beg -i /app/ }\n');
      expect(text).not.to.match(/path_beg -i \/app \}/);
    });

    it('checks more specific ids first, so /group/app wins over /group', () => {
      expect(text.indexOf('use_backend ::group::app-cluster')).to.be.lessThan(text.indexOf('use_backend ::group-cluster'));
    });

    it('uses the service record\'s ACL instead of the path rule', () => {
      expect(text).to.contain('use_backend ::custom-cluster if { hdr(host) -i custom.example.com }\n');
      expect(text).not.to.contain('path -i /custom');
    });

    it('answers unmatched requests with a clear 503', () => {
      expect(text).to.contain('default_backend bamboo-no-route');
      expect(text).to.match(/http-request return status 503 content-type text\/plain string "[^"]+"/);
    });

    it('appends BindOptions to every bind line and moves noreuseport to global', () => {
      const t = renderOnce(defaultTemplate(), data([app('/a', withEnv({ BAMBOO_TCP_PORT: '9000' }))]), settings({ BindOptions: 'noreuseport v4v6' })).text;
      const binds = t.split('\n').filter((l) => l.trim().startsWith('bind '));
      expect(binds).to.have.length(3);
      for (const b of binds) expect(b).to.match(/ v4v6$/);
      const global = t.slice(t.indexOf('\nglobal\n'), t.indexOf('\ndefaults '));
      expect(global).to.contain('\n    noreuseport\n');
    });
  });

  describe('stats page', () => {
    it('exists only when StatsBind, StatsUser and StatsPassword are all set, with those credentials', () => {
      const d = data([]);
      const on = renderOnce(defaultTemplate(), d, settings({ StatsUser: 'ops', StatsPassword: "p@ss w'rd" })).text;
      expect(on).to.contain('listen stats');
      expect(on).to.contain(`stats auth 'ops:p@ss w'\\''rd'`);
      for (const off of [{ StatsBind: '' }, { StatsUser: '' }, { StatsPassword: '' }]) {
        expect(renderOnce(defaultTemplate(), d, settings(off)).text).not.to.contain('listen stats');
      }
      expect(on).not.to.contain('admin:admin');
    });

    it("serves HAProxy's Prometheus exporter only with PrometheusExporter \"true\" and a stats page, behind the stats credentials", () => {
      const d = data([]);
      const on = renderOnce(defaultTemplate(), d, settings({ StatsUser: 'ops', StatsPassword: "p@ss w'rd" })).text;
      expect(on).to.contain('http-request use-service prometheus-exporter if { path /metrics }');
      // `stats auth` does not cover the exporter: the same credentials are checked through a userlist first.
      expect(on).to.contain(`user ops insecure-password 'p@ss w'\\''rd'`);
      expect(on.indexOf('http-request auth realm stats if { path /metrics } !{ http_auth(bamboo-stats) }')).to.be.greaterThan(-1);
      expect(on.indexOf('http_auth(bamboo-stats)')).to.be.lessThan(on.indexOf('use-service prometheus-exporter'));
      // haproxy -c of this rendering: test/integration/render-haproxy.test.ts.
      for (const off of [{ PrometheusExporter: 'false' }, { PrometheusExporter: undefined }, { StatsPassword: '' }]) {
        const t = renderOnce(defaultTemplate(), d, settings(off)).text;
        expect(t, JSON.stringify(off)).not.to.contain('prometheus-exporter');
        expect(t, JSON.stringify(off)).not.to.contain('userlist bamboo-stats');
      }
    });
  });

  describe('isolation of bad input', () => {
    it('never lets an ACL with a newline reach the output, and renders the other apps', () => {
      const result = renderFromFiles({
        appsJson: JSON.stringify({ apps: [app('/evil', withTasks(task('evil.1'))), app('/fine', withTasks(task('fine.1')))] }),
        servicesJson: JSON.stringify({ '/evil': { Id: '/evil', Acl: 'path /x\n    server injected 6.6.6.6:80' } }),
        templateText: defaultTemplate(),
        settings: S,
        now: NOW,
      });
      expect(result.text).not.to.contain('injected');
      expect(result.text).to.contain('backend ::fine-cluster');
      expect(result.text).to.contain('use_backend ::evil-cluster if { path -i /evil }');
      expect(result.warnings.map((w) => [w.code, w.appId])).to.deep.equal([['acl_invalid', '/evil']]);
    });

    it('skips a malformed app with a warning and renders the rest', () => {
      const result = renderFromFiles({
        appsJson: JSON.stringify([{ id: '/bro ken', tasks: [] }, app('/fine', withTasks(task('fine.1')))]),
        templateText: defaultTemplate(),
        settings: S,
        now: NOW,
      });
      expect(result.text).to.contain('backend ::fine-cluster');
      expect(result.warnings).to.have.length(1);
      expect(result.warnings[0].message).to.contain('/bro ken');
    });

    it('refuses settings that are not one printable line', () => {
      expect(() => renderOnce(defaultTemplate(), data([]), settings({ StatsPassword: 'a\nlisten evil' }))).to.throw(TemplateError, /StatsPassword/);
    });
  });

  describe('template errors', () => {
    const cases: Array<[string, string, RegExp, number | undefined]> = [
      ['an unclosed tag', 'global\n{% if Apps %}\nx\n', /not closed/, 2],
      ['an undefined variable', 'global\n\n{{ Appz }}\n', /undefined variable: Appz/, 3],
      ['a misspelt field of an app', '{% for app in Apps %}\n{{ app.EscapedID }}\n{% endfor %}', /undefined variable/, 2],
      ['an unknown filter', 'x\n{{ "a" | upcasee }}', /undefined filter: upcasee/, 2],
      ['a bad {% app %} argument', '{% app "x" %}{% endapp %}', /takes the app variable/, 1],
      ['a block body reading outside its app', '{% app app in Apps %}\n{{ Apps.size }}\n{% endapp %}', /undefined variable: Apps/, 2],
      ['nested app blocks', '{% app app in Apps %}{% app app %}x{% endapp %}{% endapp %}', /cannot be nested/, 1],
      ['an app block inside capture', '{% capture c %}{% app app in Apps %}x{% endapp %}{% endcapture %}', /capture/, 1],
      ['a Go template (Bamboo\'s format), pointing to the porting guide', 'global\n  daemon\nfrontend http-in\n{{ range $index, $app := .Apps }}\n{{ end }}\n', /Go text\/template \(Bamboo's format\), not Liquid; port it as "Porting a Bamboo template" in docs\/templates\.md/, 4],
      ['a Go template using only fields and if', 'x\n{{ if .Ready }}ok{{ end }}', /Go text\/template/, 2],
      ['forloop inside an app block, with the supported form named', '{% app app in Apps %}\n{{ forloop.index0 }}\n{% endapp %}', /forloop.*app.EscapedId.*plain \{% for app in Apps %\}/, 2],
    ];
    for (const [name, tpl, message, line] of cases) {
      it(`throws a TemplateError naming file and line for ${name}`, () => {
        let caught: unknown;
        try {
          createRenderer(tpl, { filename: 'custom.liquid' }).render(data([app('/a')]), S);
        } catch (err) {
          caught = err;
        }
        expect(caught).to.be.instanceOf(TemplateError);
        const e = caught as TemplateError;
        expect(e.message).to.match(message);
        expect(e.file).to.equal('custom.liquid');
        expect(e.message.startsWith(`custom.liquid:${line ?? ''}`)).to.equal(true);
        if (line !== undefined) expect(e.line).to.equal(line);
        expect(e.message).not.to.contain('\n');
      });
    }
  });

  describe('memoised rendering', () => {
    /** A small deterministic PRNG, so that a failure replays. */
    function prng(seed: number): () => number {
      let s = seed >>> 0;
      return () => {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        return s / 2 ** 32;
      };
    }

    function baseApps(n: number) {
      return Array.from({ length: n }, (_, i) => app(`/g${i % 5}/app-${i}`, withPortDefinitions(10000 + i, 20000 + i), withHealthCheck('HTTP', '/h'), withEnv(i % 7 === 0 ? { BAMBOO_TCP_PORT: String(30000 + i) } : {}),
        withTasks(task(`app-${i}.a`, onHost(`10.1.0.${i % 250}`, 31000 + i, 32000 + i), healthy()), task(`app-${i}.b`, onHost(`10.1.1.${i % 250}`, 33000 + i, 34000 + i), healthy()))));
    }

    it('equals a cold render byte for byte after random one-app changes', () => {
      const rnd = prng(42);
      const apps = baseApps(40);
      let svc: Record<string, ServiceRecord> = services(service('/g1/app-1', 'hdr(host) -i one.example.com'));
      const template = defaultTemplate();
      const warm = createRenderer(template);
      warm.render(data(apps, svc), S);
      const changes = [
        (i: number) => { (apps[i].tasks ?? []).push(task(`app-${i}.new${Math.floor(rnd() * 1e6)}`, onHost('10.9.9.9', 35000 + i))); },
        (i: number) => { apps[i].tasks = (apps[i].tasks ?? []).slice(1); },
        (i: number) => { const t = (apps[i].tasks ?? [])[0]; if (t) t.healthCheckResults = [{ alive: rnd() < 0.5 }]; },
        (i: number) => { apps[i].env = { ...(apps[i].env ?? {}), BAMBOO_TCP_PORT: String(40000 + i) }; },
        (i: number) => { svc = { ...svc, [String(apps[i].id)]: service(String(apps[i].id), `hdr(host) -i r${Math.floor(rnd() * 1000)}.example.com`) }; },
        (i: number) => { svc = { ...svc }; delete svc[String(apps[i].id)]; },
        (i: number) => { apps.splice(i, 1); },
        (i: number) => { apps.splice(i, 0, app(`/fresh/app-${Math.floor(rnd() * 1e6)}`, withTasks(task('fresh.1')))); },
        (i: number) => { const t = (apps[i].tasks ?? [])[0]; if (t) t.state = 'TASK_KILLING'; },
      ];
      for (let round = 0; round < 25; round++) {
        const i = Math.floor(rnd() * apps.length);
        changes[Math.floor(rnd() * changes.length)](i);
        const d = data(apps, svc);
        const warmResult = warm.render(d, S);
        const cold = createRenderer(template).render(d, S);
        expect(warmResult.text, `round ${round}`).to.equal(cold.text);
        expect(warmResult.origins, `round ${round}`).to.deep.equal(cold.origins);
        // A one-app change re-renders that app's two blocks at most (a fresh app: also two).
        expect(warm.stats().misses, `round ${round}`).to.be.at.most(4);
      }
    });

    it('re-renders every block when the settings change, and nothing when nothing changed', () => {
      const d = data(baseApps(10));
      const r = createRenderer(defaultTemplate());
      r.render(d, S);
      expect(r.stats()).to.include({ misses: 20, hits: 0 });
      r.render(d, S);
      expect(r.stats()).to.include({ misses: 0, hits: 20 });
      const other = r.render(d, settings({ HttpBind: '127.0.0.1:8080' }));
      expect(r.stats()).to.include({ misses: 20, hits: 0 });
      expect(other.text).to.equal(createRenderer(defaultTemplate()).render(d, settings({ HttpBind: '127.0.0.1:8080' })).text);
    });

    it('renders memoised (frozen, shared) template data exactly like fresh data, re-rendering only what changed', () => {
      const apps = baseApps(12);
      const memo = new TemplateDataMemo();
      const warm = createRenderer(defaultTemplate());
      const build = (m?: TemplateDataMemo) => buildTemplateData({ apps, services: {}, now: NOW, memo: m }).data;
      warm.render(build(memo), S);
      for (let round = 0; round < 6; round++) {
        // A new, equal object for every app (a snapshot parsed anew) and one real change.
        apps.splice(0, apps.length, ...(JSON.parse(JSON.stringify(apps)) as typeof apps));
        apps[round].env = { BAMBOO_TCP_PORT: String(41000 + round) };
        const text = warm.render(build(memo), S).text;
        expect(text, `round ${round}`).to.equal(createRenderer(defaultTemplate()).render(build(), S).text);
        expect(warm.stats().misses, `round ${round}`).to.be.at.most(2);
      }
    });

    it('is not fooled by data mutated in place between renders', () => {
      const d = data(baseApps(3));
      const r = createRenderer(defaultTemplate());
      r.render(d, S);
      d.Apps[0].Tasks[0].Host = '10.200.0.1';
      expect(r.render(d, S).text).to.contain('10.200.0.1');
    });

    it('compares apps exactly like a generic deep equality', () => {
      const base = data(baseApps(1))[`Apps`][0];
      const mutations: Array<(a: ReturnType<typeof jsonClone<typeof base>>) => void> = [
        () => {},
        (a) => { a.Tasks[0].Alive = !a.Tasks[0].Alive; },
        (a) => { a.Tasks[1].Ports = [...a.Tasks[1].Ports, 1]; },
        (a) => { a.Env = { ...a.Env, X: '1' }; },
        (a) => { a.Labels = { y: '2' }; },
        (a) => { a.HealthChecks[0].PortIndex = 1; },
        (a) => { a.SplitId = [...a.SplitId, 'x']; },
        (a) => { a.ServicePorts = []; },
        (a) => { (a as unknown as Record<string, unknown>).Extra = 1; },
        (a) => { (a.Tasks[0] as unknown as Record<string, unknown>).Extra = { deep: [1] }; },
        (a) => { (a.Env as Record<string, unknown>).OBJ = { secret: 'x' }; },
      ];
      for (const [i, mutate] of mutations.entries()) {
        const changed = jsonClone(base);
        mutate(changed);
        expect(sameApp(base, changed), `mutation ${i}`).to.equal(jsonEqual(base, changed));
        expect(sameApp(changed, base), `mutation ${i} reversed`).to.equal(jsonEqual(changed, base));
      }
    });

    it('keeps the memo bounded to the apps of the last render', () => {
      const r = createRenderer(defaultTemplate());
      r.render(data(baseApps(20)), S);
      expect(r.stats().entries).to.equal(40);
      r.render(data(baseApps(5)), S);
      expect(r.stats().entries).to.equal(10);
    });

    it('works inside a plain for loop too', () => {
      const tpl = '{% for app in Apps %}{% app app %}[{{ app.Id }}]{% endapp %}{% endfor %}';
      const r = createRenderer(tpl);
      const d = data(baseApps(3));
      expect(r.render(d, S).text).to.equal('[/g0/app-0][/g1/app-1][/g2/app-2]');
      expect(r.render(d, S).text).to.equal('[/g0/app-0][/g1/app-1][/g2/app-2]');
      expect(r.stats().hits).to.equal(3);
    });
  });

  describe('origins', () => {
    it('records the output lines of every app block', () => {
      const d = data([app('/a', withTasks(task('a.1'), task('a.2'))), app('/b', withTasks(task('b.1')))]);
      const { text, origins } = createRenderer(defaultTemplate()).render(d, S);
      const lines = text.split('\n');
      expect(origins.map((o) => o.appId)).to.deep.equal(['/b', '/a', '/a', '/b']);
      for (const o of origins) {
        const escaped = o.appId.replace(/\//g, '::');
        const slice = lines.slice(o.startLine - 1, o.endLine);
        expect(slice[0].trim(), JSON.stringify(o)).not.to.equal('');
        expect(slice.join('\n')).to.contain(escaped);
      }
      expect(lines[origins[2].startLine - 1]).to.equal('backend ::a-cluster');
      // Two tasks get 4 slots (tasks + at least 2 free): the block ends on the last.
      expect(lines[origins[2].endLine - 1]).to.match(/^ {4}server slot-4 127\.0\.0\.1:1 disabled$/);
      expect(lines.slice(origins[2].startLine - 1, origins[2].endLine).filter((l) => l.includes(' disabled'))).to.have.length(2);
    });

    it('appsAtLines finds the blocks containing the lines, sorted and without duplicates', () => {
      const origins: Origin[] = [
        { appId: '/b', startLine: 3, endLine: 4 },
        { appId: '/a', startLine: 6, endLine: 6 },
        { appId: '/b', startLine: 10, endLine: 14 },
      ];
      expect(appsAtLines(origins, [1, 2, 5, 15])).to.deep.equal([]);
      expect(appsAtLines(origins, [4, 6, 12])).to.deep.equal(['/a', '/b']);
      expect(appsAtLines([], [1])).to.deep.equal([]);
    });
  });
});

describe('liquid filters', () => {
  const cases: Array<[string, unknown, unknown]> = [
    ['has_key', filters.hasKey({ '/a': {} }, '/a'), true],
    ['has_key on a missing key', filters.hasKey({ '/a': {} }, '/b'), false],
    ['has_key ignores inherited keys', filters.hasKey({}, 'toString'), false],
    ['get_service', filters.getService({ '/a': { Acl: 'x' } }, '/a'), { Acl: 'x' }],
    ['get_service on a missing key', filters.getService({}, '/a'), null],
    ['get', filters.get({ A: '1' }, 'A'), '1'],
    ['to_int', filters.toInt(' 8080 '), 8080],
    ['to_int on a negative number', filters.toInt('-3'), -3],
    ['to_int on text', filters.toInt('80a'), null],
    ['truthy on an empty string (false, as Go templates)', filters.truthy(''), false],
    ['truthy on 0, false, nil, [], {}', [0, false, null, undefined, [], {}].map(filters.truthy), [false, false, false, false, false, false]],
    ['truthy on text, "0", "false", 1, [x], {k}', ['a', '0', 'false', 1, ['x'], { k: 1 }].map(filters.truthy), [true, true, true, true, true, true]],
    ['to_int on a secret reference', filters.toInt({ secret: 'x' }), null],
    ['contains on a string', filters.contains('/group/app', 'group'), true],
    ['contains on a list', filters.contains(['a', 'b'], 'c'), false],
    ['haproxy_name', filters.haproxyName('my app/1.2#x'), 'my_app_1.2_x'],
    ['haproxy_quote on a plain word', filters.haproxyQuote('/health?x=1'), '/health?x=1'],
    ['haproxy_quote with a space and a quote', filters.haproxyQuote("a b'c"), `'a b'\\''c'`],
    ['haproxy_quote drops control characters', filters.haproxyQuote('/a\nb'), '/ab'],
    ['bind_host', filters.bindHost('127.0.0.1:8080'), '127.0.0.1'],
    ['bind_host on *:80', filters.bindHost('*:80'), '*'],
    ['bind_options', filters.bindOptions('noreuseport  v4v6'), ' v4v6'],
    ['global_options', filters.globalOptions('noreuseport v4v6'), ['noreuseport']],
    ['health_check prefers HTTP', filters.healthCheck({ HealthChecks: [{ Protocol: 'TCP', Path: '', PortIndex: 1 }, { Protocol: 'MESOS_HTTP', Path: '/', PortIndex: 0 }] }), { Protocol: 'MESOS_HTTP', Path: '/', PortIndex: 0 }],
    ['health_check without checks', filters.healthCheck({ HealthChecks: [] }), null],
  ];
  for (const [name, actual, expected] of cases) {
    it(`${name}`, () => expect(actual).to.deep.equal(expected));
  }

  it('are usable from templates in Liquid syntax, like Bamboo\'s Go functions', () => {
    const tpl = [
      '{% for app in Apps %}',
      '{% if Services | has_key: app.Id %}{% assign s = Services | get_service: app.Id %}{{ s.Acl | upcase }}{% endif %}',
      '|{{ app.Id | split: "/" | join: "." }}|{{ app.Id | replace: "/", "_" }}|{{ app.Env.PORT | to_int | plus: 1 }}',
      '|{% if app.Id contains "web" %}web{% endif %}|{{ app.Id | contains: "we" }}',
      '{% endfor %}',
    ].join('');
    const d = data([app('/web', withEnv({ PORT: '41' }))], services(service('/web', 'path /w')));
    expect(renderOnce(tpl, d, settings()).text).to.equal('PATH /W|.web|_web|42|web|true');
  });
});

describe('renderFromFiles', () => {
  const base = { templateText: '{% for app in Apps %}{{ app.Id }} {% endfor %}', settings: settings(), now: NOW };

  const inputs: Array<[string, string, string]> = [
    ['a /v2/apps response', JSON.stringify({ apps: [app('/a'), app('/b')] }), '/a /b '],
    ['a bare array', JSON.stringify([app('/b'), app('/a')]), '/a /b '],
    ['a /v2/apps/{id} response', JSON.stringify({ app: app('/a') }), '/a '],
    ['a /v2/groups response', JSON.stringify({ id: '/', apps: [], groups: [{ id: '/g', apps: [app('/g/a')], groups: [] }] }), '/g/a '],
  ];
  for (const [name, appsJson, expected] of inputs) {
    it(`reads ${name}`, () => {
      expect(renderFromFiles({ ...base, appsJson }).text).to.equal(expected);
    });
  }

  it('reads services in the shape GET /api/services returns, lower-case keys too', () => {
    const out = renderFromFiles({
      ...base,
      templateText: '{% for app in Apps %}{{ Services | get_service: app.Id | get: "Acl" }};{% endfor %}',
      appsJson: JSON.stringify([app('/a'), app('/b')]),
      servicesJson: JSON.stringify({ '/a': { Id: '/a', Acl: 'path /a', Config: {} }, '/b': { id: '/b', acl: 'path /b' } }),
    });
    expect(out.text).to.equal('path /a;path /b;');
  });

  const bad: Array<[string, Partial<Parameters<typeof renderFromFiles>[0]>, RegExp]> = [
    ['apps that are not JSON', { appsJson: '<html>502</html>' }, /apps JSON is not valid JSON/],
    ['apps JSON of the wrong shape', { appsJson: '{"message":"App does not exist"}' }, /must be a Marathon \/v2\/apps response/],
    ['services that are not JSON', { appsJson: '[]', servicesJson: '{' }, /services JSON is not valid JSON/],
    ['services of the wrong shape', { appsJson: '[]', servicesJson: '"x"' }, /services JSON must be an object/],
    ['a clock that is not a number', { appsJson: '[]', now: Number.NaN }, /now must be a number/],
  ];
  for (const [name, opts, message] of bad) {
    it(`throws a one-line error for ${name}`, () => {
      expect(() => renderFromFiles({ ...base, appsJson: '[]', ...opts })).to.throw(Error, message).with.property('message').that.does.not.contain('\n');
    });
  }

  it('gives ported Go templates Go\'s truth through the truthy filter: an env var set to "" is false', () => {
    const tpl = '{% app app in Apps %}{{ app.Id }}:{% if app.Env.PORT | truthy %}tcp{% else %}http{% endif %}/{% if app.Env.PORT %}liquid-true{% endif %}\n{% endapp %}';
    const text = createRenderer(tpl).render(data([app('/empty', withEnv({ PORT: '' })), app('/none'), app('/set', withEnv({ PORT: '9000' }))]), settings()).text;
    expect(text).to.equal('/empty:http/liquid-true\n/none:http/\n/set:tcp/liquid-true\n');
  });

  it('names the template file in template errors', () => {
    expect(() => renderFromFiles({ ...base, appsJson: '[]', templateText: '{{ nope }}', templateFile: 'my.liquid' })).to.throw(TemplateError, /^my\.liquid:1:/);
  });
});
