import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { validateAcl, validateAppId } from '../../common/core/acl.js';
import type { AppData, MarathonApp, ServiceRecord, TaskData } from '../../common/core/model.js';
import { buildTemplateData, slotTable } from '../../common/core/template-data.js';
import { TemplateDataMemo } from '../../common/core/template-memo.js';
import {
  FIXTURES,
  NOW,
  app,
  fixtureApps,
  healthy,
  inState,
  notStarted,
  onHost,
  service,
  services,
  startedAgo,
  task,
  unhealthy,
  withDeployment,
  withDockerBridge,
  withEnv,
  withHealthCheck,
  withIpPerTask,
  withLabels,
  withNetwork,
  withPortDefinitions,
  withPorts,
  withReadinessCheck,
  withReadinessResult,
  withTaskIp,
  withTasks,
} from '../builders.js';

function build(apps: unknown[], svc: Record<string, ServiceRecord> = {}, now = NOW) {
  return buildTemplateData({ apps, services: svc, now });
}

function only(a: MarathonApp): AppData {
  const { data } = build([a]);
  expect(data.Apps).to.have.length(1);
  return data.Apps[0];
}

function firstTask(a: MarathonApp): TaskData {
  const t = only(a).Tasks;
  expect(t).to.have.length.greaterThan(0);
  return t[0];
}

