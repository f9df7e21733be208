/**
 * marathon-lb routing labels (common/core/labels.ts) and the routing of each app (common/core/routing.ts):
 * strict parsing, one precedence (rule > labels > default), one owner per host, allowed domains and
 * load-balancer groups. Pure: no services.
 */
import { expect } from 'chai';
import {
  firstConfigProblem,
  hostAllowed,
  parseAllowedDomains,
  parseHost,
  parsePath,
  parseWorkerGroups,
  readRoutingSettings,
  servesGroups,
} from '../../common/core/labels.js';
import type { AppData, ServiceRecord } from '../../common/core/model.js';
import { renderOnce } from '../../common/core/render.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import { TemplateDataMemo } from '../../common/core/template-memo.js';
import { NOW, app, defaultTemplate, onHost, service, services, settings, task, withLabels, withPortDefinitions, withTasks, withVersion } from '../builders.js';

function build(apps: unknown[], svc: Record<string, ServiceRecord> = {}, routing?: Parameters<typeof buildTemplateData>[0]['routing']) {
  return buildTemplateData({ apps, services: svc, now: NOW, routing });
}

function routingOf(apps: unknown[], id: string, svc: Record<string, ServiceRecord> = {}, routing?: Parameters<typeof buildTemplateData>[0]['routing']) {
  const a = build(apps, svc, routing).data.Apps.find((x) => x.Id === id) as AppData;
  return a.Routing;
}

const labelled = (id: string, labels: Record<string, string>, version = '2024-01-01T00:00:00.000Z') =>
  app(id, withLabels(labels), withVersion(version), withTasks(task(`${id.slice(1)}.1`, onHost('10.0.0.1', 31000))));

describe('labels: strict parsing', () => {
  it('accepts RFC 1123 host names, lower-cased, and refuses anything else', () => {
    expect(parseHost('Shop.Example.COM')).to.equal('shop.example.com');
    expect(parseHost('localhost')).to.equal('localhost');
    for (const bad of ['', '*.example.com', '-a.example.com', 'a-.example.com', 'a..b', 'a b', 'a\nb', "a'b", 'a#b', 'a/b', 'x'.repeat(64) + '.com', `${'a.'.repeat(127)}a`]) {
      expect(parseHost(bad), JSON.stringify(bad)).to.equal(null);
    }
  });

  it('accepts path prefixes of safe characters only', () => {
    expect(parsePath('/api/v1')).to.equal('/api/v1');
    for (const bad of ['api', '/a b', '/a#', "/a'", '/a"', '/a\\b', '/a{', '/a}', '/$HOME', '/a\n', '/' + 'a'.repeat(300)]) {
      expect(parsePath(bad), JSON.stringify(bad)).to.equal(null);
    }
  });

  it('refuses every hostile value with a reason that does not echo it', () => {
    const hostile = {
      HAPROXY_0_VHOST: 'a.example.com\n    use_backend x',
      HAPROXY_0_PATH: '/x }#',
      HAPROXY_0_BALANCE: 'roundrobin\nuser x',
      HAPROXY_0_SSL_CERT: '../../etc/ssl/private/key.pem',
      HAPROXY_0_BACKEND_WEIGHT: '99999999',
      HAPROXY_0_PORT: '70000',
      HAPROXY_0_MODE: 'http "quoted"',
      HAPROXY_0_STICKY: 'maybe',
      HAPROXY_0_BACKEND_HEALTHCHECK_PORT_INDEX: '-1',
      HAPROXY_GROUP: 'external internal',
      HAPROXY_1_VHOST: 'x'.repeat(100_000),
    };
    const s = readRoutingSettings(hostile, 2);
    expect(s.ports.size).to.equal(0);
    expect(s.groups).to.equal(null);
    expect(s.problems.map((p) => p.key)).to.have.members(Object.keys(hostile));
    for (const p of s.problems) {
      expect(p.reason).not.to.contain('\n');
      expect(p.reason.length).to.be.lessThan(300);
      expect(p.reason).not.to.contain('etc/ssl');
    }
  });

  it('takes SSL_CERT as a bare certificate name, never a path', () => {
    expect(firstConfigProblem({ HAPROXY_0_SSL_CERT: 'shop.example.com.pem' })).to.equal(null);
    for (const bad of ['/etc/ssl/x.pem', '../x.pem', 'a/b', '..', 'a b', '']) {
      expect(firstConfigProblem({ HAPROXY_0_SSL_CERT: bad }), bad).to.include({ key: 'HAPROXY_0_SSL_CERT' });
    }
  });

  it('reads marathon-lb booleans and the balance allow-list', () => {
    const s = readRoutingSettings({ HAPROXY_0_STICKY: 'Yes', HAPROXY_0_ENABLED: 'f', HAPROXY_0_BALANCE: 'leastconn' }, 1);
    expect(s.problems).to.deep.equal([]);
    expect(firstConfigProblem({ HAPROXY_0_BALANCE: 'hdr(host)' })).to.include({ key: 'HAPROXY_0_BALANCE' });
  });

  it('reports a label for a service port the app does not have', () => {
    const s = readRoutingSettings({ HAPROXY_3_PORT: '12000' }, 2);
    expect(s.problems).to.deep.equal([{ key: 'HAPROXY_3_PORT', reason: 'names service port 3, which the app does not have' }]);
  });

  it('ignores labels that are not routing keys', () => {
    expect(readRoutingSettings({ HAPROXY_DEPLOYMENT_GROUP: 'x', OWNER: 'team-a', HAPROXY_0_FOO: 'y' }, 1).problems).to.deep.equal([]);
  });
});

