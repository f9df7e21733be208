/**
 * HTTPS with SNI through a real worker, HAProxy 2.6 and real TLS: certificates made with openssl in
 * a temp dir, clients are Node's tls/https with SNI. Certificate changes in HAProxy.CertDir must be
 * served without a reload (the worker's reload count and HAProxy's worker PID unchanged).
 */
import { expect } from 'chai';
import { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { connect } from 'node:tls';
import { haproxySettings } from '../../common/config-views.js';
import { cliCommand } from '../../common/adapters/haproxy/master-cli.js';
import { createLogger } from '../../common/log.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';
import { TestCa, opensslAvailable, type Issued } from '../../harness/tls.js';
import { runWorker, type WorkerHandle } from '../../worker/main.js';
import { REPO_ROOT } from '../builders.js';
import { haproxyCheck } from '../support/haproxy.js';
import { FakeApi, marathonApp, testSetup, workerConfig, type TestSetup } from '../worker-fixtures.js';

interface TlsSetup extends TestSetup {
  httpsPort: number;
  certDir: string;
  ca: TestCa;
}

interface Peer {
  cn: string;
  san: string;
  serial: string;
}

/** The certificate HAProxy presents for this SNI name (null: the handshake failed). */
function peerCert(port: number, servername: string | undefined, ca: string): Promise<Peer | null> {
  return new Promise((done) => {
    const sock = connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false, timeout: 3000 });
    sock.once('secureConnect', () => {
      const c = sock.getPeerCertificate();
      sock.destroy();
      done({ cn: String(c.subject?.CN ?? ''), san: c.subjectaltname ?? '', serial: String(c.serialNumber ?? '').toUpperCase() });
    });
    sock.once('error', () => done(null));
    sock.once('timeout', () => {
      sock.destroy();
      done(null);
    });
  });
}

