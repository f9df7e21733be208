import { expect } from 'chai';
import { loadConfig } from '../../common/config-load.js';
import type { ServiceRecord } from '../../common/core/model.js';
import { addressPorts, bindLines, heldPorts, parsePortRange, portRefusals, settingPorts, type PortRange } from '../../common/core/port-policy.js';
import { reloadCulprits } from '../../common/core/reload-alerts.js';
import { renderOnce } from '../../common/core/render.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import { changedAgainstText, changedSinceLastGood } from '../../worker/quarantine.js';
import { app, defaultTemplate, onHost, service, services, settings, task, withEnv, withPortDefinitions, withTasks } from '../builders.js';

const NOW = Date.parse('2024-06-01T12:00:00Z');
const RANGE: PortRange = { min: 10000, max: 65535 };

/** An app with one task; `tcp` sets BAMBOO_TCP_PORT, `extra` adds service ports after the first. */
function tenant(id: string, opts: { tcp?: string; extra?: number[] } = {}) {
  const slug = id.replace(/\//g, '_');
  const ports = [31000, ...(opts.extra ?? []).map((_, i) => 31001 + i)];
  return app(
    id,
    withPortDefinitions(10000, ...(opts.extra ?? [])),
    withEnv(opts.tcp === undefined ? {} : { BAMBOO_TCP_PORT: opts.tcp }),
    withTasks(task(`${slug}.1`, onHost('10.0.0.1', ...ports))),
  );
}

function render(apps: unknown[], svc: Record<string, ServiceRecord> = {}, overrides = {}) {
  const data = buildTemplateData({ apps, services: svc, now: NOW }).data;
  return { data, ...renderOnce(defaultTemplate(), data, settings({ HttpBind: '127.0.0.1:8080', StatsBind: '127.0.0.1:8081', ...overrides })) };
}

/** The refusals of the default template's rendering, as `app: reason` lines. */
function refusals(apps: unknown[], opts: { held?: ReturnType<typeof heldPorts>; range?: PortRange; reserved?: number[] } = {}): string[] {
  const r = render(apps);
  return portRefusals({
    text: r.text,
    origins: r.origins,
    range: opts.range ?? RANGE,
    reserved: opts.reserved ?? settingPorts(['127.0.0.1:8080', '127.0.0.1:8081']),
    held: opts.held,
  }).map((x) => `${x.appId}: ${x.reason}`);
}

describe('port policy (pure)', () => {
  describe('reads bind addresses', () => {
    const cases: Array<[string, Array<[number, number]>, string | null]> = [
      ['127.0.0.1:8080', [[8080, 8080]], null],
      ['*:80', [[80, 80]], null],
      [':443', [[443, 443]], null],
      ['[::]:80', [[80, 80]], null],
      ['ipv4@127.0.0.1:9000', [[9000, 9000]], null],
      ['127.0.0.1:10000-10010', [[10000, 10010]], null],
      ['127.0.0.1:80,127.0.0.1:81', [[80, 80], [81, 81]], null],
      ['"127.0.0.1:8080"', [[8080, 8080]], null],
      ['unix@/run/x.sock', [], null],
      ['/run/haproxy.sock', [], null],
      ['fd@3', [], null],
      ['127.0.0.1:${PORT}', [], '127.0.0.1:${PORT}'],
      ['127.0.0.1', [], '127.0.0.1'],
      ['127.0.0.1:70000', [], '127.0.0.1:70000'],
    ];
    for (const [spec, ports, unreadable] of cases) {
      it(`${spec} -> ${JSON.stringify(ports)}${unreadable ? ' (unreadable)' : ''}`, () => {
        const r = addressPorts(spec);
        expect(r.ports.map((s) => [s.lo, s.hi])).to.deep.equal(ports);
        expect(r.unreadable).to.equal(unreadable);
      });
    }
  });

  it('refuses a bad HAProxy.TcpPortRange at start-up with one line naming the key, and takes a good one from the env', () => {
    expect(() => loadConfig({ env: { HAPROXY_TCP_PORT_RANGE: '80-70000' } })).to.throw(/^config: HAProxy\.TcpPortRange must be a port range like 10000-65535 .*got "80-70000"$/);
    expect(loadConfig({ env: {} }).HAProxy.TcpPortRange).to.equal('10000-65535');
    expect(loadConfig({ env: { HAPROXY_TCP_PORT_RANGE: '1024-65535' } }).HAProxy.TcpPortRange).to.equal('1024-65535');
  });

  it('parses HAProxy.TcpPortRange', () => {
    expect(parsePortRange('10000-65535')).to.deep.equal({ min: 10000, max: 65535 });
    expect(parsePortRange(' 1024 - 2048 ')).to.deep.equal({ min: 1024, max: 2048 });
    expect(parsePortRange('31000')).to.deep.equal({ min: 31000, max: 31000 });
    for (const bad of ['', '0-100', '100-70000', '200-100', 'a-b', '10000-', '-1']) expect(parsePortRange(bad), bad).to.equal(null);
  });

  it('finds every bind line with its proxy, including a TCP stats socket but not a UNIX one', () => {
    const text = [
      'global',
      '    stats socket /run/admin.sock mode 660',
      '    stats socket ipv4@127.0.0.1:9999 level admin',
      'frontend http-in',
      '    bind *:80',
      '    # bind *:81',
      'listen ::db-cluster-tcp from tcp-defaults',
      '    bind 127.0.0.1:15432 ssl crt /x.pem',
      '    server slot-1 10.0.0.1:5432',
    ].join('\n');
    expect(bindLines(text).map((b) => [b.line, b.sectionKind, b.proxy, b.ports.map((s) => s.lo)])).to.deep.equal([
      [3, 'global', '', [9999]],
      [5, 'frontend', 'http-in', [80]],
      [8, 'listen', '::db-cluster-tcp', [15432]],
    ]);
  });

  // One line per case: the apps (default template), and the refusals expected.
  const table: Array<{ why: string; apps: unknown[]; want: string[]; range?: PortRange }> = [
    { why: 'ordinary TCP ports and extra service ports pass', apps: [tenant('/db', { tcp: '15432' }), tenant('/mq', { extra: [20001] })], want: [] },
    {
      why: 'BAMBOO_TCP_PORT equal to the HTTP bind port (F2)',
      apps: [tenant('/team-b/sneaky', { tcp: '8080' }), tenant('/web')],
      want: ['/team-b/sneaky: port 8080 belongs to the edge (frontend http-in, line'],
    },
    {
      why: 'BAMBOO_TCP_PORT equal to the stats port',
      apps: [tenant('/sneaky', { tcp: '8081' })],
      want: ['/sneaky: port 8081 belongs to the edge (listen stats, line'],
    },
    {
      why: 'an extra service port equal to the HTTP port',
      apps: [tenant('/sneaky', { extra: [8080] })],
      want: ['/sneaky: port 8080 belongs to the edge (frontend http-in'],
    },
    {
      why: 'a port below the range (a well-known port)',
      apps: [tenant('/ssh', { tcp: '22' })],
      want: ['/ssh: port 22 is outside HAProxy.TcpPortRange 10000-65535'],
    },
    {
      why: 'a port above a narrower range',
      apps: [tenant('/db', { tcp: '40000' })],
      range: { min: 10000, max: 20000 },
      want: ['/db: port 40000 is outside HAProxy.TcpPortRange 10000-20000'],
    },
    {
      why: 'two apps with one BAMBOO_TCP_PORT and nobody holding it: the first by id keeps it',
      apps: [tenant('/z-late', { tcp: '31777' }), tenant('/a-first', { tcp: '31777' })],
      want: ['/z-late: port 31777 is claimed by /a-first too (the first app by id keeps it)'],
    },
    {
      why: 'two apps with the same second service port',
      apps: [tenant('/one', { extra: [31888] }), tenant('/two', { extra: [31888] })],
      want: ['/two: port 31888 is claimed by /one too (the first app by id keeps it)'],
    },
    {
      why: 'one app binding a port twice (its TCP port is its own service port)',
      apps: [tenant('/self', { tcp: '31999', extra: [31999] })],
      want: ['/self: port 31999 is bound twice by this app'],
    },
    {
      why: 'an app refused for a clash gives up all its ports, so a third app is not refused because of it',
      apps: [tenant('/a', { tcp: '8080', extra: [32000] }), tenant('/c', { tcp: '32000' })],
      want: ['/a: port 8080 belongs to the edge (frontend http-in'],
    },
  ];
  for (const c of table) {
    it(`refuses: ${c.why}`, () => {
      const got = refusals(c.apps, { range: c.range });
      expect(got.length, got.join('\n')).to.equal(c.want.length);
      c.want.forEach((w, i) => expect(got[i].startsWith(w), `${got[i]} should start with ${w}`).to.equal(true));
    });
  }

  it('refuses the ports of HAProxy.HttpBind and StatsBind even when the template does not bind them', () => {
    const got = refusals([tenant('/x', { tcp: '18080' })], { reserved: settingPorts(['*:18080', '']) });
    expect(got).to.deep.equal(['/x: port 18080 belongs to the edge (HAProxy.HttpBind, HttpsBind or StatsBind)']);
  });

  it('leaves a port with the app that held it in the running config, whoever comes first by id (origins known)', () => {
    const before = render([tenant('/team-a/db', { tcp: '31777' })]);
    const held = heldPorts(before.text, before.origins);
    expect(held.get(31777)).to.deep.equal({ proxy: '::team-a::db-cluster-tcp', appId: '/team-a/db' });
    expect(refusals([tenant('/team-a/db', { tcp: '31777' }), tenant('/aaa/attacker', { tcp: '31777' })], { held })).to.deep.equal([
      '/aaa/attacker: port 31777 is held by /team-a/db (it had the port in the running config)',
    ]);
  });

  it('leaves a port with its holder when the running config came from disk (matched by proxy name)', () => {
    const before = render([tenant('/team-a/db', { extra: [31888] })]);
    const held = heldPorts(before.text, []);
    expect(refusals([tenant('/team-a/db', { extra: [31888] }), tenant('/aaa/attacker', { extra: [31888] })], { held })).to.deep.equal([
      '/aaa/attacker: port 31888 is held by /team-a/db (it had the port in the running config)',
    ]);
  });

  it('never lets an incumbent keep an edge port', () => {
    const before = render([tenant('/old', { tcp: '31000' })]);
    const held = heldPorts(before.text, before.origins);
    expect(refusals([tenant('/old', { tcp: '31000' })], { held, reserved: [31000] })[0]).to.match(/^\/old: port 31000 belongs to the edge/);
  });

  it('refuses an app bind line whose port it cannot read, and ignores what the edge binds on UNIX sockets', () => {
    const text = 'frontend edge\n    bind unix@/run/edge.sock\nlisten x\n    bind 127.0.0.1:${EVIL}\n';
    expect(portRefusals({ text, origins: [{ appId: '/x', startLine: 3, endLine: 4 }], range: RANGE }).map((r) => r.reason)).to.deep.equal([
      'bind address "127.0.0.1:${EVIL}" (line 4) has no port the port policy can read',
    ]);
  });
});

describe('reload failure attribution (pure)', () => {
  const file = '/etc/haproxy/haproxy.cfg';

  it('blames the app whose listener the master could not bind, by file:line and by proxy name', () => {
    const r = render([tenant('/web'), tenant('/team-b/db', { tcp: '31777' })]);
    const line = r.text.split('\n').findIndex((l) => l.includes('bind 127.0.0.1:31777')) + 1;
    const byLine = `[ALERT]    (9892) : Binding [${file}:${line}] for proxy ::team-b::db-cluster-tcp: cannot bind socket (Address already in use) for [127.0.0.1:31777]`;
    expect(reloadCulprits(byLine, file, r.text, r.origins).culprits.map((c) => c.appId)).to.deep.equal(['/team-b/db']);
    const byProxy = '[ALERT]    (1) : Starting proxy ::team-b::db-cluster-tcp: cannot bind socket (Address already in use) [127.0.0.1:31777]';
    const got = reloadCulprits(byProxy, file, r.text, r.origins);
    expect(got.culprits).to.deep.equal([{ appId: '/team-b/db', alert: 'Starting proxy ::team-b::db-cluster-tcp: cannot bind socket (Address already in use) [127.0.0.1:31777]' }]);
    expect(got.edge).to.equal(false);
  });

  it('blames nobody, and says so, when the edge cannot bind', () => {
    const r = render([tenant('/web')]);
    const line = r.text.split('\n').findIndex((l) => l.includes('bind 127.0.0.1:8080')) + 1;
    const out = `[ALERT]    (1) : Binding [${file}:${line}] for proxy http-in: cannot bind socket (Address already in use) for [127.0.0.1:8080]`;
    expect(reloadCulprits(out, file, r.text, r.origins)).to.deep.equal({ culprits: [], edge: true });
    expect(reloadCulprits('', file, r.text, r.origins)).to.deep.equal({ culprits: [], edge: false });
  });
});

describe('changed since the last good config (pure)', () => {
  it('names new and edited rules, and apps whose data changed other than their tasks', () => {
    const good = render([tenant('/a'), tenant('/b'), tenant('/c')], services(service('/a', 'path_beg /a'), service('/b', 'path_beg /b'))).data;
    const scaled = app('/c', withPortDefinitions(10000), withTasks(task('_c.1', onHost('10.0.0.1', 31000)), task('_c.2', onHost('10.0.0.2', 31000))));
    const now = render(
      [tenant('/a'), tenant('/b', { tcp: '31500' }), scaled, tenant('/d')],
      services(service('/a', 'path_beg /a-edited'), service('/b', 'path_beg /b')),
    ).data;
    expect(changedSinceLastGood(now, good)).to.deep.equal({ rules: ['/a'], apps: ['/b', '/d'] });
    expect(changedSinceLastGood(now, null)).to.equal(null);
  });

  it('tells the same from the text of a config found on disk: task churn aside, and a rule only when its text is new', () => {
    const good = render([tenant('/a'), tenant('/b'), tenant('/c')], services(service('/a', 'path_beg /a'), service('/b', 'path_beg /b')));
    const scaled = app('/c', withPortDefinitions(10000), withTasks(task('_c.1', onHost('10.0.0.9', 31000))));
    const now = render(
      [tenant('/a'), tenant('/b', { tcp: '31500' }), scaled, tenant('/d')],
      services(service('/a', 'path_beg /a-edited'), service('/b', 'path_beg /b')),
    );
    expect(changedAgainstText(now, now.data, good.text)).to.deep.equal({ rules: ['/a'], apps: ['/a', '/b', '/d'] });
  });
});