describe('buildTemplateData', () => {
  describe('app fields, Bamboo meanings', () => {
    it('derives Id, EscapedId, MesosDnsId and SplitId from the app id', () => {
      const a = only(app('/nested/group/app'));
      expect(a.Id).to.equal('/nested/group/app');
      expect(a.EscapedId).to.equal('::nested::group::app');
      expect(a.MesosDnsId).to.equal('app-group-nested');
      expect(a.SplitId).to.deep.equal(['', 'nested', 'group', 'app']);
    });

    it('adds the leading slash to pre-0.7 ids without one', () => {
      expect(only(app('legacy')).Id).to.equal('/legacy');
    });

    const healthCases: Array<[string, MarathonApp, string, string]> = [
      ['HTTP', app('/a', withHealthCheck('HTTP', '/health')), '/health', 'HTTP'],
      ['HTTPS', app('/a', withHealthCheck('HTTPS', '/secure')), '/secure', 'HTTPS'],
      ['MESOS_HTTP', app('/a', withHealthCheck('MESOS_HTTP', '/m')), '/m', 'HTTP'],
      ['MESOS_HTTPS', app('/a', withHealthCheck('MESOS_HTTPS', '/ms')), '/ms', 'HTTPS'],
      ['TCP only', app('/a', withHealthCheck('TCP')), '', ''],
      ['COMMAND then HTTP', app('/a', withHealthCheck('COMMAND'), withHealthCheck('HTTP', '/second')), '/second', 'HTTP'],
      ['HTTP without a path (Marathon default "/")', app('/a', withHealthCheck('HTTP')), '/', 'HTTP'],
      ['no health check', app('/a'), '', ''],
    ];
    for (const [name, input, path, protocol] of healthCases) {
      it(`takes HealthCheckPath and HealthCheckProtocol from the first HTTP-like check: ${name}`, () => {
        const a = only(input);
        expect(a.HealthCheckPath).to.equal(path);
        expect(a.HealthCheckProtocol).to.equal(protocol);
      });
    }

    it('lists every health check with its protocol, path and portIndex', () => {
      const a = only(app('/a', withHealthCheck('TCP', undefined, { portIndex: 1 }), withHealthCheck('MESOS_HTTP', '/h', { portIndex: 0 })));
      expect(a.HealthChecks).to.deep.equal([
        { Protocol: 'TCP', Path: '', PortIndex: 1 },
        { Protocol: 'MESOS_HTTP', Path: '/h', PortIndex: 0 },
      ]);
    });

    it('takes ReadinessCheckPath from the first readiness check', () => {
      expect(only(app('/a', withReadinessCheck('/ready'))).ReadinessCheckPath).to.equal('/ready');
      expect(only(app('/a')).ReadinessCheckPath).to.equal('');
    });

    it('keeps string env values and leaves secret references out', () => {
      const a = only(app('/a', withEnv({ PLAIN: 'x', NUM: 3, FLAG: true, DB_PASSWORD: { secret: 'db' }, NOTHING: null, LIST: [1] })));
      expect(a.Env).to.deep.equal({ FLAG: 'true', NUM: '3', PLAIN: 'x' });
      expect(JSON.stringify(a)).not.to.contain('secret');
    });

    it('keeps labels as strings', () => {
      expect(only(app('/a', withLabels({ HAPROXY_GROUP: 'external', weird: { x: 1 } }))).Labels).to.deep.equal({ HAPROXY_GROUP: 'external' });
    });
  });

  describe('ports across Marathon versions', () => {
    const cases: Array<[string, MarathonApp, number[], Partial<TaskData>]> = [
      ['0.x "ports"', app('/a', withPorts(10001, 10002), withTasks(task('a.1', onHost('h1', 31001, 31002)))), [10001, 10002], { Host: 'h1', Port: 31001, Ports: [31001, 31002] }],
      ['1.x "portDefinitions"', app('/a', withPortDefinitions(10003), withTasks(task('a.1', onHost('h2', 31003)))), [10003], { Host: 'h2', Port: 31003 }],
      [
        'Docker bridge before 1.5 (container.docker.portMappings)',
        app('/a', withDockerBridge({ containerPort: 80, hostPort: 0, servicePort: 10004 }), withTasks(task('a.1', onHost('h3', 31004)))),
        [10004],
        { Host: 'h3', Port: 31004 },
      ],
      [
        '1.5+ container/bridge (container.portMappings)',
        app('/a', withNetwork('container/bridge', { containerPort: 80, hostPort: 0, servicePort: 10005 }), withTasks(task('a.1', onHost('h4', 31005), withTaskIp('172.17.0.2')))),
        [10005],
        { Host: 'h4', Port: 31005 },
      ],
      [
        'IP-per-task before 1.5 (ipAddress.discovery)',
        app('/a', withIpPerTask(8080, 9090), withTasks(task('a.1', onHost('agent', 31006), withTaskIp('10.9.0.7')))),
        [],
        { Host: '10.9.0.7', Port: 8080, Ports: [8080, 9090] },
      ],
      [
        '1.5+ container network (IP-per-task)',
        app('/a', withNetwork('container', { containerPort: 2540, servicePort: 10007 }, { containerPort: 9096, servicePort: 10008 }), withTasks(task('a.1', onHost('agent', 7786, 7787), withTaskIp('9.0.36.134')))),
        [10007, 10008],
        { Host: '9.0.36.134', Port: 2540, Ports: [2540, 9096] },
      ],
      [
        'IP-per-task task without an IP falls back to host ports',
        app('/a', withIpPerTask(8080), withTasks(task('a.1', onHost('agent', 31009)))),
        [],
        { Host: 'agent', Port: 31009 },
      ],
    ];
    for (const [name, input, servicePorts, expected] of cases) {
      it(`reads service ports and task addresses: ${name}`, () => {
        const a = only(input);
        expect(a.ServicePorts).to.deep.equal(servicePorts);
        expect(a.ServicePort).to.equal(servicePorts[0] ?? 0);
        const { Ports: ports, ...scalars } = expected;
        expect(a.Tasks[0]).to.include(scalars);
        if (ports) expect(a.Tasks[0].Ports).to.deep.equal(ports);
      });
    }

    it('skips a task whose host is not a host name or address', () => {
      const { data, warnings } = build([app('/a', withTasks(task('a.1', onHost('evil\n    server x 1.2.3.4')), task('a.2')))]);
      expect(data.Apps[0].Tasks.map((t) => t.Id)).to.deep.equal(['a.2']);
      expect(warnings.map((w) => w.code)).to.deep.equal(['task_invalid']);
    });

    it('skips a staging task without ports silently and warns about a running one', () => {
      const { data, warnings } = build([
        app('/a', withTasks(task('a.staging', onHost('h'), inState('TASK_STAGING'), (t) => { t.ports = []; }), task('a.running', (t) => { t.ports = []; }), task('a.ok'))),
      ]);
      expect(data.Apps[0].Tasks.map((t) => t.Id)).to.deep.equal(['a.ok']);
      expect(warnings.map((w) => w.code)).to.deep.equal(['task_no_address']);
      expect(warnings[0].message).to.contain('a.running');
    });
  });

  describe('Alive: health results and unknown health', () => {
    const cases: Array<[string, MarathonApp, boolean]> = [
      ['no health checks', app('/a', withTasks(task('a.1'))), true],
      ['every check has an alive result', app('/a', withHealthCheck('HTTP', '/h'), withTasks(task('a.1', healthy()))), true],
      ['a result says not alive', app('/a', withHealthCheck('HTTP', '/h'), withTasks(task('a.1', unhealthy()), task('a.2', healthy()))), false],
      ['no result yet, inside the grace period, another task alive', app('/a', withHealthCheck('HTTP', '/h', { gracePeriodSeconds: 300 }), withTasks(task('a.1', startedAgo(10_000)), task('a.2', healthy()))), false],
      ['no result, past the grace period (e.g. after a leader change)', app('/a', withHealthCheck('HTTP', '/h', { gracePeriodSeconds: 300 }), withTasks(task('a.1', startedAgo(301_000)))), true],
      ['MESOS_HTTP check reporting nothing, past grace', app('/a', withHealthCheck('MESOS_HTTP', '/h', { gracePeriodSeconds: 60 }), withTasks(task('a.1', startedAgo(61_000)))), true],
      ['one of two checks answered, the other unknown, inside grace, another task alive', app('/a', withHealthCheck('HTTP', '/h'), withHealthCheck('TCP'), withTasks(task('a.1', healthy(1), startedAgo(1000)), task('a.2', healthy(2)))), false],
      ['TASK_KILLING with alive results', app('/a', withHealthCheck('HTTP', '/h'), withTasks(task('a.1', healthy(), inState('TASK_KILLING')), task('a.2', healthy()))), false],
      ['TASK_LOST', app('/a', withTasks(task('a.1', inState('TASK_LOST')), task('a.2'))), false],
      ['no state (Marathon < 1.1) but started', app('/a', withTasks(task('a.1', inState(undefined)))), true],
      ['no state and not started (staging)', app('/a', withTasks(task('a.1', inState(undefined), notStarted()), task('a.2'))), false],
      ['neither state nor startedAt (minimal data, as in Bamboo\'s stub)', app('/a', withTasks(task('a.1', inState(undefined), (t) => { delete t.startedAt; }))), true],
    ];
    for (const [name, input, alive] of cases) {
      it(`the first task is ${alive ? 'alive' : 'not alive'} when ${name}`, () => {
        expect(firstTask(input).Alive).to.equal(alive);
      });
    }

    it('keeps unknown-health tasks in rotation when no task of the app is known alive, and says so', () => {
      const { data, warnings } = build([
        app('/fresh', withHealthCheck('HTTP', '/h', { gracePeriodSeconds: 300 }), withTasks(task('f.1', startedAgo(5_000)), task('f.2', startedAgo(6_000)))),
      ]);
      expect(data.Apps[0].Tasks.map((t) => t.Alive)).to.deep.equal([true, true]);
      expect(warnings.map((w) => [w.code, w.appId])).to.deep.equal([['health_unknown', '/fresh']]);
    });

    it('never keeps a task that a health result says is dead, even when it is the last one', () => {
      const { data } = build([app('/sick', withHealthCheck('HTTP', '/h'), withTasks(task('s.1', unhealthy()), task('s.2', startedAgo(1000))))]);
      expect(data.Apps[0].Tasks.map((t) => [t.Id, t.Alive])).to.deep.equal([['s.1', false], ['s.2', true]]);
    });

    it('uses graceMs for a check without gracePeriodSeconds', () => {
      const a = app('/a', withHealthCheck('HTTP', '/h', { gracePeriodSeconds: undefined }), withTasks(task('a.1', startedAgo(20_000)), task('a.2', healthy())));
      expect(buildTemplateData({ apps: [a], services: {}, now: NOW, graceMs: 10_000 }).data.Apps[0].Tasks[0].Alive).to.equal(true);
      expect(buildTemplateData({ apps: [a], services: {}, now: NOW, graceMs: 30_000 }).data.Apps[0].Tasks[0].Alive).to.equal(false);
    });

    it('reads the clock only from `now`', () => {
      const a = app('/a', withHealthCheck('HTTP', '/h', { gracePeriodSeconds: 300 }), withTasks(task('a.1', startedAgo(100_000)), task('a.2', healthy())));
      expect(buildTemplateData({ apps: [a], services: {}, now: NOW }).data.Apps[0].Tasks[0].Alive).to.equal(false);
      expect(buildTemplateData({ apps: [a], services: {}, now: NOW + 250_000 }).data.Apps[0].Tasks[0].Alive).to.equal(true);
    });
  });

  describe('Ready: running state, deployments and readiness checks', () => {
    const cases: Array<[string, MarathonApp, boolean]> = [
      ['running, no deployment', app('/a', withTasks(task('a.1'))), true],
      ['staging', app('/a', withTasks(task('a.1', inState('TASK_STAGING')))), false],
      ['killing', app('/a', withTasks(task('a.1', inState('TASK_KILLING')))), false],
      ['deployment without readiness checks', app('/a', withDeployment(), withTasks(task('a.1'))), true],
      ['deployment, readiness result false', app('/a', withDeployment(), withReadinessCheck(), withReadinessResult('a.1', false), withTasks(task('a.1'))), false],
      ['deployment, readiness result true', app('/a', withDeployment(), withReadinessCheck(), withReadinessResult('a.1', true), withTasks(task('a.1', startedAgo(1000)))), true],
      ['deployment, no result, started 5 s ago (new task)', app('/a', withDeployment(), withReadinessCheck('/r', 10), withTasks(task('a.1', startedAgo(5_000)))), false],
      ['deployment, no result, started 16 s ago with a 10 s timeout (old task)', app('/a', withDeployment(), withReadinessCheck('/r', 10), withTasks(task('a.1', startedAgo(16_000)))), true],
      ['deployment, no result, timeout 0 uses 10 s: 9 s ago', app('/a', withDeployment(), withReadinessCheck('/r', 0), withTasks(task('a.1', startedAgo(9_000)))), false],
      ['deployment, no result, no start time', app('/a', withDeployment(), withReadinessCheck(), withTasks(task('a.1', (t) => { t.startedAt = 'garbage'; }))), false],
    ];
    for (const [name, input, ready] of cases) {
      it(`the task is ${ready ? 'ready' : 'not ready'} when ${name}`, () => {
        expect(firstTask(input).Ready).to.equal(ready);
      });
    }
  });

  describe('ordering and determinism', () => {
    it('sorts apps by Id and tasks by Id', () => {
      const { data } = build([app('/b', withTasks(task('b.2'), task('b.1'))), app('/a'), app('/a-c'), app('/a/b')]);
      expect(data.Apps.map((a) => a.Id)).to.deep.equal(['/a', '/a-c', '/a/b', '/b']);
      expect(data.Apps[3].Tasks.map((t) => t.Id)).to.deep.equal(['b.1', 'b.2']);
    });

    it('gives byte-equal data for the same apps and records in any order', () => {
      const apps = [
        app('/x', withEnv({ Z: '1', A: '2' }), withTasks(task('x.2'), task('x.1'))),
        app('/y', withLabels({ b: '1', a: '2' })),
        { not: 'an app' },
        app('/z', withHealthCheck('HTTP', '/'), withTasks(task('z.1', healthy()))),
      ];
      const svc = services(service('/y', 'hdr(host) -i y.example.com'), service('/x', ''));
      const first = buildTemplateData({ apps, services: svc, now: NOW });
      const reversedSvc = Object.fromEntries(Object.entries(svc).reverse());
      const second = buildTemplateData({ apps: [...apps].reverse(), services: reversedSvc, now: NOW });
      expect(JSON.stringify(second.data)).to.equal(JSON.stringify(first.data));
      // Warnings name a nameless app by its position in the input, which the order changes.
      expect(second.warnings.map((w) => w.code)).to.deep.equal(first.warnings.map((w) => w.code));
      expect(JSON.stringify(buildTemplateData({ apps, services: svc, now: NOW }))).to.equal(JSON.stringify(first));
    });
  });

  describe('malformed input', () => {
    it('skips a malformed app with a warning naming it, and keeps the others', () => {
      const { data, warnings } = build([
        app('/good'),
        { id: '/bad app' },
        { id: 42 },
        'not an object',
        { id: '/tasks-not-array', tasks: { oops: true } },
        app('/also-good', withTasks(task('g.1'), { nope: true } as never)),
      ]);
      expect(data.Apps.map((a) => a.Id)).to.deep.equal(['/also-good', '/good']);
      const codes = warnings.map((w) => w.code).sort();
      expect(codes).to.deep.equal(['app_invalid', 'app_invalid', 'app_invalid', 'app_invalid', 'task_invalid']);
      expect(warnings.map((w) => w.message).join(' ')).to.contain('/bad app').and.to.contain('/tasks-not-array').and.to.contain('apps[2]').and.to.contain('apps[3]');
    });

    it('ignores a second app with the same id', () => {
      const { data, warnings } = build([app('/a', withTasks(task('a.1'))), app('a')]);
      expect(data.Apps).to.have.length(1);
      expect(data.Apps[0].Tasks).to.have.length(1);
      expect(warnings.map((w) => w.code)).to.deep.equal(['app_duplicate']);
    });

    it('does not crash on odd field types', () => {
      const odd = {
        id: '/odd',
        ports: 'x',
        portDefinitions: [null, { port: 'y' }],
        env: ['not', 'a', 'map'],
        labels: null,
        healthChecks: [null, { protocol: 7, portIndex: -1 }],
        container: { docker: null, portMappings: null },
        tasks: [{ id: 't1', host: 'h', ports: ['a', 31000], healthCheckResults: 'x', state: 5 }],
      };
      const { data } = build([odd]);
      expect(data.Apps[0].Id).to.equal('/odd');
      expect(data.Apps[0].HealthChecks).to.deep.equal([{ Protocol: 'HTTP', Path: '/', PortIndex: 0 }]);
    });

    it('throws only when apps is not an array at all', () => {
      expect(() => buildTemplateData({ apps: {} as never, services: {}, now: NOW })).to.throw(TypeError);
    });
  });

  describe('service records', () => {
    it('keeps valid records keyed by app id and drops ACLs that could inject directives', () => {
      const svc = {
        '/ok': service('/ok', ' hdr(host) -i ok.example.com '),
        '/empty': service('/empty', ''),
        '/newline': service('/newline', 'path_beg /x\n    server evil 6.6.6.6:80'),
        '/cr': service('/cr', 'path_beg /x\rfoo'),
        '/nul': service('/nul', 'path_beg /x\u0000'),
        '/sep': service('/sep', 'path_beg /x\u2028y'),
        '/long': service('/long', 'a'.repeat(2000)),
        'bad id': service('bad id', 'path /x'),
      };
      const { data, warnings } = build([], svc);
      expect(Object.keys(data.Services)).to.deep.equal(['/empty', '/ok']);
      expect(data.Services['/ok'].Acl).to.equal('hdr(host) -i ok.example.com');
      expect(JSON.stringify(data)).not.to.contain('evil');
      const byApp = warnings.filter((w) => w.code === 'acl_invalid').map((w) => w.appId);
      expect(byApp).to.deep.equal(['/cr', '/long', '/newline', '/nul', '/sep']);
      expect(warnings.some((w) => w.code === 'service_invalid')).to.equal(true);
    });

    it('drops Config values that are not one printable line', () => {
      const { data, warnings } = build([], services(service('/a', 'path /a', { ok: 'yes', bad: 'two\nlines' })));
      expect(data.Services['/a'].Config).to.deep.equal({ ok: 'yes' });
      expect(warnings.map((w) => w.code)).to.deep.equal(['config_invalid']);
    });
  });

  describe('real Marathon fixtures', () => {
    const files = [
      ...readdirSync(resolve(FIXTURES, 'apps')).filter((f) => f.endsWith('.json')),
      ...readdirSync(resolve(FIXTURES, 'apps/definitions')).map((f) => `definitions/${f}`),
    ];
    it('finds the fixtures beside the repository', () => {
      expect(files.length).to.be.greaterThan(20);
    });
    for (const file of files) {
      it(`accepts ${file} without throwing or skipping apps`, () => {
        const apps = fixtureApps(`apps/${file}`);
        const { data, warnings } = build(apps);
        expect(data.Apps.length).to.equal(apps.length);
        expect(warnings.filter((w) => w.code === 'app_invalid')).to.deep.equal([]);
      });
    }

    it('reads the IP-per-task stub as Bamboo did (task IP and discovery port)', () => {
      const { data } = build(fixtureApps('apps/v2-apps-embed-tasks__STUB-bamboo-test_ip-per-task-minimal.json'));
      const ipApp = data.Apps.find((a) => a.Id === '/app3WithIpAddress') as AppData;
      expect(ipApp.Tasks.map((t) => `${t.Host}:${t.Port}`)).to.deep.equal(['127.0.0.1:80', '127.0.0.1:80']);
      expect(data.Apps.map((a) => a.Id)).to.deep.equal(['/app1WithoutSlash', '/app2WithSlash', '/app3WithIpAddress']);
    });

    it('marks the F5 negative-test task with alive:false as not alive', () => {
      const { data } = build(fixtureApps('apps/v2-apps-list__EDITED-negative-test_f5_missing-data.json'));
      const alive = data.Apps.flatMap((a) => a.Tasks.map((t) => t.Alive));
      expect(alive).to.include(false);
      expect(alive).to.include(true);
    });
  });
});

