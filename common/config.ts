/**
 * Configuration: Bamboo's JSON file format and env overrides, plus the keys this project adds.
 *
 * One schema (SCHEMA below) yields the defaults, the env overrides, the validation and the reference
 * table in docs/configuration.md, so they cannot drift. Precedence: defaults < JSON file < env < CLI
 * flags. The result is validated once and frozen. Any problem throws a ConfigError whose message is one
 * line naming the key and where the value came from; secret values never appear in it.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePortRange } from './port-policy.js';

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
  { key: 'HAProxy.PassEnv', type: 'string', default: '', env: 'HAPROXY_PASS_ENV', used: 'worker',
    doc: 'Names of environment variables (comma- or space-separated) passed to HAProxy and to the validation, reload and cleanup commands, for a template or command that needs them. Everything else of the worker\'s environment is withheld: they get PATH and these only. Names of secret settings (e.g. BAMBOO_ZK_DIGEST) are refused.' },
  { key: 'HAProxy.RuntimeDir', type: 'string', default: '', env: 'HAPROXY_RUNTIME_DIR', used: 'worker',
    doc: 'Directory of HAProxy\'s sockets and pidfile (managed mode: pidfile and master socket; the default admin socket in both modes), apart from the config, so a full or read-only config directory cannot stop a restarted HAProxy from binding them. Use a tmpfs such as /run/bamboo-worker (the packaged units and image do). Empty: the directory of OutputPath. Created at start.' },
  { key: 'HAProxy.HttpBind', type: 'string', default: '*:80', env: 'HAPROXY_HTTP_BIND', used: 'worker',
    doc: 'Bind address of the HTTP frontend in the default template.' },
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
    doc: 'Ports an app may make HAProxy listen on (`BAMBOO_TCP_PORT`, extra service ports, any `bind` in an app\'s fragment), as `min-max`. An app binding a port outside it, a port the edge binds (HAProxy.HttpBind, HAProxy.StatsBind, any bind the template renders outside app fragments), or a port another app holds is quarantined (docs/worker.md, "Port policy"). The default keeps Marathon\'s service ports (10000-20000) and the ephemeral range, and keeps well-known and privileged ports (80, 443, 8080, ...) for the edge.' },
  { key: 'HAProxy.RuntimeApi', type: 'boolean', default: true, env: 'HAPROXY_RUNTIME_API', used: 'worker',
    doc: 'Apply changes that touch only servers (task started, killed, moved, health flipped) through the admin socket, without a reload; anything else reloads. Managed mode uses the admin socket always; command mode only when HAProxy.AdminSocket is set. A failed or unverified runtime change falls back to a reload.' },
  { key: 'HAProxy.ServerSlotHeadroom', type: 'integer', default: 50, env: 'HAPROXY_SERVER_SLOT_HEADROOM', min: 0, max: 1000, used: 'worker',
    doc: 'Spare server slots per backend, in percent of its tasks: a backend gets the next power of two >= max(tasks + 4, tasks * (1 + headroom/100)) slots. A scale beyond the slots reloads (and re-sizes). Every slot is a server HAProxy builds on each check and reload: at 10,000 apps of 3 tasks the free slots are about 30 % of `haproxy -c` (docs/templates.md, "Cost of validation").' },
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
  };
  ZeroMQ: { PublishBind: string; AdvertiseHost: string; CurveSecretKey: string; CurvePublicKey: string; CurveServerKeys: string; CurveClientKeys: string };
  HAProxy: {
    TemplatePath: string; OutputPath: string; ReloadCommand: string; ReloadValidationCommand: string;
    ReloadCleanupCommand: string; Binary: string; CommandTimeoutMs: number; ValidationCpuSeconds: number; ValidationMemoryMB: number;
    PassEnv: string; RuntimeDir: string; HttpBind: string; StatsBind: string;
    StatsUser: string; StatsPassword: string; AdminSocket: string; BindOptions: string; TcpPortRange: string;
    RuntimeApi: boolean; ServerSlotHeadroom: number; DrainTimeoutMs: number; ServerStateFile: string;
    PrometheusExporter: boolean;
  };
  Worker: {
    Name: string; DebounceMs: number; MinUpdateIntervalMs: number; MinReloadIntervalMs: number; ResyncIntervalMs: number;
    MaxReloadsPerMinute: number; MaxOldGenerations: number; OldGenerationsWaitMs: number;
  };
  StatsD: { Enabled: boolean; Host: string; Prefix: string };
  Log: { Level: string; Format: 'auto' | 'pretty' | 'json' };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

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

function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let obj = target;
  for (const p of parts.slice(0, -1)) {
    if (typeof obj[p] !== 'object' || obj[p] === null) obj[p] = {};
    obj = obj[p] as Record<string, unknown>;
  }
  obj[parts[parts.length - 1]] = value;
}

function getPath(source: Record<string, unknown>, key: string): unknown {
  let obj: unknown = source;
  for (const p of key.split('.')) {
    if (typeof obj !== 'object' || obj === null) return undefined;
    obj = (obj as Record<string, unknown>)[p];
  }
  return obj;
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
  validateCurve(cfg);
  if (!/^[^:]+:\d+$/.test(cfg.StatsD.Host)) {
    throw new ConfigError(`config: StatsD.Host must be host:port, got ${JSON.stringify(cfg.StatsD.Host)}`);
  }
}

/** The name `Bamboo.AuthToken` goes by among the named tokens (in logs and on requests). */
export const DEFAULT_TOKEN_NAME = 'default';

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

