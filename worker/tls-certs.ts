/**
 * The certificates of the HTTPS listener (HAProxy.HttpsBind): HAProxy.CertDir, checked, copied and
 * applied to the running HAProxy through its Runtime API, so a certificate added, renewed or removed
 * (by hand, certbot or lego) is served by new connections without a reload.
 *
 * HAProxy never reads HAProxy.CertDir itself. The worker keeps in its TLS directory
 * (`<HAProxy.RuntimeDir>/tls`) a copy of every certificate it accepted and the crt-list naming them,
 * the default certificate on the first line (no SNI filter: HAProxy serves it when no other matches)
 * and every other one with its DNS names as SNI filters, adjusted by the apps' `HAPROXY_{n}_SSL_CERT`
 * for the hosts they own (common/core/tls-sni.ts). A file of CertDir that is not a valid bundle
 * is refused alone; if an earlier version of it was accepted, that copy keeps serving. So the crt-list
 * HAProxy loads on a reload or a restart always names files that load, and is the same as what the
 * Runtime API made of the running process.
 *
 * Level-triggered like the reconcile: each pass (a change seen by the watch, the periodic rescan, a
 * reload of HAProxy) reads the whole directory and the running HAProxy's crt-list and converges:
 * `new/set/commit ssl cert` for a certificate HAProxy lacks or holds with another fingerprint,
 * `add/del ssl crt-list` for entries to add, re-filter or remove, `del ssl cert` for removed ones
 * (tls-runtime.ts). Files
 * are written before the Runtime API is told (a reload in between loads the new files) and removed
 * after it (a validation in between finds every file the crt-list names).
 *
 * Private keys: read here, written to the TLS directory (mode 0640) and sent on the admin socket,
 * nowhere else. Status, logs and errors carry names, serials, dates and fingerprints only.
 */
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoalescedRunner } from '../common/coalesce.js';
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import { CERT_NAME, httpsLabels } from '../common/core/tls-labels.js';
import { labelledSni, sniFilters, type SniApp, type SniBinding } from '../common/core/tls-sni.js';
import { checkBundle, type Accepted } from './tls-bundle.js';
import { convergeRuntime, NotServing, RuntimeRefused } from './tls-runtime.js';
import { readCertDir, type Source } from './tls-source.js';
import { tlsStatus, type TlsStatus } from './tls-status.js';

/** Changes seen by the watch within this long are read in one pass (certbot writes several files). */
export const CERT_WATCH_DEBOUNCE_MS = 250;

export interface CertManagerOptions {
  /** HAProxy.CertDir: what the operator (or certbot, lego) writes. */
  certDir: string;
  /** The worker's TLS directory: the accepted copies and the crt-list. */
  tlsDir: string;
  /** Path of the crt-list in tlsDir (HAProxySettings.CrtList). */
  crtList: string;
  /** HAProxy.DefaultCert. */
  defaultCert: string;
  /** The admin socket; null: files only (HAProxy picks them up on its next reload). */
  adminSocket: string | null;
  /** Serialises admin socket use with the reconcile's (RuntimeApi.serial). */
  serial?: <T>(fn: () => Promise<T>) => Promise<T>;
  timeoutMs: number;
  /** HAProxy.CertRescanMs (0: watch only). */
  rescanMs: number;
  log: Logger;
  metrics?: Metrics;
  /** Wall clock for expiry (default Date.now). */
  now?: () => number;
}

export class CertManager {
  private accepted = new Map<string, Accepted>();
  private refused: TlsStatus['refused'] = [];
  private runtimeChanges = 0;
  private lastPassAt: number | null = null;
  /** The apps' HAPROXY_0_SSL_CERT labels in the config in force. */
  private labelled: Array<{ appId: string; cert: string; valid: boolean }> = [];
  /** Host -> the certificate an app's HAPROXY_{n}_SSL_CERT names for it, over the hosts it owns (tls-sni.ts). */
  private sni = new Map<string, SniBinding>();
  private error: string | null = null;
  private watcher: FSWatcher | null = null;
  private rescan: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly runner: CoalescedRunner;
  private readonly now: () => number;
  private readonly serial: <T>(fn: () => Promise<T>) => Promise<T>;

  constructor(private readonly o: CertManagerOptions) {
    this.now = o.now ?? Date.now;
    this.serial = o.serial ?? ((fn) => fn());
    this.runner = new CoalescedRunner(
      () => this.pass(true),
      (err) => o.log.warn({ err }, 'certificate pass failed'),
      () => this.closed,
    );
  }

  /** Path HAProxy loads a certificate from (its name in the Runtime API too). */
  path(name: string): string {
    return join(this.o.tlsDir, `${name}.pem`);
  }