describe('validateAcl', () => {
  const cases: Array<[string, string, string | undefined]> = [
    ['a host rule', 'hdr(host) -i app.example.com', undefined],
    ['a path rule', 'path_beg -i /app/', undefined],
    ['unicode text', 'hdr(host) -i bücher.example', undefined],
    ['empty', '', 'ACL_EMPTY'],
    ['blank', '   ', 'ACL_EMPTY'],
    ['a newline', 'path /a\nserver x 1.2.3.4:80', 'ACL_CONTROL_CHAR'],
    ['a carriage return', 'path /a\r', 'ACL_CONTROL_CHAR'],
    ['NUL', 'path /a\u0000', 'ACL_CONTROL_CHAR'],
    ['DEL', 'path /a\u007f', 'ACL_CONTROL_CHAR'],
    ['a tab', 'path\t/a', 'ACL_CONTROL_CHAR'],
    ['a C1 control', 'path /a\u0085', 'ACL_CONTROL_CHAR'],
    ['a line separator', 'path /a\u2028', 'ACL_CONTROL_CHAR'],
    ['a paragraph separator', 'path /a\u2029', 'ACL_CONTROL_CHAR'],
    ['1025 characters', 'x'.repeat(1025), 'ACL_TOO_LONG'],
  ];
  for (const [name, acl, code] of cases) {
    it(`${code ? 'rejects' : 'accepts'} ${name}`, () => {
      const r = validateAcl(acl);
      if (code === undefined) expect(r).to.deep.equal({ ok: true });
      else {
        expect(r.ok).to.equal(false);
        if (!r.ok) {
          expect(r.code).to.equal(code);
          expect(r.message).not.to.match(/[\n\r]/);
        }
      }
    });
  }

  it('rejects a non-string without throwing', () => {
    expect(validateAcl(42 as never)).to.include({ ok: false, code: 'ACL_NOT_STRING' });
  });
});