/** One HTTPS request with SNI `host`, verified against the test CA. */
function httpsGet(port: number, host: string, path: string, ca: string): Promise<{ status: number; headers: Record<string, unknown>; body: string } | null> {
  return new Promise((done) => {
    const req = request({ host: '127.0.0.1', port, servername: host, path, ca, headers: { host }, agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (b) => (body += b));
      res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', () => done(null));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** HAProxy's worker process id (`show info`): it changes on every reload. */
async function haproxyPid(socket: string): Promise<number> {
  const m = /^Pid: (\d+)$/m.exec(await cliCommand(socket, 'show info'));
  return m ? Number(m[1]) : -1;
}

/** Writes a file as certbot and lego do: a temp file renamed over the old one. */
function writeRenamed(path: string, text: string): void {
  const tmp = join(resolve(path, '..'), `.tmp-${Math.random().toString(16).slice(2)}`);
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

describe('HTTPS with SNI (real worker, HAProxy, TLS)', function () {
  this.timeout(90000);
  const cleanups: Array<() => Promise<unknown>> = [];
  before(function () {
    if (!opensslAvailable()) this.skip();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function tlsSetup(): Promise<TlsSetup> {
    const s = await testSetup();
    const caDir = join(s.dir, 'ca');
    const certDir = join(s.dir, 'certs');
    mkdirSync(caDir);
    mkdirSync(certDir);
    return { ...s, httpsPort: await freePort(), certDir, ca: TestCa.create(caDir) };
  }

  function tlsOverrides(t: TlsSetup, extra: Record<string, string | number | boolean> = {}) {
    return {
      'HAProxy.HttpsBind': `127.0.0.1:${t.httpsPort}`,
      'HAProxy.CertDir': t.certDir,
      'HAProxy.DefaultCert': 'default',
      'HAProxy.HstsMaxAge': 600,
      'HAProxy.CertRescanMs': 0,
      ...extra,
    };
  }

  async function fakeApi(s: TestSetup): Promise<FakeApi> {
    const api = await new FakeApi(s).start();
    cleanups.push(() => api.close());
    return api;
  }

  async function backend(name: string): Promise<Backend> {
    const b = await startBackend(name);
    cleanups.push(() => b.close());
    return b;
  }

  async function worker(t: TlsSetup, extra: Record<string, string | number | boolean> = {}, lines?: string[]): Promise<WorkerHandle> {
    const log = createLogger({ level: lines ? 'debug' : 'silent', destination: { write: (l: string) => lines?.push(l) } as never });
    const w = await runWorker(workerConfig(t, tlsOverrides(t, extra)), log, { bind: '127.0.0.1:0', retryInitialMs: 200 });
    cleanups.push(() => w.close());
    return w;
  }

  function cert(t: TlsSetup, name: string, hosts: string[]): Issued {
    const c = t.ca.issue(hosts);
    writeRenamed(join(t.certDir, `${name}.pem`), c.bundle);
    return c;
  }

  /** Waits until HAProxy serves HTTPS with the certificate of serial `serial` for `sni`. */
  async function served(t: TlsSetup, sni: string | undefined, serial: string, what: string): Promise<void> {
    await waitFor(async () => (await peerCert(t.httpsPort, sni, t.ca.cert))?.serial === serial, what, 20000);
  }

  it('serves each host the certificate that names it by SNI, and the default certificate to an unknown name', async () => {
    const t = await tlsSetup();
    const api = await fakeApi(t);
    const def = cert(t, 'default', ['edge.test']);
    const shop = cert(t, 'shop', ['shop.test', 'www.shop.test']);
    const wild = cert(t, 'wild', ['*.api.test']);
    await api.setApps([]);
    const w = await worker(t);

    await served(t, 'shop.test', shop.serial, 'shop.test to get its certificate');
    const p = await peerCert(t.httpsPort, 'www.shop.test', t.ca.cert);
    expect(p?.cn).to.equal('shop.test');
    expect(p?.san).to.contain('DNS:www.shop.test');
    expect((await peerCert(t.httpsPort, 'v1.api.test', t.ca.cert))?.serial).to.equal(wild.serial);
    expect((await peerCert(t.httpsPort, 'unknown.test', t.ca.cert))?.serial).to.equal(def.serial);
    expect((await peerCert(t.httpsPort, undefined, t.ca.cert))?.serial).to.equal(def.serial);
    // The pass at start found no HTTPS listener yet; the one after the reload that added it is clean.
    await waitFor(() => w.status().tls!.error === null, 'a certificate pass without error after the first reload');
    expect(w.status().tls!.runtimeChanges, 'nothing to apply: HAProxy loaded the files').to.equal(0);
  });

  it('routes HTTPS by the same rules as HTTP and adds HSTS only to HTTPS responses', async () => {
    const t = await tlsSetup();
    const api = await fakeApi(t);
    cert(t, 'default', ['edge.test']);
    cert(t, 'shop', ['shop.test']);
    const b = await backend('shop-app');
    await api.setApps([marathonApp('/shop', [{ port: b.port }])]);
    await api.setRule('/shop', 'path_beg /app');
    await worker(t);

    await waitFor(async () => (await httpsGet(t.httpsPort, 'shop.test', '/app', t.ca.cert))?.body.startsWith('shop-app'), 'HTTPS to reach the app');
    const r = await httpsGet(t.httpsPort, 'shop.test', '/app', t.ca.cert);
    expect(r?.headers['strict-transport-security']).to.equal('max-age=600');
    const none = await httpsGet(t.httpsPort, 'shop.test', '/no-such-app', t.ca.cert);
    expect(none?.status).to.equal(503);
    expect(none?.headers['strict-transport-security'], 'on HAProxy\'s own 503').to.equal('max-age=600');
    const plain = await httpGet(`http://127.0.0.1:${t.httpPort}/app`, { host: 'shop.test' });
    expect(plain.body).to.match(/^shop-app/);
    expect(plain.headers['strict-transport-security']).to.equal(undefined);
  });

  it('redirects plain HTTP to HTTPS for an app whose HAPROXY_0_REDIRECT_TO_HTTPS label asks, only for it, and reports HAPROXY_0_SSL_CERT labels the edge cannot serve', async () => {
    const t = await tlsSetup();
    const api = await fakeApi(t);
    cert(t, 'default', ['edge.test']);
    cert(t, 'secure', ['secure.test']);
    const secure = await backend('secure-app');
    const open = await backend('open-app');
    await api.setApps([
      marathonApp('/secure', [{ port: secure.port }], { labels: { HAPROXY_0_REDIRECT_TO_HTTPS: 'true', HAPROXY_0_SSL_CERT: 'secure' } }),
      marathonApp('/open', [{ port: open.port }], { labels: { HAPROXY_0_SSL_CERT: 'missing' } }),
      marathonApp('/sneaky', [{ port: open.port }], { labels: { HAPROXY_0_SSL_CERT: '/etc/ssl/private/other.pem' } }),
    ]);
    const w = await worker(t);

    await waitFor(async () => (await httpGet(`http://127.0.0.1:${t.httpPort}/open`).catch(() => null))?.body.startsWith('open-app'), 'the open app over HTTP');
    const r = await httpGet(`http://127.0.0.1:${t.httpPort}/secure/x?y=1`, { host: `secure.test:${t.httpPort}` });
    expect(r.status).to.equal(301);
    expect(r.headers.location).to.equal(`https://secure.test:${t.httpsPort}/secure/x?y=1`);
    expect((await httpsGet(t.httpsPort, 'secure.test', '/secure', t.ca.cert))?.body).to.match(/^secure-app/);
    // HAPROXY_0_SSL_CERT names a certificate of CertDir: one the edge lacks, or a path, is reported.
    await w.reconciler.whenIdle();
    await waitFor(() => w.status().tls!.labels.length > 0, 'the labels noted after the reconcile');
    expect(w.status().tls!.labels).to.deep.equal([
      { appId: '/open', cert: 'missing', problem: 'no such certificate in HAProxy.CertDir' },
      { appId: '/sneaky', cert: '/etc/ssl/private/other.pem', problem: 'not a certificate name (letters, digits, . _ -; never a path)' },
    ]);
  });

  it('serves the hosts an app owns the certificate its HAPROXY_0_SSL_CERT names, never another app\'s host, through the Runtime API and the crt-list', async () => {
    const t = await tlsSetup();
    const api = await fakeApi(t);
    const def = cert(t, 'default', ['edge.test', 'keep.test']);
    // Two certificates name shop.test; HAProxy alone would serve the first entry (legacy).
    const legacy = cert(t, 'legacy', ['shop.test', 'other.test']);
    const current = cert(t, 'shop-2027', ['shop.test', 'www.shop.test']);
    const b = await backend('sni-app');
    const app = (id: string, labels: Record<string, string>, changedAt: string) =>
      marathonApp(id, [{ port: b.port }], { labels, version: changedAt, versionInfo: { lastConfigChangeAt: changedAt, lastScalingAt: changedAt } });
    const shopLabels = { HAPROXY_0_VHOST: 'shop.test,extra.test,keep.test', HAPROXY_0_SSL_CERT: 'shop-2027' };
    // A later claimant of shop.test names the other certificate for it: it does not own the host.
    const thief = app('/aaa/thief', { HAPROXY_0_VHOST: 'shop.test,thief.test', HAPROXY_0_SSL_CERT: 'legacy' }, '2025-06-01T00:00:00.000Z');
    await api.setApps([app('/shop', shopLabels, '2024-01-01T00:00:00.000Z'), thief]);
    const w = await worker(t);

    await served(t, 'shop.test', current.serial, 'shop.test to get the certificate its owner names');
    await served(t, 'extra.test', current.serial, 'a host of the app that the certificate does not name');
    await served(t, 'thief.test', legacy.serial, 'the later claimant\'s own host to get the certificate it names');
    expect((await peerCert(t.httpsPort, 'www.shop.test', t.ca.cert))?.serial, 'the certificate keeps its own names').to.equal(current.serial);
    expect((await peerCert(t.httpsPort, 'other.test', t.ca.cert))?.serial).to.equal(legacy.serial);
    // The crt-list on disk says the same, so a reload or a restart serves the same.
    const listPath = haproxySettings(workerConfig(t, tlsOverrides(t)) as never).CrtList;
    const list = readFileSync(listPath, 'utf8');
    expect(list).to.contain('legacy.pem other.test thief.test\n').and.contain('shop-2027.pem shop.test www.shop.test extra.test keep.test\n');
    expect(w.status().tls!.error).to.equal(null);
    // The default certificate's entry cannot change at run time: the hosts it names stay with it, reported.
    expect((await peerCert(t.httpsPort, 'keep.test', t.ca.cert))?.serial).to.equal(def.serial);
    expect(w.status().tls!.labels).to.deep.equal([{ appId: '/shop', cert: 'shop-2027', problem: 'host keep.test is named by the default certificate, which keeps it' }]);

    // The label goes: extra.test is named by no certificate and falls back to the default one.
    await api.setApps([app('/shop', { HAPROXY_0_VHOST: 'shop.test,extra.test' }, '2024-01-01T00:00:00.000Z'), thief]);
    await served(t, 'extra.test', def.serial, 'extra.test back to the default certificate');
    await waitFor(() => !readFileSync(listPath, 'utf8').includes('extra.test'), 'the crt-list on disk without the label\'s host');
  });

  it('serves a renewed, an added and no longer a removed certificate on new connections without a reload', async () => {
    const t = await tlsSetup();
    const api = await fakeApi(t);
    const def = cert(t, 'default', ['edge.test']);
    const shop = cert(t, 'shop', ['shop.test']);
    const old = cert(t, 'old', ['old.test']);
    await api.setApps([]);
    const w = await worker(t);
    await served(t, 'shop.test', shop.serial, 'the first shop certificate');
    await served(t, 'old.test', old.serial, 'the old.test certificate');
    await w.reconciler.whenIdle();
    const socket = haproxySettings(workerConfig(t, tlsOverrides(t)) as never).AdminSocket;
    const pid = await haproxyPid(socket);
    const reloads = w.reconciler.counts.reloaded;

    const renewed = cert(t, 'shop', ['shop.test']);
    expect(renewed.serial).not.to.equal(shop.serial);
    await served(t, 'shop.test', renewed.serial, 'the renewed shop certificate');
    const added = cert(t, 'blog', ['blog.test']);
    await served(t, 'blog.test', added.serial, 'the added blog certificate');
    rmSync(join(t.certDir, 'old.pem'));
    await served(t, 'old.test', def.serial, 'old.test to fall back to the default certificate');

    expect(await haproxyPid(socket), 'HAProxy worker process').to.equal(pid);
    expect(w.reconciler.counts.reloaded, 'reloads').to.equal(reloads);
    const st = w.status().tls!;
    expect(st.certificates.map((c) => c.name)).to.deep.equal(['blog', 'default', 'shop']);
    expect(st.runtimeChanges).to.be.at.least(3);
    expect(st.error).to.equal(null);
    // The crt-list on disk says the same, so a restart serves the same.
    const list = readFileSync(haproxySettings(workerConfig(t, tlsOverrides(t)) as never).CrtList, 'utf8');
    expect(list.split('\n')[0]).to.match(/\/default\.pem$/);
    expect(list).to.contain('blog.pem blog.test').and.not.contain('old.pem');
  });

  it('follows a certbot-style directory of symlinks (live/<name>/fullchain.pem, privkey.pem) when they are switched', async () => {
    const t = await tlsSetup();
    const api = await fakeApi(t);
    cert(t, 'default', ['edge.test']);
    const archive = join(t.dir, 'archive');
    mkdirSync(archive);
    const live = join(t.certDir, 'docs');
    mkdirSync(live);
    const put = (n: number, c: Issued) => {
      writeFileSync(join(archive, `fullchain${n}.pem`), c.cert);
      writeFileSync(join(archive, `privkey${n}.pem`), c.key);
      for (const [link, file] of [['fullchain.pem', `fullchain${n}.pem`], ['privkey.pem', `privkey${n}.pem`]]) {
        const tmp = join(live, `.${link}.new`);
        symlinkSync(join(archive, file), tmp);
        renameSync(tmp, join(live, link));
      }
    };
    const first = t.ca.issue(['docs.test']);
    put(1, first);
    await api.setApps([]);
    const w = await worker(t);
    await served(t, 'docs.test', first.serial, 'the certbot certificate');
    await w.reconciler.whenIdle();
    const reloads = w.reconciler.counts.reloaded;
    const second = t.ca.issue(['docs.test']);
    put(2, second);
    await served(t, 'docs.test', second.serial, 'the renewed certbot certificate');
    expect(w.reconciler.counts.reloaded).to.equal(reloads);
  });

  it('refuses a bad bundle alone, with its reason in the status, while the others keep serving', async () => {
    const t = await tlsSetup();
    const api = await fakeApi(t);
    cert(t, 'default', ['edge.test']);
    const shop = cert(t, 'shop', ['shop.test']);
    const other = t.ca.issue(['other.test']);
    await api.setApps([]);
    const w = await worker(t);
    await served(t, 'shop.test', shop.serial, 'the shop certificate');

    writeRenamed(join(t.certDir, 'garbage.pem'), 'not a certificate\n');
    // A line that is no base64 inside a block: on HAProxy's CLI it would be a command of its own.
    const inj = t.ca.issue(['inj.test']);
    writeRenamed(join(t.certDir, 'injected.pem'), inj.cert.replace(/\n(?=-----END)/, '\n\nshow info\n') + inj.key);
    writeRenamed(join(t.certDir, 'mismatch.pem'), other.cert + t.ca.issue(['x.test']).key);
    // A renewal that went wrong: the shop's last good certificate keeps serving.
    writeRenamed(join(t.certDir, 'shop.pem'), shop.cert);
    const good = cert(t, 'good', ['good.test']);
    await served(t, 'good.test', good.serial, 'a good certificate added beside the bad ones');
    await waitFor(() => w.status().tls!.refused.length === 4, 'four refusals in the status');
    const refused = Object.fromEntries(w.status().tls!.refused.map((r) => [r.name, r]));
    expect(refused.garbage.reason).to.match(/no PEM certificate/);
    expect(refused.mismatch.reason).to.match(/does not belong to the certificate/);
    expect(refused.injected.reason).to.match(/not base64/);
    expect(refused.shop).to.include({ kept: true });
    expect(refused.shop.reason).to.match(/no private key/);
    expect((await peerCert(t.httpsPort, 'shop.test', t.ca.cert))?.serial).to.equal(shop.serial);
    expect((await peerCert(t.httpsPort, 'other.test', t.ca.cert))?.cn).to.equal('edge.test');
    expect(w.status().degraded.join(' ')).to.contain('4 certificate file(s) refused');
    const metrics = await httpGet(`http://127.0.0.1:${w.port}/metrics`);
    expect(metrics.body).to.match(/^bamboo_tls_certificates\{state="refused"\} 4$/m);
    expect(metrics.body).to.match(/^bamboo_tls_certificates\{state="served"\} 3$/m);
  });

  it('serves an expired certificate all the same, flagged in the status and the metrics', async () => {
    const t = await tlsSetup();
    const api = await fakeApi(t);
    cert(t, 'default', ['edge.test']);
    const late = t.ca.issue(['late.test'], { days: -1 });
    writeRenamed(join(t.certDir, 'late.pem'), late.bundle);
    await api.setApps([]);
    const w = await worker(t);
    await served(t, 'late.test', late.serial, 'the expired certificate');
    const st = w.status().tls!;
    expect(st.certificates.find((c) => c.name === 'late')).to.include({ state: 'expired', serial: late.serial });
    expect(st.refused).to.deep.equal([]);
    const metrics = await httpGet(`http://127.0.0.1:${w.port}/metrics`);
    expect(metrics.body).to.match(/^bamboo_tls_certificates\{state="expired"\} 1$/m);
  });

  it('never puts a private key in the status, the ZooKeeper record, the logs or haproxy.cfg', async () => {
    const t = await tlsSetup();
    const api = await fakeApi(t);
    const lines: string[] = [];
    const def = cert(t, 'default', ['edge.test']);
    const shop = cert(t, 'shop', ['shop.test']);
    await api.setApps([]);
    const w = await worker(t, {}, lines);
    await served(t, 'shop.test', shop.serial, 'the shop certificate');
    const renewed = cert(t, 'shop', ['shop.test']);
    writeRenamed(join(t.certDir, 'broken.pem'), renewed.cert + def.key);
    await served(t, 'shop.test', renewed.serial, 'the renewed certificate');
    await waitFor(() => w.status().tls!.refused.length === 1, 'the broken bundle refused');
    await w.reconciler.whenIdle();

    const record = await api.zk.get(api.control.paths.worker(workerConfig(t).Worker.Name));
    const outputs = {
      status: JSON.stringify(w.status()),
      zookeeper: record?.data.toString() ?? '',
      logs: lines.join(''),
      config: readFileSync(t.outputPath, 'utf8'),
    };
    expect(outputs.logs).to.contain('certificate applied through the runtime api');
    for (const key of [def.key, shop.key, renewed.key]) {
      // The base64 body of each key, line by line: no line of it may appear anywhere.
      const body = key.split('\n').filter((l) => l && !l.startsWith('-----'));
      for (const [where, text] of Object.entries(outputs)) {
        for (const l of body) expect(text.includes(l), `${where} holds a line of a private key`).to.equal(false);
      }
    }
    for (const text of Object.values(outputs)) expect(text).not.to.contain('PRIVATE KEY');
  });

  it('keeps the HTTPS port for the edge: an app asking for it as its TCP port is quarantined', async () => {
    const t = await tlsSetup();
    const api = await fakeApi(t);
    cert(t, 'default', ['edge.test']);
    const b = await backend('tcp-app');
    await api.setApps([marathonApp('/grab', [{ port: b.port }], { env: { BAMBOO_TCP_PORT: String(t.httpsPort) } })]);
    const w = await worker(t);
    await waitFor(() => (w.reconciler.running?.quarantined ?? []).some((q) => q.appId === '/grab'), 'the app quarantined');
    expect(w.reconciler.running!.quarantined.find((q) => q.appId === '/grab')!.error).to.contain('belongs to the edge');
    await waitFor(async () => (await peerCert(t.httpsPort, 'edge.test', t.ca.cert))?.cn === 'edge.test', 'HTTPS served on its port');
  });

  it('refuses to start when the default certificate is not a valid bundle', async () => {
    const t = await tlsSetup();
    writeFileSync(join(t.certDir, 'default.pem'), t.ca.issue(['edge.test']).cert);
    const err = await runWorker(workerConfig(t, tlsOverrides(t)), createLogger({ level: 'silent' }), {}).then(
      (w) => {
        cleanups.push(() => w.close());
        return null;
      },
      (e: Error) => e,
    );
    expect(err?.message).to.match(/HAProxy.DefaultCert default has no valid certificate.*no private key/);
  });

  it('the golden HTTPS config passes haproxy -c with a real crt-list', async () => {
    const t = await tlsSetup();
    const golden = readFileSync(join(REPO_ROOT, 'test/golden/https-sni.cfg'), 'utf8');
    const def = t.ca.issue(['edge.test']);
    const shop = t.ca.issue(['shop.test']);
    writeFileSync(join(t.dir, 'default.pem'), def.bundle);
    writeFileSync(join(t.dir, 'shop.pem'), shop.bundle);
    writeFileSync(join(t.dir, 'crt-list'), `${join(t.dir, 'default.pem')}\n${join(t.dir, 'shop.pem')} shop.test\n`);
    const cfg = join(tempDir('bamboo-tls-golden-'), 'haproxy.cfg');
    expect(golden).to.contain(GOLDEN_CRT_LIST);
    writeFileSync(cfg, golden.split(GOLDEN_CRT_LIST).join(join(t.dir, 'crt-list')));
    const r = await haproxyCheck(cfg);
    expect(r.ok, r.output).to.equal(true);
    expect(r.output).not.to.match(/\[(WARNING|ALERT)\]/);
  });
});

/** The crt-list path the golden file https-sni.cfg renders (test/unit/render.test.ts). */
const GOLDEN_CRT_LIST = '/run/bamboo-worker/tls/crt-list';