describe('routing: one precedence (rule > labels > default)', () => {
  const apps = () => [labelled('/web', { HAPROXY_0_VHOST: 'web.example.com' }), labelled('/plain', {})];

  it('routes an app by its labels, and an unlabelled app by the default rule', () => {
    expect(routingOf(apps(), '/web')).to.include({ source: 'labels' });
    expect(routingOf(apps(), '/web').ports[0]).to.include({ mode: 'http', enabled: true });
    expect(routingOf(apps(), '/web').ports[0].vhosts).to.deep.equal(['web.example.com']);
    expect(routingOf(apps(), '/plain')).to.include({ source: 'default' });
  });

  it('lets an api rule win over labels, and falls back to the labels once it is gone', () => {
    const ruled = routingOf(apps(), '/web', services(service('/web', 'hdr(host) -i other.example.com')));
    expect(ruled.source).to.equal('rule');
    expect(ruled.ports[0].vhosts).to.deep.equal([]);
    expect(routingOf(apps(), '/web', {}).source).to.equal('labels');
  });

  it('takes routing keys from a rule\'s Config over the same labels', () => {
    const r = routingOf(apps(), '/web', services(service('/web', '', { HAPROXY_0_VHOST: 'api.example.com', HAPROXY_0_BALANCE: 'source' })));
    expect(r.source).to.equal('rule');
    expect(r.ports[0].vhosts).to.deep.equal(['api.example.com']);
    expect(r.ports[0].balance).to.equal('source');
  });

  it('routes by a rule\'s ACL even when the labels disable port 0 or make it TCP', () => {
    const apps = [labelled('/off', { HAPROXY_0_ENABLED: 'false' }), labelled('/tcp', { HAPROXY_0_MODE: 'tcp' })];
    const svc = services(service('/off', 'hdr(host) -i off.example.com'), service('/tcp', 'hdr(host) -i tcp.example.com'));
    const text = renderOnce(defaultTemplate(), build(apps, svc).data, settings()).text;
    expect(text).to.contain('use_backend ::off-cluster if { hdr(host) -i off.example.com }');
    expect(text).to.contain('use_backend ::tcp-cluster if { hdr(host) -i tcp.example.com }');
    const unruled = renderOnce(defaultTemplate(), build(apps).data, settings()).text;
    expect(unruled).not.to.contain('use_backend ::off-cluster').and.not.to.contain('use_backend ::tcp-cluster');
  });

  it('keeps the labels\' hosts under a rule that only tunes settings (no ACL, no host or path key)', () => {
    const r = routingOf(apps(), '/web', services(service('/web', '', { HAPROXY_0_BALANCE: 'source', HAPROXY_GROUP: 'internal' })));
    expect(r.source).to.equal('labels');
    expect(r.ports[0].vhosts).to.deep.equal(['web.example.com']);
    expect(r.ports[0].balance).to.equal('source');
    expect(r.groups).to.deep.equal(['internal']);
  });

  it('keeps a record with an empty ACL and no routing keys out of the precedence (default rule)', () => {
    expect(routingOf(apps(), '/plain', services(service('/plain', ''))).source).to.equal('default');
  });

  it('keeps an app without a host from taking paths outside its own id', () => {
    const r = routingOf([labelled('/thief', { HAPROXY_0_PATH: '/victim' }), labelled('/victim', {})], '/thief');
    expect(r.source).to.equal('default');
    expect(r.ports[0].paths).to.deep.equal([]);
    expect(r.problems[0].key).to.equal('HAPROXY_0_PATH');
    expect(routingOf([labelled('/own', { HAPROXY_0_PATH: '/own/ui' })], '/own').ports[0].paths).to.deep.equal(['/own/ui']);
  });
});