describe('validateAppId', () => {
  const cases: Array<[string, string | undefined]> = [
    ['/app', undefined],
    ['/group/sub/app-1.v2', undefined],
    ['/Mixed/Case_App', undefined],
    ['', 'APP_ID_EMPTY'],
    ['/', 'APP_ID_EMPTY'],
    ['app', 'APP_ID_NOT_ABSOLUTE'],
    ['/a//b', 'APP_ID_EMPTY_SEGMENT'],
    ['/a/', 'APP_ID_EMPTY_SEGMENT'],
    ['/a/../b', 'APP_ID_DOT_SEGMENT'],
    ['/a/./b', 'APP_ID_DOT_SEGMENT'],
    ['/a b', 'APP_ID_BAD_CHAR'],
    ['/a\nb', 'APP_ID_BAD_CHAR'],
    ['/a#b', 'APP_ID_BAD_CHAR'],
    [`/${'a'.repeat(600)}`, 'APP_ID_TOO_LONG'],
  ];
  for (const [id, code] of cases) {
    it(`${code ? `rejects (${code})` : 'accepts'} ${JSON.stringify(id.length > 40 ? `${id.slice(0, 20)}...` : id)}`, () => {
      const r = validateAppId(id);
      if (code === undefined) expect(r).to.deep.equal({ ok: true });
      else expect(r).to.include({ ok: false, code });
    });
  }
});

