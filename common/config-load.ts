/**
 * Loading the configuration: Bamboo's JSON file (keys matched case-insensitively, // comments
 * allowed, retired v0.1 keys named with their successors), env overrides (only when set and
 * non-empty, as in Bamboo), CLI flags, then validation across fields, and a frozen result. The schema
 * is in config.ts, the values derived from a loaded config in config-views.ts.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { SCHEMA, ConfigError, getPath, setPath, type Config, type FieldSpec } from './config.js';
import { redactUrl } from './config-redact.js';
import { addressBlocks, curveKeyList, DEFAULT_TOKEN_NAME, marathonEndpoints } from './config-views.js';
import { parsePortRange } from './core/port-policy.js';
import { CERT_NAME } from './core/tls-labels.js';
import { parseAllowedDomains, parseWorkerGroups } from './core/labels.js';
/** Where a config value came from, for error messages. */
type Source = string;

const BY_KEY = new Map(SCHEMA.map((f) => [f.key, f]));

function describe(f: FieldSpec, raw: unknown): string {
  if (f.secret) return '(secret value hidden)';
  const s = typeof raw === 'string' ? JSON.stringify(raw) : JSON.stringify(raw) ?? String(raw);
  return `got ${s.length > 60 ? s.slice(0, 57) + '...' : s}`;
}

/** Names of named secrets (`Bamboo.AuthTokens`): they appear in logs and audit lines, so plain. */
const SECRET_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** A token: printable ASCII without spaces (it travels in an `Authorization: Bearer` header). */
const SECRET_VALUE = /^[\x21-\x7e]{16,512}$/;

/**
 * A `secrets` field: a JSON object of name -> secret (from env: its JSON text). Names and secrets
 * are checked; an error names the offending entry by its name (or position), never by its secret.
 */
