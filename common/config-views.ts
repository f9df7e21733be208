/**
 * Values derived from a loaded config, so every caller derives them alike: the write credentials, the
 * trusted proxies' address blocks, CURVE key lists, the Marathon endpoints, HAProxy's runtime and TLS
 * directories and the settings its template sees, the worker's name.
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError, type Config } from './config.js';

/** The name `Bamboo.AuthToken` goes by among the named tokens (in logs and on requests). */
export const DEFAULT_TOKEN_NAME = 'default';

/** Every credential as name -> token: Bamboo.AuthTokens plus Bamboo.AuthToken as `default`. */
export function credentials(cfg: Pick<Config, 'Bamboo'>): Array<{ name: string; token: string }> {
  const out = Object.entries(cfg.Bamboo.AuthTokens ?? {}).map(([name, token]) => ({ name, token }));
  if (cfg.Bamboo.AuthToken) out.push({ name: DEFAULT_TOKEN_NAME, token: cfg.Bamboo.AuthToken });
  return out;
}

/**
 * A list of addresses and CIDR blocks (`Bamboo.TrustedProxies`) as `{ address, prefix, family }`;
 * a ConfigError names an entry that is neither.
 */
export function addressBlocks(value: string): Array<{ address: string; prefix: number | null; family: 'ipv4' | 'ipv6' }> {
  return value.split(/[\s,]+/).filter(Boolean).map((item) => {
    const [address, bits, extra] = item.split('/');
    const v = isIP(address);
    const max = v === 4 ? 32 : 128;
    const prefix = bits === undefined ? null : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
    if (v === 0 || extra !== undefined || (prefix !== null && !(prefix >= 0 && prefix <= max))) {
      throw new ConfigError(`config: Bamboo.TrustedProxies must list IP addresses or CIDR blocks like 10.0.0.0/8, got ${JSON.stringify(item.slice(0, 60))}`);
    }
    return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
  });
}

/** A comma-separated list of keys, trimmed, empty entries dropped. */
export function curveKeyList(value: string): string[] {
  return value.split(',').map((k) => k.trim()).filter(Boolean);
}

/** The configured Marathon endpoints, trimmed, without trailing slashes. */
export function marathonEndpoints(cfg: Pick<Config, 'Marathon'>): string[] {
  return cfg.Marathon.Endpoint.split(',').map((s) => s.trim().replace(/\/+$/, '')).filter(Boolean);
}

/** The HAProxy settings the template sees as `HAProxy` (admin socket path resolved). */
export function haproxySettings(cfg: Config): {
  HttpBind: string; StatsBind: string; StatsUser: string; StatsPassword: string; AdminSocket: string; BindOptions: string;
  ServerStateFile: string; PrometheusExporter: string; HttpsBind: string; CrtList: string; HstsMaxAge: string;
} {
  return {
    HttpBind: cfg.HAProxy.HttpBind,
    StatsBind: cfg.HAProxy.StatsBind,
    StatsUser: cfg.HAProxy.StatsUser,
    StatsPassword: cfg.HAProxy.StatsPassword,
    AdminSocket: cfg.HAProxy.AdminSocket || join(runtimeDir(cfg), 'haproxy.sock'),
    BindOptions: cfg.HAProxy.BindOptions,
    ServerStateFile: cfg.HAProxy.ServerStateFile || join(dirname(cfg.HAProxy.OutputPath), 'haproxy.state'),
    PrometheusExporter: cfg.HAProxy.PrometheusExporter ? 'true' : 'false',
    HttpsBind: cfg.HAProxy.HttpsBind.trim(),
    CrtList: cfg.HAProxy.HttpsBind.trim() ? join(tlsDir(cfg), 'crt-list') : '',
    HstsMaxAge: cfg.HAProxy.HttpsBind.trim() && cfg.HAProxy.HstsMaxAge > 0 ? String(cfg.HAProxy.HstsMaxAge) : '',
  };
}

/**
 * Where the worker keeps the certificates HAProxy loads (copies of the accepted ones in
 * HAProxy.CertDir) and the crt-list naming them: `<RuntimeDir>/tls`.
 */
export function tlsDir(cfg: Pick<Config, 'HAProxy'>): string {
  return join(runtimeDir(cfg), 'tls');
}

/** Where HAProxy's sockets and pidfile live: HAProxy.RuntimeDir, or the directory of OutputPath. */
export function runtimeDir(cfg: Pick<Config, 'HAProxy'>): string {
  return cfg.HAProxy.RuntimeDir.trim() || dirname(cfg.HAProxy.OutputPath);
}

/** The worker's name in the fleet view. */
export function workerName(cfg: Config): string {
  return cfg.Worker.Name || hostname();
}