describe('buildTemplateData with a memo (the worker\'s repeated builds)', () => {
  function prng(seed: number): () => number {
    let x = seed >>> 0;
    return () => {
      x = (x * 1664525 + 1013904223) >>> 0;
      return x / 2 ** 32;
    };
  }
  const copy = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
  const base = () => Array.from({ length: 30 }, (_, i) => app(`/g${i % 3}/app-${i}`,
    withHealthCheck('HTTP', '/h', { gracePeriodSeconds: 60 + i }),
    ...(i % 5 === 0 ? [withDeployment(), withReadinessCheck('/r', 20)] : []),
    withTasks(task(`app-${i}.a`, onHost(`10.0.0.${i}`, 31000 + i), i % 2 ? healthy() : startedAgo(30_000 + i * 1000)), task(`app-${i}.b`, onHost(`10.0.1.${i}`, 32000 + i), startedAgo(50_000)))));

  it('returns the same data and warnings as a fresh build across changes, time passing and slot moves', () => {
    const rnd = prng(3);
    let apps: unknown[] = base();
    apps.push({ id: 42 }, app('/dup'), app('dup'), app('/bad-task', withTasks({ nope: true } as never)));
    let svc = services(service('/g1/app-1', 'hdr(host) -i one.example.com'));
    const memo = new TemplateDataMemo();
    let now = NOW;
    let previous: ReturnType<typeof slotTable> | null = null;
    const changes: Array<(i: number) => void> = [
      // A new object for one app (what a new snapshot brings), with a change.
      (i) => { const a = copy(apps[i]) as MarathonApp; (a.tasks ?? []).push(task(`n${Math.floor(rnd() * 1e6)}`, onHost('10.9.9.9', 35000 + i))); apps[i] = a; },
      (i) => { const a = copy(apps[i]) as MarathonApp; a.tasks = (a.tasks ?? []).slice(1); apps[i] = a; },
      (i) => { const a = copy(apps[i]) as MarathonApp; const t = (a.tasks ?? [])[0]; if (t) t.healthCheckResults = [{ alive: rnd() < 0.5 }]; apps[i] = a; },
      (i) => { const a = copy(apps[i]) as MarathonApp; a.env = { X: String(rnd()) }; apps[i] = a; },
      // Every app a new, equal object (a snapshot parsed anew).
      () => { apps = copy(apps); },
      // The clock moves across grace periods and readiness windows.
      () => { now += Math.floor(rnd() * 20_000); },
      () => { svc = { ...svc, '/g2/app-2': service('/g2/app-2', `hdr(host) -i r${Math.floor(rnd() * 100)}.example.com`) }; },
      (i) => { apps.splice(i, 1); },
      () => { previous = null; },
    ];
    for (let round = 0; round < 60; round++) {
      changes[Math.floor(rnd() * changes.length)](Math.floor(rnd() * apps.length));
      const withMemo = buildTemplateData({ apps, services: svc, now, slots: { previous }, memo });
      const fresh = buildTemplateData({ apps, services: svc, now, slots: { previous } });
      expect(JSON.stringify(withMemo), `round ${round}`).to.equal(JSON.stringify(fresh));
      previous = slotTable(withMemo.data);
    }
  });

  it('holds entries only for the apps of the last build while apps come and go', () => {
    const memo = new TemplateDataMemo();
    const generation = (g: number) => Array.from({ length: 100 }, (_, i) => app(`/gen${g}/app-${i}`, withTasks(task(`g${g}-${i}.a`, onHost(`10.1.${g}.${i}`, 31000 + i), healthy()))));
    for (let g = 0; g < 5; g++) {
      buildTemplateData({ apps: generation(g), services: {}, now: NOW, memo });
      expect({ size: memo.size, misses: memo.misses }, `generation ${g}`).to.deep.equal({ size: 100, misses: 100 });
    }
    // Half of them replaced: still one entry per app present.
    const mixed = [...generation(4).slice(0, 50), ...generation(5).slice(50)];
    buildTemplateData({ apps: mixed, services: {}, now: NOW, memo });
    expect({ size: memo.size, hits: memo.hits, misses: memo.misses }).to.deep.equal({ size: 100, hits: 50, misses: 50 });
  });

  it('builds only the apps that changed, and drops apps that left', () => {
    const apps = base();
    const memo = new TemplateDataMemo();
    buildTemplateData({ apps, services: {}, now: NOW, memo });
    expect({ hits: memo.hits, misses: memo.misses }).to.deep.equal({ hits: 0, misses: 30 });
    const next = copy(apps);
    next[4].env = { CHANGED: '1' };
    next.pop();
    const first = buildTemplateData({ apps, services: {}, now: NOW, memo }).data;
    const second = buildTemplateData({ apps: next, services: {}, now: NOW, memo, slots: { previous: slotTable(first) } }).data;
    expect({ hits: memo.hits, misses: memo.misses, size: memo.size }).to.deep.equal({ hits: 28, misses: 1, size: 29 });
    // Unchanged apps come back as the same frozen objects.
    expect(second.Apps.find((a) => a.Id === '/g1/app-1')).to.equal(first.Apps.find((a) => a.Id === '/g1/app-1'));
    expect(Object.isFrozen(second.Apps[0])).to.equal(true);
    // Time passing reuses apps until a time test (a grace period, a readiness window) changes its answer.
    const previous = slotTable(second);
    buildTemplateData({ apps: next, services: {}, now: NOW + 1, memo, slots: { previous } });
    expect({ hits: memo.hits, misses: memo.misses }).to.deep.equal({ hits: 29, misses: 0 });
    const later = buildTemplateData({ apps: next, services: {}, now: NOW + 1_000_000, memo, slots: { previous } });
    expect({ hits: memo.hits, misses: memo.misses }).to.deep.equal({ hits: 0, misses: 29 });
    expect(JSON.stringify(later)).to.equal(JSON.stringify(buildTemplateData({ apps: next, services: {}, now: NOW + 1_000_000, slots: { previous } })));
  });
});

