/**
 * Configuration: Bamboo's JSON file format and env overrides, plus the keys this project adds.
 *
 * One schema (SCHEMA below) yields the defaults, the env overrides, the validation and the reference
 * table in docs/configuration.md, so they cannot drift. Precedence: defaults < JSON file < env < CLI
 * flags. The result is validated once and frozen. Any problem throws a ConfigError whose message is one
 * line naming the key and where the value came from; secret values never appear in it. This module
 * holds the schema, the config's type and the docs table; loading is config-load.ts, the values derived
 * from a loaded config config-views.ts, its redaction config-redact.ts.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type FieldType = 'string' | 'boolean' | 'integer' | 'enum' | 'secrets';

export interface FieldSpec {
  /** Dotted JSON path, Bamboo's spelling (e.g. `Marathon.Endpoint`). */
  key: string;
  type: FieldType;
  /** `secrets` fields (a JSON object of name -> secret) default to `{}`, written here as `''`. */
  default: string | number | boolean;
  /** Environment variable that overrides the file. */
  env?: string;
  /** Never logged, never echoed in an error. */
  secret?: boolean;
  /** Allowed values for `enum`. */
  values?: readonly string[];
  /** Inclusive bounds for integers. */
  min?: number;
  max?: number;
  /** Which process reads it. */
  used: 'api' | 'worker' | 'both';
  /** True for keys Bamboo (Go) already had. */
  bamboo?: boolean;
  doc: string;
}

/** The project root (where package.json and templates/ live), whether running from sources or dist/. */
export const PROJECT_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      readFileSync(join(dir, 'package.json'));
      return dir;
    } catch {
      dir = dirname(dir);
    }
  }
  return process.cwd();
})();

export const DEFAULT_TEMPLATE_PATH = join(PROJECT_ROOT, 'templates', 'haproxy.cfg.liquid');