  /**
   * Before HAProxy starts: brings the TLS directory in line with CertDir (files only). Rejects when
   * the default certificate has no valid bundle, in CertDir nor from an earlier run: HAProxy cannot
   * serve HTTPS without it.
   */
  async prepare(): Promise<void> {
    if (/\s/.test(this.o.tlsDir)) throw new Error(`the TLS directory ${JSON.stringify(this.o.tlsDir)} must not contain blanks (crt-list lines are split on them)`);
    await mkdir(this.o.tlsDir, { recursive: true, mode: 0o750 });
    // The copies of an earlier run are what HAProxy last loaded: they serve until CertDir says otherwise.
    for (const f of await readdir(this.o.tlsDir).catch(() => [] as string[])) {
      if (!f.endsWith('.pem')) continue;
      const name = f.slice(0, -4);
      if (!CERT_NAME.test(name)) continue;
      const c = checkBundle(await readFile(join(this.o.tlsDir, f), 'utf8').catch(() => ''), this.now());
      if (c.ok) this.accepted.set(name, { info: c.info, pem: c.pem, expired: c.expired, notYetValid: c.notYetValid });
    }
    await this.pass(false);
    if (!this.accepted.has(this.o.defaultCert)) {
      const why = this.refused.find((r) => r.name === this.o.defaultCert)?.reason ?? 'not found';
      throw new Error(`HAProxy.DefaultCert ${this.o.defaultCert} has no valid certificate in HAProxy.CertDir ${this.o.certDir}: ${why}`);
    }
  }

  /** Watches CertDir and rescans it every HAProxy.CertRescanMs; runs a first pass with the Runtime API. */
  start(): void {
    this.watchDir();
    if (this.o.rescanMs > 0) {
      this.rescan = setInterval(() => {
        if (!this.watcher) this.watchDir();
        this.trigger();
      }, this.o.rescanMs);
      this.rescan.unref();
    }
    void this.runner.run();
  }