describe('routing: tenants cannot claim each other\'s names', () => {
  const early = '2024-01-01T00:00:00.000Z';
  const late = '2025-06-01T00:00:00.000Z';

  it('gives a host claimed by two apps to the earlier one and reports the conflict on the other', () => {
    const apps = [labelled('/b-late', { HAPROXY_0_VHOST: 'shop.example.com' }, late), labelled('/z-early', { HAPROXY_0_VHOST: 'shop.example.com' }, early)];
    const { data, warnings } = build(apps);
    const [late_, early_] = data.Apps;
    expect(early_.Routing.ports[0].vhosts).to.deep.equal(['shop.example.com']);
    expect(early_.Routing.conflicts).to.deep.equal([]);
    expect(late_.Routing.ports[0].vhosts).to.deep.equal([]);
    expect(late_.Routing.source).to.equal('default');
    expect(late_.Routing.conflicts).to.have.length(1);
    expect(late_.Routing.conflicts[0]).to.include({ host: 'shop.example.com', path: '', winner: '/z-early' });
    expect(warnings.some((w) => w.code === 'host_conflict' && w.appId === '/b-late')).to.equal(true);
  });

  it('breaks a tie on time by app id, whatever the order Marathon lists the apps in', () => {
    const a = labelled('/a', { HAPROXY_0_VHOST: 'x.example.com' }, early);
    const b = labelled('/b', { HAPROXY_0_VHOST: 'x.example.com' }, early);
    for (const order of [[a, b], [b, a]]) {
      const d = build(order).data;
      expect(d.Apps.find((x) => x.Id === '/a')!.Routing.ports[0].vhosts).to.deep.equal(['x.example.com']);
      expect(d.Apps.find((x) => x.Id === '/b')!.Routing.conflicts[0].winner).to.equal('/a');
    }
  });

  it('does not let a later app take part of an earlier app\'s host with a path', () => {
    const apps = [labelled('/owner', { HAPROXY_0_VHOST: 'shop.example.com' }, early), labelled('/intruder', { HAPROXY_0_VHOST: 'shop.example.com', HAPROXY_0_PATH: '/admin' }, late)];
    const r = routingOf(apps, '/intruder');
    expect(r.ports[0].vhosts).to.deep.equal([]);
    expect(r.ports[0].paths).to.deep.equal([]);
    expect(r.conflicts[0]).to.include({ host: 'shop.example.com', path: '/admin', winner: '/owner' });
  });

  it('leaves a host with the app that holds it in the config in force, whatever the times', () => {
    const apps = [labelled('/holder', { HAPROXY_0_VHOST: 'shop.example.com' }, late), labelled('/earlier', { HAPROXY_0_VHOST: 'shop.example.com' }, early)];
    const incumbents = new Map([['shop.example.com', '/holder']]);
    expect(routingOf(apps, '/holder', {}, { incumbents }).ports[0].vhosts).to.deep.equal(['shop.example.com']);
    expect(routingOf(apps, '/earlier', {}, { incumbents }).conflicts[0].reason).to.contain('/holder holds it in the config in force');
    expect(routingOf(apps, '/earlier').ports[0].vhosts).to.deep.equal(['shop.example.com']);
  });

  it('gives a host to an api rule before any label, whatever the times', () => {
    const apps = [labelled('/labelled', { HAPROXY_0_VHOST: 'shop.example.com' }, early), labelled('/ruled', {}, late)];
    const svc = services(service('/ruled', '', { HAPROXY_0_VHOST: 'shop.example.com' }));
    expect(routingOf(apps, '/ruled', svc).ports[0].vhosts).to.deep.equal(['shop.example.com']);
    expect(routingOf(apps, '/labelled', svc).conflicts[0]).to.include({ winner: '/ruled' });
  });

  it('confines labels to the allowed domains of their group', () => {
    const allowedDomains = parseAllowedDomains('{"external":["shop.example.com",".team-a.example.com"]}');
    const apps = [
      labelled('/ok', { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'shop.example.com,x.team-a.example.com' }),
      labelled('/out', { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'bank.example.com' }),
      labelled('/nogroup', { HAPROXY_0_VHOST: 'y.team-a.example.com' }),
    ];
    expect(routingOf(apps, '/ok', {}, { allowedDomains }).ports[0].vhosts).to.deep.equal(['shop.example.com', 'x.team-a.example.com']);
    const out = routingOf(apps, '/out', {}, { allowedDomains });
    expect(out.ports[0].vhosts).to.deep.equal([]);
    expect(out.problems[0].reason).to.contain('outside the domains allowed for group external');
    expect(routingOf(apps, '/nogroup', {}, { allowedDomains }).ports[0].vhosts).to.deep.equal([]);
    expect(hostAllowed(allowedDomains, ['external'], 'team-a.example.com')).to.equal(false);
  });

  it('refuses allowed domains that are not a map of group -> domain list', () => {
    expect(() => parseAllowedDomains('["a"]')).to.throw(/JSON object/);
    expect(() => parseAllowedDomains('{"g":["*.x.com"]}')).to.throw(/not a domain/);
    expect(parseAllowedDomains('')).to.deep.equal({});
  });
});