export const SCHEMA: readonly FieldSpec[] = [
  // --- Marathon -------------------------------------------------------------------------------
  { key: 'Marathon.Endpoint', type: 'string', default: 'http://localhost:8080', env: 'MARATHON_ENDPOINT', used: 'api', bamboo: true,
    doc: 'Marathon base URLs, comma-separated; tried in order, failing over to the next.' },
  { key: 'Marathon.User', type: 'string', default: '', env: 'MARATHON_USER', used: 'api', bamboo: true,
    doc: 'Basic-auth user for Marathon (empty: no auth).' },
  { key: 'Marathon.Password', type: 'string', default: '', env: 'MARATHON_PASSWORD', secret: true, used: 'api', bamboo: true,
    doc: 'Basic-auth password for Marathon. Secret: never logged.' },
  { key: 'Marathon.UseEventStream', type: 'boolean', default: false, env: 'MARATHON_USE_EVENT_STREAM', used: 'api', bamboo: true,
    doc: 'true: read the /v2/events SSE stream (Marathon 1.5+; one api copy at a time, elected in ZooKeeper). false: register Bamboo.Endpoint as an http_callback subscriber.' },
  { key: 'Marathon.TimeoutMs', type: 'integer', default: 5000, env: 'MARATHON_TIMEOUT_MS', min: 100, max: 600000, used: 'api',
    doc: 'Timeout of each Marathon request (connect + response), per endpoint.' },
  { key: 'Marathon.StreamIdleTimeoutMs', type: 'integer', default: 30000, env: 'MARATHON_STREAM_IDLE_TIMEOUT_MS', min: 1000, max: 600000, used: 'api',
    doc: 'An event stream silent this long is treated as dead and reopened (Marathon sends a heartbeat every 10 s).' },
  { key: 'Marathon.FetchDebounceMs', type: 'integer', default: 20, env: 'MARATHON_FETCH_DEBOUNCE_MS', min: 0, max: 60000, used: 'api',
    doc: 'Wait before a follow-up fetch. A routing event with no fetch in flight and none started within Marathon.MinFetchIntervalMs is fetched at once; any other waits for one more /v2/apps fetch, started this long after the fetch in flight ended (or after the event) and never sooner than MinFetchIntervalMs after the previous start, so the rest of a burst rides on it. At most one fetch is in flight and one pending.' },
  { key: 'Marathon.MinFetchIntervalMs', type: 'integer', default: 250, env: 'MARATHON_MIN_FETCH_INTERVAL_MS', min: 0, max: 600000, used: 'api',
    doc: 'Fetch rate: the least time between the starts of two /v2/apps fetches of one api copy, whatever the event rate (bounds the load on Marathon during event storms).' },
  { key: 'Marathon.PerAppFetchMax', type: 'integer', default: 10, env: 'MARATHON_PER_APP_FETCH_MAX', min: 0, max: 1000, used: 'api',
    doc: 'A fetch whose events named at most this many apps in all asks Marathon for those apps only (GET /v2/apps/{id}, one request each) and changes only them in the stored snapshot; more, or an event naming no app, fetches the whole /v2/apps. Startup, resyncs and retries always fetch the whole list, and only the whole list removes an app (a 404 for one is confirmed by it). 0: always the whole list.' },
  { key: 'Marathon.ResyncIntervalMs', type: 'integer', default: 60000, env: 'MARATHON_RESYNC_INTERVAL_MS', min: 0, max: 86400000, used: 'api',
    doc: 'Fetch /v2/apps at least this often even without events (0: never), healing missed events.' },
  { key: 'Marathon.ShrinkGuardPercent', type: 'integer', default: 50, env: 'MARATHON_SHRINK_GUARD_PERCENT', min: 0, max: 100, used: 'api',
    doc: 'Shrink guard: a /v2/apps answer with more than this share fewer apps, or fewer tasks, than the stored snapshot (or than the largest snapshot stored within Marathon.ShrinkGuardHoldMs) is held back: the previous snapshot keeps being served until the answer has stayed for ShrinkGuardHoldMs or an operator confirms it (POST /api/marathon/held/confirm). 100: only empty answers are held. An empty answer after a non-empty snapshot is always held.' },
  { key: 'Marathon.ShrinkGuardMinDrop', type: 'integer', default: 5, env: 'MARATHON_SHRINK_GUARD_MIN_DROP', min: 1, max: 1000000, used: 'api',
    doc: 'Shrink guard: a drop smaller than this many apps (or tasks) is applied at once whatever its share, so normal operations on small clusters (deleting 1 of 3 apps) are not held. Does not apply to empty answers.' },
  { key: 'Marathon.ShrinkGuardHoldMs', type: 'integer', default: 300000, env: 'MARATHON_SHRINK_GUARD_HOLD_MS', min: 0, max: 86400000, used: 'api',
    doc: 'Shrink guard: how long (default 5 minutes) Marathon must keep giving shrunken answers before the latest one applies by itself; a normal answer in between drops the held one. 0: applied on the next fetch that still shrinks (seen twice).' },

  // --- Bamboo (api) --------------------------------------------------------------------------
  { key: 'Bamboo.Endpoint', type: 'string', default: 'http://localhost:8000', env: 'BAMBOO_ENDPOINT', used: 'api', bamboo: true,
    doc: 'The URL Marathon posts callbacks to (callback mode). One stable, load-balanced name for the whole api tier.' },
  { key: 'Bamboo.Zookeeper.Host', type: 'string', default: 'localhost:2181', env: 'BAMBOO_ZK_HOST', used: 'both', bamboo: true,
    doc: 'ZooKeeper connection string (host:port,host:port).' },
  { key: 'Bamboo.Zookeeper.Path', type: 'string', default: '/marathon-haproxy/state', env: 'BAMBOO_ZK_PATH', used: 'both', bamboo: true,
    doc: 'Where service records (one znode per app, Bamboo V2 JSON) are stored; created if missing.' },
  { key: 'Bamboo.Zookeeper.ReportingDelay', type: 'integer', default: 5, env: 'BAMBOO_ZK_REPORTING_DELAY', min: 0, max: 3600, used: 'both', bamboo: true,
    doc: 'Seconds. Kept for compatibility with Bamboo config files; bounds how long a ZooKeeper change may wait before it is acted on.' },
  { key: 'Bamboo.Zookeeper.ControlPath', type: 'string', default: '/bamboo-ts', env: 'BAMBOO_ZK_CONTROL_PATH', used: 'both',
    doc: 'Where this project keeps its own znodes: Marathon snapshots, publisher and worker registrations, the stream leader election.' },
  { key: 'Bamboo.Zookeeper.SessionTimeoutMs', type: 'integer', default: 10000, env: 'BAMBOO_ZK_SESSION_TIMEOUT_MS', min: 2000, max: 120000, used: 'both',
    doc: 'ZooKeeper session timeout; ephemeral registrations vanish this long after a process dies.' },
  { key: 'Bamboo.Zookeeper.Digest', type: 'string', default: '', env: 'BAMBOO_ZK_DIGEST', secret: true, used: 'both',
    doc: 'user:password for ZooKeeper digest auth: every node created gets the digest ACL (no access for anyone else), and at start-up the api gives it to existing nodes under Path and ControlPath that lack it, such as rules an older Bamboo created world-writable (docs/deployment.md, "Securing ZooKeeper"). Secret: never logged.' },
  { key: 'Bamboo.AuthToken', type: 'string', default: '', env: 'BAMBOO_AUTH_TOKEN', secret: true, used: 'api',
    doc: 'A single bearer token (Bamboo\'s key), the credential named `default`: required for writes and for unredacted /api/state, like the tokens of Bamboo.AuthTokens. Without any token an api on a non-loopback bind refuses to start (see Bamboo.AllowAnonymousWrites). Secret: never logged.' },
  { key: 'Bamboo.AuthTokens', type: 'secrets', default: '', env: 'BAMBOO_AUTH_TOKENS', secret: true, used: 'api',
    doc: 'Named bearer tokens: a JSON object `{"name": "token", ...}` (env: the same JSON text). Names are 1-64 of `A-Z a-z 0-9 _ . -`; tokens 16-512 printable ASCII characters without spaces, each used once. A write is attributed to its token\'s name (`Bamboo.AuthToken` is the name `default`). Secret: never logged.' },
  { key: 'Bamboo.AllowAnonymousWrites', type: 'boolean', default: false, env: 'BAMBOO_ALLOW_ANONYMOUS_WRITES', used: 'api',
    doc: 'Opt-out: let an api listening beyond loopback start without Bamboo.AuthToken(s), so anyone who reaches it can change rules (Bamboo\'s behaviour). Logged as a warning at start and shown in /status. Unredacted /api/state still needs a token.' },
  { key: 'Bamboo.CallbackSecret', type: 'string', default: '', env: 'BAMBOO_CALLBACK_SECRET', secret: true, used: 'api',
    doc: 'Shared secret for Marathon callbacks: the callback URL registered with Marathon carries `?secret=<it>`, and a callback without it is a 403 (empty: callbacks are open). Secret: never logged, hidden in /status.' },
  { key: 'Bamboo.WriteRateBurst', type: 'integer', default: 120, env: 'BAMBOO_WRITE_RATE_BURST', min: 1, max: 1000000, used: 'api',
    doc: 'Rule writes (POST/PUT/DELETE) one credential (or, anonymous, one client address) may make at once; then Bamboo.WriteRatePerMinute refills. Over it: 429 with Retry-After.' },
  { key: 'Bamboo.WriteRatePerMinute', type: 'integer', default: 600, env: 'BAMBOO_WRITE_RATE_PER_MINUTE', min: 0, max: 6000000, used: 'api',
    doc: 'Sustained rule writes per minute per credential (anonymous: per client address), per api copy (0: no limit).' },
  { key: 'Bamboo.HttpHeadersTimeoutMs', type: 'integer', default: 10000, env: 'BAMBOO_HTTP_HEADERS_TIMEOUT_MS', min: 100, max: 600000, used: 'both',
    doc: 'A client must send its request headers within this long, or its connection is closed (api and worker HTTP servers).' },
  { key: 'Bamboo.HttpRequestTimeoutMs', type: 'integer', default: 30000, env: 'BAMBOO_HTTP_REQUEST_TIMEOUT_MS', min: 100, max: 3600000, used: 'both',
    doc: 'A client must send its whole request (headers and body) within this long, or its connection is closed; a connection silent this long is closed too: slow clients cannot hold connections and memory (api and worker HTTP servers).' },
  { key: 'Bamboo.MaxBodyBytes', type: 'integer', default: 65536, env: 'BAMBOO_MAX_BODY_BYTES', min: 1024, max: 16777216, used: 'api',
    doc: 'Largest request body accepted (except Marathon callbacks, which get 256 times this: a deployment event lists every app; they are scanned as they arrive, never held in memory); larger gets 413.' },
  { key: 'Bamboo.RuleCheck', type: 'enum', default: 'haproxy', env: 'BAMBOO_RULE_CHECK', values: ['haproxy', 'off'], used: 'api',
    doc: '`haproxy`: a rule write is acknowledged only after `haproxy -c` (HAProxy.Binary) accepted the rule in a probe config; a rejected rule is a 400, and while HAProxy cannot be run writes are a 503. `off`: rules are stored unchecked (for api hosts without HAProxy; workers still quarantine bad rules).' },
  { key: 'Bamboo.RuleCheckTimeoutMs', type: 'integer', default: 10000, env: 'BAMBOO_RULE_CHECK_TIMEOUT_MS', min: 100, max: 600000, used: 'api',
    doc: 'Timeout of one `haproxy -c` rule check; a check that outlives it is killed and the write answered 503 (nothing stored).' },
  { key: 'Bamboo.TrustedProxies', type: 'string', default: '', env: 'BAMBOO_TRUSTED_PROXIES', used: 'api',
    doc: 'Addresses and CIDR blocks (comma-separated, e.g. `10.0.0.5, 10.1.0.0/16`) of the reverse proxies in front of the api whose `X-Forwarded-For` header is believed: the audit trail records the client they forwarded for beside the peer address. Empty: the header is never believed (the audit records the peer address only).' },
  // --- Audit trail of rule writes ---------------------------------------------------------------
  { key: 'Audit.MaxEntries', type: 'integer', default: 10000, env: 'BAMBOO_AUDIT_MAX_ENTRIES', min: 1, max: 20000, used: 'api',
    doc: 'Audit trail (GET /api/audit): how many entries are kept; older ones are pruned (oldest first) after writes and every minute. At most 20000: every copy lists the entries\' names in one ZooKeeper read, which must stay below its 1 MB packet limit.' },
  { key: 'Audit.MaxAgeHours', type: 'integer', default: 720, env: 'BAMBOO_AUDIT_MAX_AGE_HOURS', min: 1, max: 87600, used: 'api',
    doc: 'Audit trail: entries older than this many hours (default 30 days) are pruned, and never shown.' },

  // --- ZeroMQ (new) ---------------------------------------------------------------------------
  { key: 'ZeroMQ.PublishBind', type: 'string', default: 'tcp://0.0.0.0:5556', env: 'BAMBOO_ZMQ_BIND', used: 'api',
    doc: 'Where the api binds its ZeroMQ PUB socket. `tcp://127.0.0.1:*` picks a free port.' },
  { key: 'ZeroMQ.AdvertiseHost', type: 'string', default: '', env: 'BAMBOO_ZMQ_ADVERTISE_HOST', used: 'api',
    doc: 'Host name workers use to reach this api (registered in ZooKeeper). Empty: the bind host, or this machine\'s hostname for 0.0.0.0.' },
  { key: 'ZeroMQ.CurveSecretKey', type: 'string', default: '', env: 'BAMBOO_ZMQ_CURVE_SECRET_KEY', secret: true, used: 'both',
    doc: 'This process\'s ZeroMQ CURVE secret key (Z85, 40 characters; `bamboo keygen` makes a pair). On an api it turns CURVE on: workers then accept its hints only if they trust its public key, and hints are encrypted. On a worker, optional: its client key (default: a new one per start). Secret: never logged.' },
  { key: 'ZeroMQ.CurvePublicKey', type: 'string', default: '', env: 'BAMBOO_ZMQ_CURVE_PUBLIC_KEY', used: 'both',
    doc: 'The public key of ZeroMQ.CurveSecretKey (required with it). An api registers it in ZooKeeper with its address.' },
  { key: 'ZeroMQ.CurveServerKeys', type: 'string', default: '', env: 'BAMBOO_ZMQ_CURVE_SERVER_KEYS', used: 'worker',
    doc: 'Comma-separated public keys of the api copies this worker takes hints from. Set: the worker connects only to registered publishers with one of these keys, over CURVE, so a publisher that cannot prove the key sends it nothing. Empty: no CURVE; the worker takes hints from every registered publisher (they can only make it read ZooKeeper).' },
  { key: 'ZeroMQ.CurveClientKeys', type: 'string', default: '', env: 'BAMBOO_ZMQ_CURVE_CLIENT_KEYS', used: 'api',
    doc: 'With CURVE on: comma-separated public keys of the workers allowed to subscribe (their ZeroMQ.CurvePublicKey). Empty: any CURVE client may subscribe and read the hints (changed apps, env included).' },

  // --- HAProxy (worker) ------------------------------------------------------------------------
  { key: 'HAProxy.TemplatePath', type: 'string', default: DEFAULT_TEMPLATE_PATH, env: 'HAPROXY_TEMPLATE_PATH', used: 'worker', bamboo: true,
    doc: 'Liquid template rendered into haproxy.cfg (default: the shipped templates/haproxy.cfg.liquid).' },
  { key: 'HAProxy.OutputPath', type: 'string', default: '/etc/haproxy/haproxy.cfg', env: 'HAPROXY_OUTPUT_PATH', used: 'worker', bamboo: true,
    doc: 'The haproxy.cfg written (temp file + rename in the same directory).' },
  { key: 'HAProxy.ReloadCommand', type: 'string', default: '', env: 'HAPROXY_RELOAD_CMD', used: 'worker', bamboo: true,
    doc: 'Shell command that reloads HAProxy (Bamboo\'s mode). Empty: the worker runs HAProxy itself in master-worker mode (managed mode).' },
  { key: 'HAProxy.ReloadValidationCommand', type: 'string', default: '', env: 'HAPROXY_RELOAD_VALIDATION_CMD', used: 'worker', bamboo: true,
    doc: 'Shell command validating a candidate config; `{{.}}` or `{}` is replaced by the temp file path. Empty: built-in `haproxy -c -f <temp>`.' },
  { key: 'HAProxy.ReloadCleanupCommand', type: 'string', default: '', env: 'HAPROXY_RELOAD_CLEANUP_CMD', used: 'worker', bamboo: true,
    doc: 'Shell command run after each successful reload (empty: none).' },
  { key: 'HAProxy.Binary', type: 'string', default: 'haproxy', env: 'HAPROXY_BINARY', used: 'both',
    doc: 'HAProxy executable used for validation and managed mode (worker) and for rule checks (api, Bamboo.RuleCheck).' },
  { key: 'HAProxy.CommandTimeoutMs', type: 'integer', default: 30000, env: 'HAPROXY_COMMAND_TIMEOUT_MS', min: 100, max: 600000, used: 'worker',
    doc: 'Timeout for validation, reload and cleanup commands; a hung command is killed and counted as failed.' },
  { key: 'HAProxy.ValidationCpuSeconds', type: 'integer', default: 10, env: 'HAPROXY_VALIDATION_CPU_SECONDS', min: 0, max: 3600, used: 'worker',
    doc: 'CPU-time limit of each validation (built-in `haproxy -c` or ReloadValidationCommand, through `prlimit` from util-linux; 0: none). A validation it stops is `invalid` with a reason naming the limit. `haproxy -c` of 10,000 apps (3 tasks each) takes about 1 s of CPU.' },
  { key: 'HAProxy.ValidationMemoryMB', type: 'integer', default: 2048, env: 'HAPROXY_VALIDATION_MEMORY_MB', min: 0, max: 1048576, used: 'worker',
    doc: 'Address-space limit (MiB) of each validation (0: none). `haproxy -c` of 10,000 apps (3 tasks each) needs about 500 MiB with 2 threads and 800 MiB with 64 (HAProxy sizes per-thread structures by the number of CPUs).' },
  { key: 'HAProxy.ValidateBeforeReload', type: 'boolean', default: false, env: 'HAPROXY_VALIDATE_BEFORE_RELOAD', used: 'worker',
    doc: 'Managed mode: validate every candidate (`haproxy -c` under the limits above) before its reload, so HAProxy parses each structural change twice. Off: the master\'s reload is the validation (it keeps the old workers serving a config it cannot load, haproxy.cfg is put back, and `haproxy -c` then finds the app to quarantine); a candidate with a new line that may load a file (pattern file, map, certificate, Lua) is still validated first, under the limits. Command mode and a set ReloadValidationCommand always validate first. docs/worker.md, "Validation".' },
  { key: 'HAProxy.PassEnv', type: 'string', default: '', env: 'HAPROXY_PASS_ENV', used: 'worker',
    doc: 'Names of environment variables (comma- or space-separated) passed to HAProxy and to the validation, reload and cleanup commands, for a template or command that needs them. Everything else of the worker\'s environment is withheld: they get PATH and these only. Names of secret settings (e.g. BAMBOO_ZK_DIGEST) are refused.' },
  { key: 'HAProxy.RuntimeDir', type: 'string', default: '', env: 'HAPROXY_RUNTIME_DIR', used: 'worker',
    doc: 'Directory of HAProxy\'s sockets and pidfile (managed mode: pidfile and master socket; the default admin socket in both modes), apart from the config, so a full or read-only config directory cannot stop a restarted HAProxy from binding them. Use a tmpfs such as /run/bamboo-worker (the packaged units and image do). Empty: the directory of OutputPath. Created at start.' },
  { key: 'HAProxy.HttpBind', type: 'string', default: '*:80', env: 'HAPROXY_HTTP_BIND', used: 'worker',
    doc: 'Bind address of the HTTP frontend in the default template.' },
  { key: 'HAProxy.HttpsBind', type: 'string', default: '', env: 'HAPROXY_HTTPS_BIND', used: 'worker',
    doc: 'Bind address of the HTTPS listener of the default template (e.g. `*:443`; empty: no HTTPS). It is a second `bind` of the HTTP frontend, so every app is served on both with the same rules; TLS ends there with the certificate chosen by SNI from HAProxy.CertDir. Needs HAProxy.CertDir and HAProxy.DefaultCert, and the admin socket (managed mode, or HAProxy.AdminSocket in command mode). Its port belongs to the edge (port policy). See docs/worker.md, "TLS".' },
  { key: 'HAProxy.CertDir', type: 'string', default: '', env: 'HAPROXY_CERT_DIR', used: 'worker',
    doc: 'Directory of certificates for HAProxy.HttpsBind: `<name>.pem` bundles (certificate, its private key, optionally the chain) and certbot-style `<name>/fullchain.pem` + `<name>/privkey.pem` directories (symlinks followed). Watched: a certificate added, renewed or removed is applied through the Runtime API without a reload. A file that is not a valid bundle is refused alone (worker status `tls`). Private keys stay on the worker host.' },
  { key: 'HAProxy.DefaultCert', type: 'string', default: '', env: 'HAPROXY_DEFAULT_CERT', used: 'worker',
    doc: 'Name (file name without `.pem`, or directory name) of the certificate in HAProxy.CertDir served to clients that send no SNI or a name no certificate covers. Required with HAProxy.HttpsBind.' },
  { key: 'HAProxy.HstsMaxAge', type: 'integer', default: 0, env: 'HAPROXY_HSTS_MAX_AGE', min: 0, max: 63072000, used: 'worker',
    doc: 'With HTTPS on: add `Strict-Transport-Security: max-age=<this>` to every response sent over HTTPS (0: no HSTS header).' },
  { key: 'HAProxy.CertRescanMs', type: 'integer', default: 60000, env: 'HAPROXY_CERT_RESCAN_MS', min: 0, max: 86400000, used: 'worker',
    doc: 'With HTTPS on: re-read HAProxy.CertDir at least this often besides watching it (a watch can miss changes on network file systems or through symlinked directories; 0: watch only).' },
  { key: 'HAProxy.StatsBind', type: 'string', default: '', env: 'HAPROXY_STATS_BIND', used: 'worker',
    doc: 'Bind address of the stats page (empty: no stats page).' },
  { key: 'HAProxy.StatsUser', type: 'string', default: '', env: 'HAPROXY_STATS_USER', used: 'worker',
    doc: 'Stats page user; the page is only rendered when user and password are both set.' },
  { key: 'HAProxy.StatsPassword', type: 'string', default: '', env: 'HAPROXY_STATS_PASSWORD', secret: true, used: 'worker',
    doc: 'Stats page password. Secret: never logged (it is written into haproxy.cfg, which should be mode 0640).' },
  { key: 'HAProxy.PrometheusExporter', type: 'boolean', default: true, env: 'HAPROXY_PROMETHEUS_EXPORTER', used: 'worker',
    doc: 'Serve HAProxy\'s built-in Prometheus exporter at `/metrics` on the stats listener of the default template (per-frontend, backend and server traffic as `haproxy_*`; same user and password as the stats page). Only when the stats page is rendered (StatsBind, StatsUser, StatsPassword set); needs an HAProxy built with the exporter (`haproxy -vv` lists `prometheus-exporter`; Debian\'s and the official images do). See docs/metrics.md.' },
  { key: 'HAProxy.AdminSocket', type: 'string', default: '', env: 'HAPROXY_ADMIN_SOCKET', used: 'worker',
    doc: 'Path of HAProxy\'s admin socket (stats socket with expose-fd listeners). Empty: <RuntimeDir>/haproxy.sock.' },
  { key: 'HAProxy.BindOptions', type: 'string', default: '', env: 'HAPROXY_BIND_OPTIONS', used: 'worker',
    doc: 'Extra options appended to every bind line of the default template (e.g. `noreuseport`).' },
  { key: 'HAProxy.TcpPortRange', type: 'string', default: '10000-65535', env: 'HAPROXY_TCP_PORT_RANGE', used: 'worker',
    doc: 'Ports an app may make HAProxy listen on (`BAMBOO_TCP_PORT`, extra service ports, any `bind` in an app\'s fragment), as `min-max`. An app binding a port outside it, a port the edge binds (HAProxy.HttpBind, HAProxy.HttpsBind, HAProxy.StatsBind, any bind the template renders outside app fragments), or a port another app holds is quarantined (docs/worker.md, "Port policy"). The default keeps Marathon\'s service ports (10000-20000) and the ephemeral range, and keeps well-known and privileged ports (80, 443, 8080, ...) for the edge.' },
  { key: 'HAProxy.RuntimeApi', type: 'boolean', default: true, env: 'HAPROXY_RUNTIME_API', used: 'both',
    doc: 'Apply changes that touch only servers (task started, killed, moved, health flipped) through the admin socket, without a reload; anything else reloads. Managed mode uses the admin socket always; command mode only when HAProxy.AdminSocket is set. A failed or unverified runtime change falls back to a reload.' },
  { key: 'HAProxy.ServerSlotHeadroom', type: 'integer', default: 50, env: 'HAPROXY_SERVER_SLOT_HEADROOM', min: 0, max: 1000, used: 'both',
    doc: 'Spare server slots per backend that cannot add servers at runtime (every backend when HAProxy.DynamicServers is off), in percent of its tasks: a backend gets tasks + max(2, ceil(tasks * headroom/100)) slots (3 tasks: 5), and keeps them while its tasks fit and they are at most 4 times that. A scale beyond the slots reloads (and re-sizes). Every slot is a server HAProxy builds on each reload and check: more headroom turns more deployments into runtime changes and makes every reload slower (docs/templates.md, "Cost of validation").' },
  { key: 'HAProxy.DynamicServers', type: 'boolean', default: true, env: 'HAPROXY_DYNAMIC_SERVERS', used: 'both',
    doc: 'With the Runtime API on: a task beyond its backend\'s slots is added with `add server` (HAProxy 2.6 dynamic servers, with the options the config gives its line) instead of a reload, and the same line is written into the config so a reload or restart keeps it. Backends that can take it (no STICKY, a balance of roundrobin, leastconn, first or random) then get one server line per task and no spare slot; the others keep HAProxy.ServerSlotHeadroom. Servers are never deleted at runtime: a task that goes away leaves a free slot until a reload re-sizes the backend. Off: every backend gets spare slots and a scale beyond them reloads (docs/worker.md, "Dynamic servers").' },
  { key: 'HAProxy.DrainTimeoutMs', type: 'integer', default: 10000, env: 'HAPROXY_DRAIN_TIMEOUT_MS', min: 0, max: 600000, used: 'worker',
    doc: 'A server leaving rotation at runtime is drained (no new requests) and put in maintenance once its requests in flight finish, or after this long.' },
  { key: 'HAProxy.ServerStateFile', type: 'string', default: '', env: 'HAPROXY_SERVER_STATE_FILE', used: 'worker',
    doc: 'HAProxy\'s server-state-file, written by the worker before each reload so health and maintenance survive it. Empty: <OutputPath dir>/haproxy.state.' },

  // --- Worker (new) ----------------------------------------------------------------------------
  { key: 'Worker.Name', type: 'string', default: '', env: 'BAMBOO_WORKER_NAME', used: 'worker',
    doc: 'Name of this worker in the fleet view (empty: hostname).' },
  { key: 'Worker.DebounceMs', type: 'integer', default: 20, env: 'BAMBOO_WORKER_DEBOUNCE_MS', min: 0, max: 60000, used: 'worker',
    doc: 'Wait before update. A hint that finds the worker idle (no reconcile running or ended within this long) is reconciled at once; hints that arrive while one runs, or sooner, wait this long after the first of them, so the rest of a burst is read once. Worker.MinUpdateIntervalMs still applies.' },
  { key: 'Worker.MinUpdateIntervalMs', type: 'integer', default: 100, env: 'BAMBOO_WORKER_MIN_UPDATE_INTERVAL_MS', min: 0, max: 600000, used: 'worker',
    doc: 'Update rate: the least time between the starts of two reconciles.' },
  { key: 'Worker.MinReloadIntervalMs', type: 'integer', default: 500, env: 'BAMBOO_WORKER_MIN_RELOAD_INTERVAL_MS', min: 0, max: 600000, used: 'worker',
    doc: 'Minimum reload interval: the least time between two HAProxy reloads.' },
  { key: 'Worker.MaxReloadsPerMinute', type: 'integer', default: 30, env: 'BAMBOO_WORKER_MAX_RELOADS_PER_MINUTE', min: 0, max: 10000, used: 'worker',
    doc: 'Reload storm bound: at most this many HAProxy reloads in any 60 s (0: no bound). A reload over it waits (shown as reloadWait in /status); Runtime API changes do not count.' },
  { key: 'Worker.MaxOldGenerations', type: 'integer', default: 10, env: 'BAMBOO_WORKER_MAX_OLD_GENERATIONS', min: 0, max: 1000, used: 'worker',
    doc: 'Managed mode: a reload waits while this many old HAProxy generations (workers replaced by earlier reloads, still finishing long connections; counted with the master CLI show proc) are alive (0: no bound). See Worker.OldGenerationsWaitMs.' },
  { key: 'Worker.OldGenerationsWaitMs', type: 'integer', default: 60000, env: 'BAMBOO_WORKER_OLD_GENERATIONS_WAIT_MS', min: 0, max: 3600000, used: 'worker',
    doc: 'The longest a reload waits for old generations to exit before it goes ahead anyway (updates are never frozen by connections that stay open). The shipped template\'s hard-stop-after 60s ends old generations within this time.' },
  { key: 'Worker.ResyncIntervalMs', type: 'integer', default: 30000, env: 'BAMBOO_WORKER_RESYNC_INTERVAL_MS', min: 0, max: 86400000, used: 'worker',
    doc: 'Full reconcile at least this often even if every message is lost (0: never).' },
  { key: 'Worker.Groups', type: 'string', default: '', env: 'BAMBOO_WORKER_GROUPS', used: 'worker',
    doc: 'Load-balancer groups this worker serves, comma-separated (marathon-lb\'s --group): only apps whose HAPROXY_GROUP names one of them are in its config; an app without HAPROXY_GROUP only when the list has *. Empty: every app (Bamboo). See docs/labels.md.' },

  // --- Labels (new) ----------------------------------------------------------------------------
  { key: 'Labels.AllowedDomains', type: 'string', default: '', env: 'BAMBOO_LABELS_ALLOWED_DOMAINS', used: 'both',
    doc: 'Hosts each load-balancer group\'s labels may claim: a JSON object of group -> list of domains, e.g. {"external":["shop.example.com",".team-a.example.com"]} (a leading . allows every host under it). A host outside its app\'s groups\' lists is ignored with a reason; apps in no listed group claim none. Empty: no restriction. Rules (the api) are not confined. Set the same value on api and workers. See docs/labels.md.' },

  // --- Fleet (new) -----------------------------------------------------------------------------
  { key: 'Fleet.StaleAfterMs', type: 'integer', default: 60000, env: 'BAMBOO_FLEET_STALE_AFTER_MS', min: 1000, max: 3600000, used: 'both',
    doc: 'A worker whose status record has not changed for this long (seen by the api on its own monotonic clock) while its ZooKeeper session lasts is shown as stale. Workers rewrite their record at least every third of it (heartbeat), so a live one never reaches it.' },
  { key: 'Fleet.GoneRetentionMs', type: 'integer', default: 86400000, env: 'BAMBOO_FLEET_GONE_RETENTION_MS', min: 1000, max: 2592000000, used: 'api',
    doc: 'How long a worker that stopped (its status record gone) stays in the fleet view as gone, with when it was last seen and what it last ran; older records are removed (default: one day).' },
  { key: 'Fleet.SeenWriteIntervalMs', type: 'integer', default: 60000, env: 'BAMBOO_FLEET_SEEN_WRITE_INTERVAL_MS', min: 1000, max: 3600000, used: 'worker',
    doc: 'A worker rewrites its persistent last-seen record (what it runs, for the fleet view after it stops) at most this often, and also after each config it applies and when it stops. A crashed worker is shown last seen up to this long before it died.' },

  // --- StatsD ----------------------------------------------------------------------------------
  { key: 'StatsD.Enabled', type: 'boolean', default: false, env: 'STATSD_ENABLED', used: 'both', bamboo: true,
    doc: 'Send metrics to StatsD.' },
  { key: 'StatsD.Host', type: 'string', default: 'localhost:8125', env: 'STATSD_HOST', used: 'both', bamboo: true,
    doc: 'StatsD host:port (UDP).' },
  { key: 'StatsD.Prefix', type: 'string', default: 'bamboo-server.development.', env: 'STATSD_PREFIX', used: 'both', bamboo: true,
    doc: 'Prefix of every metric name.' },

  // --- Logging ---------------------------------------------------------------------------------
  { key: 'Log.Level', type: 'enum', default: 'info', env: 'BAMBOO_LOG_LEVEL', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], used: 'both',
    doc: 'Least severe level logged.' },
  { key: 'Log.Format', type: 'enum', default: 'auto', env: 'BAMBOO_LOG_FORMAT', values: ['auto', 'pretty', 'json'], used: 'both',
    doc: 'Log line format: `json` (one JSON object a line, for log shippers), `pretty` (human-readable lines for a terminal), or `auto`: pretty when stderr is a terminal, JSON otherwise and always with `--log FILE`. Secrets are stripped in both. Flag: `--log-format`.' },
] as const;