  /** A pass soon (debounced): a change in CertDir, a reload of HAProxy. */
  trigger(): void {
    if (this.closed) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.runner.run();
    }, CERT_WATCH_DEBOUNCE_MS);
    this.debounce.unref();
  }

  /** Runs a pass now (or after the one in flight); resolves when none is running. */
  sync(): Promise<void> {
    return this.runner.run();
  }

  /**
   * Notes the apps of the config in force: their HAPROXY_0_SSL_CERT labels for the status, and the
   * hosts whose certificate their HAPROXY_{n}_SSL_CERT chose, applied by a pass when they changed.
   */
  noteApps(apps: ReadonlyArray<SniApp & { Labels?: unknown }>): void {
    const sni = labelledSni(apps);
    if (JSON.stringify([...sni]) !== JSON.stringify([...this.sni])) {
      this.sni = sni;
      this.trigger();
    }
    const out: CertManager['labelled'] = [];
    for (const app of apps) {
      const l = httpsLabels(app.Labels, 0);
      if (l.sslCert !== null) out.push({ appId: app.Id, cert: l.sslCert, valid: true });
      else if (l.invalidSslCert !== null) out.push({ appId: app.Id, cert: l.invalidSslCert.slice(0, 100), valid: false });
    }
    this.labelled = out;
  }
  status(): TlsStatus {
    return tlsStatus({
      certDir: this.o.certDir, defaultCert: this.o.defaultCert, accepted: this.accepted, refused: this.refused, runtimeChanges: this.runtimeChanges,
      labelled: this.labelled, sni: this.sni, lastPassAt: this.lastPassAt, error: this.error,
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.rescan) clearInterval(this.rescan);
    this.watcher?.close();
    this.watcher = null;
    await this.runner.settled();
  }

  private watchDir(): void {
    if (this.closed || this.watcher) return;
    try {
      // Recursive: certbot's live/<name>/ entries are symlinks it replaces inside a subdirectory.
      const w = watch(this.o.certDir, { recursive: true, persistent: false }, () => this.trigger());
      w.on('error', (err) => {
        this.o.log.debug({ err, dir: this.o.certDir }, 'certificate directory watch failed; rescans continue');
        w.close();
        if (this.watcher === w) this.watcher = null;
      });
      this.watcher = w;
    } catch (err) {
      this.o.log.debug({ err, dir: this.o.certDir }, 'cannot watch the certificate directory yet; rescans continue');
    }
  }

  /** One pass: CertDir -> accepted -> TLS directory -> (with `runtime`) the running HAProxy. */
  private async pass(runtime: boolean): Promise<void> {
    let sources: Map<string, Source>;
    try {
      sources = await readCertDir(this.o.certDir);
    } catch (err) {
      // A directory that cannot be read (unmounted, renamed) changes nothing: what was accepted serves on.
      this.error = `cannot read HAProxy.CertDir: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      this.lastPassAt = this.now();
      this.o.log.warn({ dir: this.o.certDir, error: this.error }, 'certificate directory unreadable; serving the certificates in force');
      return;
    }
    const now = this.now();
    const next = new Map<string, Accepted>();
    const refused: TlsStatus['refused'] = [];
    for (const [name, src] of sources) {
      const check = src.ok ? checkBundle(src.text, now, { requireNames: name !== this.o.defaultCert }) : src;
      if (check.ok) {
        next.set(name, { info: check.info, pem: check.pem, expired: check.expired, notYetValid: check.notYetValid });
        continue;
      }
      const kept = this.accepted.get(name);
      if (kept) next.set(name, kept);
      refused.push({ name, reason: check.reason, kept: Boolean(kept) });
    }
    // The default certificate cannot leave a running listener: its last accepted copy stays.
    const def = this.accepted.get(this.o.defaultCert);
    if (def && !sources.has(this.o.defaultCert)) {
      next.set(this.o.defaultCert, def);
      refused.push({ name: this.o.defaultCert, reason: 'missing from HAProxy.CertDir; the default certificate stays as last accepted', kept: true });
    }
    for (const r of refused) {
      const was = this.refused.find((x) => x.name === r.name);
      if (!was || was.reason !== r.reason) this.o.log.warn({ cert: r.name, reason: r.reason, kept: r.kept }, 'certificate refused');
    }
    for (const [name, a] of next) {
      const before = this.accepted.get(name);
      if (before?.info.hash === a.info.hash) continue;
      if (a.expired || a.notYetValid) this.o.log.warn({ cert: name, notBefore: a.info.notBefore, notAfter: a.info.notAfter }, 'certificate outside its validity period; served anyway');
    }

    // Files first: a reload or restart from here on loads the new set.
    let error: string | null = null;
    for (const [name, a] of next) {
      const current = await readFile(this.path(name), 'utf8').catch(() => null);
      if (current !== a.pem) await writeAtomic(this.path(name), a.pem);
    }
    const list = this.crtListText(next);
    if ((await readFile(this.o.crtList, 'utf8').catch(() => null)) !== list) await writeAtomic(this.o.crtList, list);

    if (runtime && this.o.adminSocket) {
      try {
        await this.serial(() =>
          convergeRuntime(
            {
              adminSocket: this.o.adminSocket!, timeoutMs: this.o.timeoutMs, crtList: this.o.crtList, tlsDir: this.o.tlsDir, defaultCert: this.o.defaultCert,
              path: (n) => this.path(n), filters: (n, a) => this.filters(n, a, next), onChange: (k, p, a) => this.change(k, p, a),
            },
            next,
          ),
        );
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        error = err instanceof RuntimeRefused ? err.message : `admin socket: ${code ?? (err as Error).message}`;
        // At start HAProxy may not run yet, or run a config without HTTPS: it loads the files when the reload comes.
        const notYet = err instanceof NotServing || code === 'ENOENT' || code === 'ECONNREFUSED';
        if (notYet) this.o.log.info({ error }, 'certificates wait for HAProxy to load the HTTPS listener');
        else this.o.log.warn({ error }, 'certificates not applied through the runtime api; retried on the next pass');
      }
    }
    // Removed last: until here the running HAProxy (or a validation) may still read them.
    if (!error || !runtime) {
      for (const f of await readdir(this.o.tlsDir).catch(() => [] as string[])) {
        if (f.endsWith('.pem') && !next.has(f.slice(0, -4))) await rm(join(this.o.tlsDir, f), { force: true });
      }
    }
    this.accepted = next;
    this.refused = refused;
    this.error = error;
    this.lastPassAt = this.now();
    const m = this.o.metrics;
    if (m) {
      m.gauge('tls.certificates.served', next.size);
      m.gauge('tls.certificates.expired', [...next.values()].filter((a) => a.expired).length);
      m.gauge('tls.certificates.refused', refused.length);
    }
  }

  /**
   * The crt-list: the default certificate first without filters, then the others by name with their
   * names as SNI filters, less the hosts labels gave another certificate, plus those labels gave them.
   */
  private crtListText(certs: ReadonlyMap<string, Accepted>): string {
    const lines: string[] = [this.path(this.o.defaultCert)];
    for (const [name, a] of [...certs].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      if (name === this.o.defaultCert) continue;
      lines.push([this.path(name), ...this.filters(name, a, certs)].join(' '));
    }
    return lines.join('\n') + '\n';
  }

  private filters(name: string, a: Accepted, certs: ReadonlyMap<string, Accepted>): string[] {
    // A label naming a certificate the edge does not serve chooses nothing: the host keeps the certificate that names it.
    const bound = new Map([...this.sni].filter(([, b]) => certs.has(b.cert)));
    return sniFilters(name, a.info.names, name === this.o.defaultCert, bound);
  }

  private change(kind: 'added' | 'renewed' | 'removed', path: string, a?: Accepted): void {
    this.runtimeChanges++;
    this.o.log.info({ cert: path.slice(this.o.tlsDir.length + 1, -4), change: kind, serial: a?.info.serial, names: a?.info.names }, 'certificate applied through the runtime api');
  }
}

/** Temp file + rename in the same directory, readable by HAProxy's group only. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o640 });
  await rename(tmp, path);
}