/** Every credential as name -> token: Bamboo.AuthTokens plus Bamboo.AuthToken as `default`. */
export function credentials(cfg: Pick<Config, 'Bamboo'>): Array<{ name: string; token: string }> {
  const out = Object.entries(cfg.Bamboo.AuthTokens ?? {}).map(([name, token]) => ({ name, token }));
  if (cfg.Bamboo.AuthToken) out.push({ name: DEFAULT_TOKEN_NAME, token: cfg.Bamboo.AuthToken });
  return out;
}

/** A ZeroMQ CURVE key in Z85 text: 40 characters of its alphabet. */
const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

/** A comma-separated list of keys, trimmed, empty entries dropped. */
export function curveKeyList(value: string): string[] {
  return value.split(',').map((k) => k.trim()).filter(Boolean);
}

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

/** The configured Marathon endpoints, trimmed, without trailing slashes. */
export function marathonEndpoints(cfg: Pick<Config, 'Marathon'>): string[] {
  return cfg.Marathon.Endpoint.split(',').map((s) => s.trim().replace(/\/+$/, '')).filter(Boolean);
}

/** Hides user:password in a URL. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@\s]*@/, '//***@');
}

/** The HAProxy settings the template sees as `HAProxy` (admin socket path resolved). */
export function haproxySettings(cfg: Config): {
  HttpBind: string; StatsBind: string; StatsUser: string; StatsPassword: string; AdminSocket: string; BindOptions: string;
  ServerStateFile: string; PrometheusExporter: string;
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
  };
}

/** Where HAProxy's sockets and pidfile live: HAProxy.RuntimeDir, or the directory of OutputPath. */
export function runtimeDir(cfg: Pick<Config, 'HAProxy'>): string {
  return cfg.HAProxy.RuntimeDir.trim() || dirname(cfg.HAProxy.OutputPath);
}

/** The worker's name in the fleet view. */
export function workerName(cfg: Config): string {
  return cfg.Worker.Name || hostname();
}

/** A copy of the config with every secret replaced, safe to log or serve. */
export function redactConfig(cfg: Config): Config {
  const copy = JSON.parse(JSON.stringify(cfg)) as Record<string, unknown>;
  for (const f of SCHEMA) {
    const v = getPath(copy, f.key);
    if (f.secret && f.type === 'secrets' && v && typeof v === 'object') {
      setPath(copy, f.key, Object.fromEntries(Object.keys(v).map((k) => [k, '***'])));
    } else if (f.secret && v) setPath(copy, f.key, '***');
  }
  const m = copy.Marathon as Record<string, string>;
  m.Endpoint = m.Endpoint.split(',').map(redactUrl).join(',');
  return copy as unknown as Config;
}

/** Every secret value currently configured (for log redaction). */
export function secretValues(cfg: Config): string[] {
  return SCHEMA.filter((f) => f.secret)
    .flatMap((f) => {
      const v = getPath(cfg as unknown as Record<string, unknown>, f.key);
      return v && typeof v === 'object' ? Object.values(v as Record<string, unknown>) : [v];
    })
    .filter((v): v is string => typeof v === 'string' && v.length > 0);
}

function deepFreeze<T>(o: T): Readonly<T> {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
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