/** The frozen configuration: the same nesting as the JSON file. */
export interface Config {
  Marathon: {
    Endpoint: string; User: string; Password: string; UseEventStream: boolean;
    TimeoutMs: number; StreamIdleTimeoutMs: number; FetchDebounceMs: number; MinFetchIntervalMs: number; PerAppFetchMax: number; ResyncIntervalMs: number;
    ShrinkGuardPercent: number; ShrinkGuardMinDrop: number; ShrinkGuardHoldMs: number;
  };
  Bamboo: {
    Endpoint: string;
    Zookeeper: { Host: string; Path: string; ReportingDelay: number; ControlPath: string; SessionTimeoutMs: number; Digest: string };
    AuthToken: string;
    AuthTokens: Record<string, string>;
    AllowAnonymousWrites: boolean;
    CallbackSecret: string;
    WriteRateBurst: number;
    WriteRatePerMinute: number;
    HttpHeadersTimeoutMs: number;
    HttpRequestTimeoutMs: number;
    MaxBodyBytes: number;
    RuleCheck: 'haproxy' | 'off';
    RuleCheckTimeoutMs: number;
    TrustedProxies: string;
  };
  Audit: { MaxEntries: number; MaxAgeHours: number };
  ZeroMQ: { PublishBind: string; AdvertiseHost: string; CurveSecretKey: string; CurvePublicKey: string; CurveServerKeys: string; CurveClientKeys: string };
  HAProxy: {
    TemplatePath: string; OutputPath: string; ReloadCommand: string; ReloadValidationCommand: string;
    ReloadCleanupCommand: string; Binary: string; CommandTimeoutMs: number; ValidationCpuSeconds: number; ValidationMemoryMB: number;
    ValidateBeforeReload: boolean;
    PassEnv: string; RuntimeDir: string; HttpBind: string; StatsBind: string;
    StatsUser: string; StatsPassword: string; AdminSocket: string; BindOptions: string; TcpPortRange: string;
    RuntimeApi: boolean; ServerSlotHeadroom: number; DynamicServers: boolean; DrainTimeoutMs: number; ServerStateFile: string;
    PrometheusExporter: boolean; HttpsBind: string; CertDir: string; DefaultCert: string; HstsMaxAge: number; CertRescanMs: number;
  };
  Worker: {
    Name: string; DebounceMs: number; MinUpdateIntervalMs: number; MinReloadIntervalMs: number; ResyncIntervalMs: number;
    MaxReloadsPerMinute: number; MaxOldGenerations: number; OldGenerationsWaitMs: number; Groups: string;
  };
  Fleet: { StaleAfterMs: number; GoneRetentionMs: number; SeenWriteIntervalMs: number };
  Labels: { AllowedDomains: string };
  StatsD: { Enabled: boolean; Host: string; Prefix: string };
  Log: { Level: string; Format: 'auto' | 'pretty' | 'json' };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let obj = target;
  for (const p of parts.slice(0, -1)) {
    if (typeof obj[p] !== 'object' || obj[p] === null) obj[p] = {};
    obj = obj[p] as Record<string, unknown>;
  }
  obj[parts[parts.length - 1]] = value;
}

export function getPath(source: Record<string, unknown>, key: string): unknown {
  let obj: unknown = source;
  for (const p of key.split('.')) {
    if (typeof obj !== 'object' || obj === null) return undefined;
    obj = (obj as Record<string, unknown>)[p];
  }
  return obj;
}

/** The markdown reference table (docs/configuration.md is generated from and checked against this). */
export function configReferenceTable(): string {
  const rows = SCHEMA.map((f) => {
    const def = f.key === 'HAProxy.TemplatePath' ? '`templates/haproxy.cfg.liquid` (shipped)' : f.type === 'secrets' ? '`{}`' : f.default === '' ? '(empty)' : '`' + String(f.default) + '`';
    const type = f.type === 'enum' ? f.values!.join(' \\| ') : f.type === 'secrets' ? 'JSON object (name -> secret)' : f.type;
    return `| \`${f.key}\` | ${f.env ? '`' + f.env + '`' : ''} | ${type} | ${def} | ${f.used} | ${f.bamboo ? 'yes' : 'new'} | ${f.doc.replace(/\|/g, '\\|')} |`;
  });
  return ['| Key | Env | Type | Default | Used by | Bamboo | Meaning |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
}
