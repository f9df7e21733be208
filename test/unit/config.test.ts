import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, PROJECT_ROOT, SCHEMA } from '../../common/config.js';
import { redactConfig, secretValues } from '../../common/config-redact.js';
import { loadConfig } from '../../common/config-load.js';
import { withTable } from '../../scripts/gen-config-docs.js';
import { tempDir } from '../../harness/tmp.js';

function writeJson(obj: unknown): string {
  const p = join(tempDir(), 'config.json');
  writeFileSync(p, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return p;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('gives every key its documented default with no file and no env', () => {
    const cfg = loadConfig({ env: {} });
    expect(cfg.Marathon.Endpoint).to.equal('http://localhost:8080');
    expect(cfg.Bamboo.Zookeeper.Path).to.equal('/marathon-haproxy/state');
    expect(cfg.StatsD.Enabled).to.equal(false);
    expect(Object.isFrozen(cfg.Marathon)).to.equal(true);
  });

  it('reads Bamboo JSON files, including the // comments of its documented example', () => {
    const file = writeJson(`{
      // Marathon instance configuration
      "Marathon": { "Endpoint": "http://m1:8080,http://m2:8080", "UseEventStream": true },
      "Bamboo": { "Endpoint": "http://b:8000", "Zookeeper": { "Host": "zk:2181", "Path": "/bamboo//x", "ReportingDelay": 5 } },
      "HAProxy": { "TemplatePath": "tpl.cfg", "OutputPath": "/etc/haproxy/haproxy.cfg", "ReloadCommand": "true" },
      "StatsD": { "Enabled": false, "Host": "localhost:8125", "Prefix": "p." }
    }`.replace('/bamboo//x', '/bamboo'));
    const cfg = loadConfig({ file, env: {} });
    expect(cfg.Marathon.UseEventStream).to.equal(true);
    expect(cfg.Bamboo.Zookeeper.Host).to.equal('zk:2181');
    expect(cfg.HAProxy.TemplatePath).to.equal(join(file, '..', 'tpl.cfg'));
  });

  it('lets env override the file for every Bamboo env var', () => {
    const env: Record<string, string> = {
      MARATHON_ENDPOINT: 'http://env-m:8080', MARATHON_USER: 'u', MARATHON_PASSWORD: 'pw', MARATHON_USE_EVENT_STREAM: 'true',
      BAMBOO_ENDPOINT: 'http://env-b:8000', BAMBOO_ZK_HOST: 'envzk:2181', BAMBOO_ZK_PATH: '/env', HAPROXY_TEMPLATE_PATH: '/t',
      HAPROXY_OUTPUT_PATH: '/o', HAPROXY_RELOAD_CMD: 'r', HAPROXY_RELOAD_VALIDATION_CMD: 'v {{.}}', HAPROXY_RELOAD_CLEANUP_CMD: 'c',
      STATSD_ENABLED: '1', STATSD_HOST: 's:1', STATSD_PREFIX: 'x.',
    };
    const cfg = loadConfig({ file: writeJson({ Marathon: { Endpoint: 'http://file:8080' } }), env });
    expect(cfg.Marathon).to.include({ Endpoint: 'http://env-m:8080', User: 'u', Password: 'pw', UseEventStream: true });
    expect(cfg.Bamboo.Endpoint).to.equal('http://env-b:8000');
    expect(cfg.Bamboo.Zookeeper).to.include({ Host: 'envzk:2181', Path: '/env' });
    expect(cfg.HAProxy).to.include({ TemplatePath: '/t', OutputPath: '/o', ReloadCommand: 'r', ReloadValidationCommand: 'v {{.}}', ReloadCleanupCommand: 'c' });
    expect(cfg.StatsD).to.deep.equal({ Enabled: true, Host: 's:1', Prefix: 'x.' });
  });

  it("matches keys case-insensitively, as Bamboo's Go decoder did (EndPoint, a lower-case marathon section)", () => {
    const cfg = loadConfig({
      file: writeJson({ marathon: { EndPoint: 'http://m:8080', useeventstream: true }, BAMBOO: { zookeeper: { HOST: 'zk:2181', path: '/bamboo' } }, statsd: { enabled: true } }),
      env: {},
    });
    expect(cfg.Marathon).to.include({ Endpoint: 'http://m:8080', UseEventStream: true });
    expect(cfg.Bamboo.Zookeeper).to.include({ Host: 'zk:2181', Path: '/bamboo' });
    expect(cfg.StatsD.Enabled).to.equal(true);
    expect(errorOf(() => loadConfig({ file: writeJson({ Marathon: { Endpoint: 'http://a:1', endpoint: 'http://b:1' } }), env: {} }))).to.match(
      /^config: Marathon\.Endpoint is given twice \(from .*\), in spellings that differ only in case$/,
    );
  });

  it("names what replaced a Bamboo v0.1 key (Bamboo.Host, DomainMapping, Marathon.Zookeeper) and still refuses it", () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ Bamboo: { Host: 'http://b:8000' } }, /^config: unknown key Bamboo\.Host \(from .*\); Bamboo\.Host was Bamboo v0\.1's, replaced by Bamboo\.Endpoint/],
      [{ DomainMapping: { '/app': 'app.example.com' } }, /unknown key DomainMapping .*replaced by service records: set a rule per app through the REST API or the UI/],
      [{ marathon: { zookeeper: { Host: 'zk:2181', Path: '/marathon' } } }, /unknown key Marathon\.zookeeper .*Marathon\.Zookeeper was Bamboo v0\.1's, replaced by Marathon\.Endpoint/],
    ];
    for (const [json, re] of cases) expect(errorOf(() => loadConfig({ file: writeJson(json), env: {} }))).to.match(re);
  });

  it('lets an env var override only when set and non-empty, as in Bamboo', () => {
    const file = writeJson({ Marathon: { Endpoint: 'http://file:8080', UseEventStream: true }, Bamboo: { Zookeeper: { ReportingDelay: 7 } } });
    const cfg = loadConfig({ file, env: { MARATHON_ENDPOINT: '', MARATHON_USE_EVENT_STREAM: '', BAMBOO_ZK_REPORTING_DELAY: '', STATSD_ENABLED: '' } });
    expect(cfg.Marathon).to.include({ Endpoint: 'http://file:8080', UseEventStream: true });
    expect(cfg.Bamboo.Zookeeper.ReportingDelay).to.equal(7);
    expect(cfg.StatsD.Enabled).to.equal(false);
  });

  it('paces Marathon fetches by MinFetchIntervalMs, 250 ms unless set', () => {
    expect(loadConfig({ env: {} }).Marathon.MinFetchIntervalMs).to.equal(250);
    expect(loadConfig({ env: { MARATHON_MIN_FETCH_INTERVAL_MS: '100' } }).Marathon.MinFetchIntervalMs).to.equal(100);
    expect(loadConfig({ file: writeJson({ Marathon: { MinFetchIntervalMs: 0 } }), env: {} }).Marathon.MinFetchIntervalMs).to.equal(0);
    expect(errorOf(() => loadConfig({ env: { MARATHON_MIN_FETCH_INTERVAL_MS: '-1' } }))).to.match(/Marathon\.MinFetchIntervalMs .* at least 0/);
  });

  it('honours BAMBOO_DOCKER_AUTO_HOST like Bamboo did', () => {
    const cfg = loadConfig({ env: { BAMBOO_DOCKER_AUTO_HOST: 'true', HOST: '10.1.2.3' } });
    expect(cfg.Bamboo.Endpoint).to.equal('http://10.1.2.3:8000');
  });

  const bad: Array<[string, () => unknown, RegExp]> = [
    ['an unknown key', () => loadConfig({ file: writeJson({ Marathon: { Endpiont: 'x' } }), env: {} }), /^config: unknown key Marathon\.Endpiont \(from .*config\.json\)$/],
    ['an unknown section', () => loadConfig({ file: writeJson({ Foo: {} }), env: {} }), /unknown key Foo/],
    ['"UseEventStream": "maybe"', () => loadConfig({ file: writeJson({ Marathon: { UseEventStream: 'maybe' } }), env: {} }), /^config: Marathon\.UseEventStream \(from .*\) must be true or false, got "maybe"$/],
    ['a bad boolean env', () => loadConfig({ env: { MARATHON_USE_EVENT_STREAM: 'maybe' } }), /Marathon\.UseEventStream \(from env MARATHON_USE_EVENT_STREAM\)/],
    ['a string for a number', () => loadConfig({ file: writeJson({ Bamboo: { Zookeeper: { ReportingDelay: '5' } } }), env: {} }), /Bamboo\.Zookeeper\.ReportingDelay .* must be an integer/],
    ['a number out of range', () => loadConfig({ env: { MARATHON_TIMEOUT_MS: '1' } }), /Marathon\.TimeoutMs .* at least 100/],
    ['a non-URL endpoint', () => loadConfig({ env: { MARATHON_ENDPOINT: 'not a url' } }), /Marathon\.Endpoint has an invalid URL/],
    ['a relative ZooKeeper path', () => loadConfig({ env: { BAMBOO_ZK_PATH: 'bamboo' } }), /Bamboo\.Zookeeper\.Path must be an absolute/],
    ['malformed JSON', () => loadConfig({ file: writeJson('{"Marathon": '), env: {} }), /is not valid JSON/],
    ['a missing file', () => loadConfig({ file: '/nonexistent/bamboo.json', env: {} }), /cannot read \/nonexistent\/bamboo\.json: ENOENT/],
    ['passing a secret to HAProxy', () => loadConfig({ env: { HAPROXY_PASS_ENV: 'TZ, BAMBOO_ZK_DIGEST' } }), /^config: HAProxy\.PassEnv must not pass BAMBOO_ZK_DIGEST \(the secret Bamboo\.Zookeeper\.Digest\)/],
    ['passing the stats password to HAProxy', () => loadConfig({ env: { HAPROXY_PASS_ENV: 'HAPROXY_STATS_PASSWORD' } }), /HAProxy\.PassEnv must not pass HAPROXY_STATS_PASSWORD/],
    ['a PassEnv entry that is no variable name', () => loadConfig({ env: { HAPROXY_PASS_ENV: 'A=B' } }), /HAProxy\.PassEnv must list environment variable names, got "A=B"/],
    ['a CURVE secret key without its public key', () => loadConfig({ env: { BAMBOO_ZMQ_CURVE_SECRET_KEY: 'x'.repeat(40) } }), /ZeroMQ\.CurveSecretKey and ZeroMQ\.CurvePublicKey go together/],
    ['a CURVE key that is not Z85', () => loadConfig({ env: { BAMBOO_ZMQ_CURVE_SERVER_KEYS: `${'a'.repeat(40)},too-short` } }), /ZeroMQ\.CurveServerKeys must hold Z85/],
    ['CURVE client keys without CURVE', () => loadConfig({ env: { BAMBOO_ZMQ_CURVE_CLIENT_KEYS: 'a'.repeat(40) } }), /ZeroMQ\.CurveClientKeys needs CURVE/],
    ['HTTPS without a certificate directory', () => loadConfig({ env: { HAPROXY_HTTPS_BIND: '*:443', HAPROXY_DEFAULT_CERT: 'edge' } }), /HAProxy\.CertDir must name the certificate directory when HAProxy\.HttpsBind is set/],
    ['HTTPS without a default certificate', () => loadConfig({ env: { HAPROXY_HTTPS_BIND: '*:443', HAPROXY_CERT_DIR: '/etc/bamboo/certs' } }), /HAProxy\.DefaultCert must name a certificate/],
    ['a default certificate given as a path', () => loadConfig({ env: { HAPROXY_HTTPS_BIND: '*:443', HAPROXY_CERT_DIR: '/c', HAPROXY_DEFAULT_CERT: '../key.pem' } }), /HAProxy\.DefaultCert .*no path/],
  ];
  for (const [what, fn, re] of bad) {
    it(`rejects ${what} with one line naming the key`, () => {
      const msg = errorOf(fn);
      expect(msg).to.match(re);
      expect(msg).not.to.include('\n');
    });
  }

  it('never puts a secret value into an error message', () => {
    const msg = errorOf(() => loadConfig({ file: writeJson({ Marathon: { Password: 12345 } }), env: {} }));
    expect(msg).to.include('Marathon.Password').and.not.to.include('12345');
    const digest = errorOf(() => loadConfig({ env: { BAMBOO_ZK_DIGEST: 'nocolonsecret' } }));
    expect(digest).not.to.include('nocolonsecret');
  });

  it('redacts secrets in the printable form and lists them for log scrubbing', () => {
    const cfg = loadConfig({ env: { MARATHON_PASSWORD: 'hunter2', BAMBOO_AUTH_TOKEN: 'tok', MARATHON_ENDPOINT: 'http://u:pw@m:8080' } });
    const shown = JSON.stringify(redactConfig(cfg));
    expect(shown).not.to.include('hunter2').and.not.to.include('tok"').and.not.to.include('u:pw@');
    expect(secretValues(cfg)).to.include.members(['hunter2', 'tok']);
  });

  it('keeps docs/configuration.md in sync with the schema', () => {
    const doc = readFileSync(join(PROJECT_ROOT, 'docs', 'configuration.md'), 'utf8');
    expect(withTable(doc), 'run: npx tsx scripts/gen-config-docs.ts').to.equal(doc);
    for (const f of SCHEMA) expect(doc).to.include('`' + f.key + '`');
  });

  it('accepts deploy/production.example.json', () => {
    const cfg = loadConfig({ file: join(PROJECT_ROOT, 'deploy', 'production.example.json'), env: {} });
    expect(cfg.Marathon.UseEventStream).to.equal(true);
  });
});