function coerceSecrets(f: FieldSpec, raw: unknown, where: string, fromEnv: boolean): Record<string, string> {
  let value = raw;
  if (fromEnv && typeof raw === 'string') {
    if (raw.trim() === '') return {};
    try {
      value = JSON.parse(raw);
    } catch {
      throw new ConfigError(`config: ${where} must be a JSON object of name -> token, like {"deploy":"<token>"} (secret value hidden)`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`config: ${where} must be a JSON object of name -> token, like {"deploy":"<token>"} (secret value hidden)`);
  }
  const out: Record<string, string> = {};
  const seen = new Map<string, string>();
  Object.entries(value as Record<string, unknown>).forEach(([name, secret], i) => {
    const label = SECRET_NAME.test(name) ? JSON.stringify(name) : `number ${i + 1}`;
    if (!SECRET_NAME.test(name)) throw new ConfigError(`config: ${where}: the name of entry ${label} must be 1-64 letters, digits, "_", "." or "-"`);
    if (typeof secret !== 'string' || !SECRET_VALUE.test(secret)) {
      throw new ConfigError(`config: ${where}: the token named ${label} must be a string of 16-512 printable ASCII characters without spaces (secret value hidden)`);
    }
    const twin = seen.get(secret);
    if (twin !== undefined) throw new ConfigError(`config: ${where}: the tokens named ${JSON.stringify(twin)} and ${label} are the same; give each credential its own token`);
    seen.set(secret, name);
    out[name] = secret;
  });
  return out;
}

/** Converts and checks one value; strings from env are parsed, JSON values must have the right type. */
function coerce(f: FieldSpec, raw: unknown, source: Source, fromEnv: boolean): string | number | boolean | Record<string, string> {
  const where = `${f.key} (from ${source})`;
  switch (f.type) {
    case 'secrets':
      return coerceSecrets(f, raw, where, fromEnv);
    case 'string':
      if (typeof raw !== 'string') throw new ConfigError(`config: ${where} must be a string, ${describe(f, raw)}`);
      return raw;
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (fromEnv && typeof raw === 'string') {
        const v = raw.trim().toLowerCase();
        if (['true', '1', 'yes', 'on'].includes(v)) return true;
        if (['false', '0', 'no', 'off', ''].includes(v)) return false;
      }
      throw new ConfigError(`config: ${where} must be true or false, ${describe(f, raw)}`);
    case 'integer': {
      let n: unknown = raw;
      if (fromEnv && typeof raw === 'string' && /^-?\d+$/.test(raw.trim())) n = Number(raw.trim());
      if (typeof n !== 'number' || !Number.isInteger(n)) throw new ConfigError(`config: ${where} must be an integer, ${describe(f, raw)}`);
      if (f.min !== undefined && n < f.min) throw new ConfigError(`config: ${where} must be at least ${f.min}, ${describe(f, raw)}`);
      if (f.max !== undefined && n > f.max) throw new ConfigError(`config: ${where} must be at most ${f.max}, ${describe(f, raw)}`);
      return n;
    }
    case 'enum':
      if (typeof raw !== 'string' || !f.values!.includes(raw)) {
        throw new ConfigError(`config: ${where} must be one of ${f.values!.join(', ')}, ${describe(f, raw)}`);
      }
      return raw;
  }
}

/**
 * Keys of Bamboo v0.1 that no longer exist, with what replaced them: an unknown key names its
 * successor instead of leaving the operator to guess. Matched case-insensitively, like every key.
 */
const RETIRED_KEYS: ReadonlyArray<[string, string]> = [
  ['Bamboo.Host', 'Bamboo.Endpoint (the URL Marathon posts callbacks to)'],
  ['DomainMapping', 'service records: set a rule per app through the REST API or the UI (stored under Bamboo.Zookeeper.Path)'],
  ['Marathon.Zookeeper', 'Marathon.Endpoint (apps are read from Marathon\'s REST API; events from /v2/events or http_callback)'],
];

/** Schema keys and section names by their lower-case spelling. */
const CANONICAL = (() => {
  const m = new Map<string, string>();
  for (const f of SCHEMA) {
    const parts = f.key.split('.');
    for (let i = 1; i <= parts.length; i++) {
      const k = parts.slice(0, i).join('.');
      m.set(k.toLowerCase(), k);
    }
  }
  return m;
})();

/**
 * The file's JSON with every key spelt as the schema spells it. Keys match case-insensitively, as
 * Go's encoding/json matched Bamboo's (`EndPoint`, a lower-case `marathon` section); a key the schema
 * does not know is an error naming it (and, for a Bamboo v0.1 key, what replaced it), and so are two
 * spellings of one key in the same object.
 */
function canonicalKeys(json: unknown, file: string, prefix = ''): Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`config: ${prefix || 'the top level'} (from ${file}) must be a JSON object`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) {
    const given = prefix ? `${prefix}.${k}` : k;
    const key = CANONICAL.get(given.toLowerCase());
    if (key === undefined) {
      const retired = RETIRED_KEYS.find(([old]) => old.toLowerCase() === given.toLowerCase() || given.toLowerCase().startsWith(old.toLowerCase() + '.'));
      const hint = retired ? `; ${retired[0]} was Bamboo v0.1's, replaced by ${retired[1]}` : '';
      throw new ConfigError(`config: unknown key ${given} (from ${file})${hint}`);
    }
    const name = key.slice(key.lastIndexOf('.') + 1);
    if (Object.prototype.hasOwnProperty.call(out, name)) {
      throw new ConfigError(`config: ${key} is given twice (from ${file}), in spellings that differ only in case`);
    }
    out[name] = BY_KEY.has(key) ? v : canonicalKeys(v, file, key);
  }
  return out;
}

/** Removes `// ...` line comments (Bamboo's documented example has them) outside of strings. */
function stripLineComments(text: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') { out += text[++i] ?? ''; continue; }
      if (c === '"') inString = false;
      continue;
    }
    if (c === '"') { inString = true; out += c; continue; }
    if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
      continue;
    }
    out += c;
  }
  return out;
}

export interface LoadOptions {
  /** Path of the JSON config file (optional: defaults and env alone are a valid config). */
  file?: string;
  /** Environment to read overrides from (default process.env). */
  env?: Record<string, string | undefined>;
  /** Highest-precedence overrides by dotted key (from CLI flags). */
  overrides?: Record<string, string | number | boolean | Record<string, string> | undefined>;
}