describe('routing: load-balancer groups', () => {
  const apps = () => [
    labelled('/ext', { HAPROXY_GROUP: 'external' }),
    labelled('/int', { HAPROXY_GROUP: 'internal' }),
    labelled('/both', { HAPROXY_GROUP: 'internal,external' }),
    labelled('/none', {}),
  ];
  const ids = (groups: string[]) => build(apps(), {}, { groups }).data.Apps.map((a) => a.Id);

  it('serves every app without groups, and only the apps of its groups with them', () => {
    expect(ids([])).to.deep.equal(['/both', '/ext', '/int', '/none']);
    expect(ids(['internal'])).to.deep.equal(['/both', '/int']);
    expect(ids(['*'])).to.deep.equal(['/both', '/ext', '/int', '/none']);
  });

  it('parses Worker.Groups and refuses names that are not names', () => {
    expect(parseWorkerGroups(' internal, external ,')).to.deep.equal(['external', 'internal']);
    expect(() => parseWorkerGroups('a b')).to.throw(/not a group name/);
    expect(servesGroups(['internal'], [])).to.equal(false);
  });

  it('decides host ownership before the group filter, so every worker agrees', () => {
    const a = [labelled('/ext', { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'x.example.com' }, '2024-01-01T00:00:00.000Z'),
      labelled('/int', { HAPROXY_GROUP: 'internal', HAPROXY_0_VHOST: 'x.example.com' }, '2025-01-01T00:00:00.000Z')];
    const onInternal = build(a, {}, { groups: ['internal'] }).data.Apps;
    expect(onInternal.map((x) => x.Id)).to.deep.equal(['/int']);
    expect(onInternal[0].Routing.conflicts[0].winner).to.equal('/ext');
  });
});

describe('routing: template data stays memo-friendly', () => {
  it('gives the same frozen app object again when nothing changed, also for an app with a rule', () => {
    const memo = new TemplateDataMemo();
    const apps = [labelled('/web', { HAPROXY_0_VHOST: 'web.example.com' }), labelled('/ruled', {})];
    const svc = services(service('/ruled', 'path_beg /r'));
    const one = buildTemplateData({ apps, services: svc, now: NOW, memo }).data;
    const two = buildTemplateData({ apps: JSON.parse(JSON.stringify(apps)), services: svc, now: NOW, memo }).data;
    expect(two.Apps[0]).to.equal(one.Apps[0]);
    expect(two.Apps[1]).to.equal(one.Apps[1]);
    expect(Object.isFrozen(two.Apps[0].Routing)).to.equal(true);
  });
});

describe('routing: hostile labels never reach haproxy.cfg', () => {
  it('renders none of the attacker variants, and the config keeps its other apps', () => {
    const values = ['evil.example.com\nfrontend x', 'a b', '"quoted"', "it's", 'x # comment', '{ }', 'x'.repeat(5000), '../../etc/ssl/key.pem', '/etc/passwd'];
    const apps = values.map((v, i) => app(`/evil${i}`, withPortDefinitions(10000 + i, 11000 + i), withLabels({
      HAPROXY_0_VHOST: v, HAPROXY_0_PATH: v, HAPROXY_0_BALANCE: v, HAPROXY_0_SSL_CERT: v, HAPROXY_0_MODE: v, HAPROXY_1_PORT: v, HAPROXY_0_BACKEND_WEIGHT: v,
    }), withTasks(task(`evil${i}.1`, onHost('10.0.0.2', 31000, 31001)))));
    const text = renderOnce(defaultTemplate(), build(apps).data, settings()).text;
    for (const v of values) {
      for (const line of v.split('\n')) if (line.length > 3) expect(text, JSON.stringify(line)).not.to.contain(line);
    }
    expect(text).not.to.contain('hdr(host),field');
    expect(text).to.contain('use_backend ::evil0-cluster if { path -i /evil0 }');
  });
});