/** Loads, validates and freezes the configuration. Throws ConfigError with a one-line message. */
export function loadConfig(opts: LoadOptions = {}): Readonly<Config> {
  const env = opts.env ?? process.env;
  let fileJson: Record<string, unknown> = {};
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`config: cannot read ${opts.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    try {
      fileJson = JSON.parse(stripLineComments(text)) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config: ${opts.file} is not valid JSON: ${(err as Error).message.split('\n')[0]}`);
    }
    fileJson = canonicalKeys(fileJson, opts.file);
  }

  const out: Record<string, unknown> = {};
  for (const f of SCHEMA) {
    let value: string | number | boolean | Record<string, string> = f.type === 'secrets' ? {} : f.default;
    const fromFile = opts.file ? getPath(fileJson, f.key) : undefined;
    if (fromFile !== undefined && fromFile !== null) value = coerce(f, fromFile, opts.file!, false);
    // As in Bamboo, an env var overrides only when set and non-empty: `FOO=` in a unit file or a
    // container definition leaves the file's value alone.
    const fromEnv = f.env ? env[f.env] : undefined;
    if (fromEnv !== undefined && fromEnv !== '') value = coerce(f, fromEnv, `env ${f.env}`, true);
    const fromFlag = opts.overrides?.[f.key];
    if (fromFlag !== undefined) value = coerce(f, fromFlag, 'command line', typeof fromFlag === 'string' || f.type === 'secrets');
    setPath(out, f.key, value);
  }

  const cfg = out as unknown as Config;
  // Bamboo's Docker convention: the callback endpoint is this container's host on port 8000.
  if (env.BAMBOO_DOCKER_AUTO_HOST !== undefined && env.BAMBOO_DOCKER_AUTO_HOST !== '') {
    const host = env.HOST || hostname();
    cfg.Bamboo.Endpoint = `http://${host}:8000`;
  }
  validateCrossField(cfg);
  if (cfg.HAProxy.TemplatePath && !cfg.HAProxy.TemplatePath.startsWith('/')) {
    cfg.HAProxy.TemplatePath = resolve(opts.file ? dirname(opts.file) : process.cwd(), cfg.HAProxy.TemplatePath);
  }
  return deepFreeze(cfg);
}

function validateCrossField(cfg: Config): void {
  const endpoints = marathonEndpoints(cfg);
  if (endpoints.length === 0) throw new ConfigError('config: Marathon.Endpoint must name at least one URL');
  for (const e of endpoints) {
    let u: URL;
    try {
      u = new URL(e);
    } catch {
      throw new ConfigError(`config: Marathon.Endpoint has an invalid URL ${JSON.stringify(redactUrl(e))}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new ConfigError(`config: Marathon.Endpoint must use http or https, got ${JSON.stringify(u.protocol)}`);
    }
  }
  for (const key of ['Bamboo.Zookeeper.Path', 'Bamboo.Zookeeper.ControlPath'] as const) {
    const v = getPath(cfg as unknown as Record<string, unknown>, key) as string;
    if (!/^\/[^\s]*$/.test(v) || (v.length > 1 && v.endsWith('/'))) {
      throw new ConfigError(`config: ${key} must be an absolute ZooKeeper path like /bamboo, got ${JSON.stringify(v)}`);
    }
  }
  if (!cfg.Bamboo.Zookeeper.Host.trim()) throw new ConfigError('config: Bamboo.Zookeeper.Host must not be empty');
  if (cfg.Bamboo.Zookeeper.Digest && !cfg.Bamboo.Zookeeper.Digest.includes(':')) {
    throw new ConfigError('config: Bamboo.Zookeeper.Digest must have the form user:password (secret value hidden)');
  }
  validateCredentials(cfg);
  if (!/^(tcp|ipc|inproc):\/\//.test(cfg.ZeroMQ.PublishBind)) {
    throw new ConfigError(`config: ZeroMQ.PublishBind must be a ZeroMQ address like tcp://0.0.0.0:5556, got ${JSON.stringify(cfg.ZeroMQ.PublishBind)}`);
  }
  for (const name of cfg.HAProxy.PassEnv.split(/[\s,]+/).filter(Boolean)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new ConfigError(`config: HAProxy.PassEnv must list environment variable names, got ${JSON.stringify(name.slice(0, 60))}`);
    }
    const secret = SCHEMA.find((f) => f.secret && f.env === name);
    if (secret) throw new ConfigError(`config: HAProxy.PassEnv must not pass ${name} (the secret ${secret.key}) to HAProxy`);
  }
  if (!parsePortRange(cfg.HAProxy.TcpPortRange)) {
    throw new ConfigError(`config: HAProxy.TcpPortRange must be a port range like 10000-65535 (1-65535, min <= max), got ${JSON.stringify(cfg.HAProxy.TcpPortRange)}`);
  }
  for (const [key, parse] of [['Worker.Groups', parseWorkerGroups], ['Labels.AllowedDomains', parseAllowedDomains]] as const) {
    try {
      parse(getPath(cfg as unknown as Record<string, unknown>, key) as string);
    } catch (err) {
      throw new ConfigError(`config: ${key} ${(err as Error).message}`);
    }
  }
  validateHttps(cfg);
  validateCurve(cfg);
  addressBlocks(cfg.Bamboo.TrustedProxies);
  if (!/^[^:]+:\d+$/.test(cfg.StatsD.Host)) {
    throw new ConfigError(`config: StatsD.Host must be host:port, got ${JSON.stringify(cfg.StatsD.Host)}`);
  }
}

/** The single token joins the named ones; both forms together must not clash. */
function validateCredentials(cfg: Config): void {
  // The callback secret travels in a URL and must appear there verbatim (so log redaction finds it).
  if (cfg.Bamboo.CallbackSecret && !/^[A-Za-z0-9._~-]{16,256}$/.test(cfg.Bamboo.CallbackSecret)) {
    throw new ConfigError('config: Bamboo.CallbackSecret must be 16-256 characters of A-Z a-z 0-9 . _ ~ - (secret value hidden)');
  }
  const t = cfg.Bamboo.AuthToken;
  if (!t) return;
  if (/\s/.test(t)) throw new ConfigError('config: Bamboo.AuthToken must not contain spaces (secret value hidden)');
  if (Object.prototype.hasOwnProperty.call(cfg.Bamboo.AuthTokens, DEFAULT_TOKEN_NAME)) {
    throw new ConfigError(`config: Bamboo.AuthTokens has an entry named "${DEFAULT_TOKEN_NAME}", the name Bamboo.AuthToken goes by; rename it or drop Bamboo.AuthToken`);
  }
  const twin = Object.entries(cfg.Bamboo.AuthTokens).find(([, v]) => v === t);
  if (twin) throw new ConfigError(`config: Bamboo.AuthToken is the same as the token named ${JSON.stringify(twin[0])} in Bamboo.AuthTokens; give each credential its own token`);
}

/** A ZeroMQ CURVE key in Z85 text: 40 characters of its alphabet. */
const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

function validateCurve(cfg: Config): void {
  const z = cfg.ZeroMQ;
  if (Boolean(z.CurveSecretKey) !== Boolean(z.CurvePublicKey)) {
    throw new ConfigError('config: ZeroMQ.CurveSecretKey and ZeroMQ.CurvePublicKey go together (`bamboo keygen` makes a pair)');
  }
  if (z.CurveClientKeys && !z.CurveSecretKey) {
    throw new ConfigError('config: ZeroMQ.CurveClientKeys needs CURVE on: set ZeroMQ.CurveSecretKey and ZeroMQ.CurvePublicKey');
  }
  if (z.CurveSecretKey && !Z85_KEY.test(z.CurveSecretKey)) {
    throw new ConfigError('config: ZeroMQ.CurveSecretKey must be a Z85 CURVE key of 40 characters (secret value hidden)');
  }
  for (const key of ['CurvePublicKey', 'CurveServerKeys', 'CurveClientKeys'] as const) {
    for (const k of key === 'CurvePublicKey' ? (z[key] ? [z[key]] : []) : curveKeyList(z[key])) {
      if (!Z85_KEY.test(k)) throw new ConfigError(`config: ZeroMQ.${key} must hold Z85 CURVE public keys of 40 characters, got ${JSON.stringify(k)}`);
    }
  }
}

function deepFreeze<T>(o: T): Readonly<T> {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** HTTPS needs a certificate directory and a default certificate named in it. */
function validateHttps(cfg: Config): void {
  const h = cfg.HAProxy;
  if (!h.HttpsBind.trim()) return;
  if (!h.CertDir.trim()) throw new ConfigError('config: HAProxy.CertDir must name the certificate directory when HAProxy.HttpsBind is set');
  if (!CERT_NAME.test(h.DefaultCert)) {
    throw new ConfigError(`config: HAProxy.DefaultCert must name a certificate of HAProxy.CertDir (letters, digits, . _ -; no path) when HAProxy.HttpsBind is set, got ${JSON.stringify(h.DefaultCert.slice(0, 60))}`);
  }
}
