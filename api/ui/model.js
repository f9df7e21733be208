/**
 * Pure functions from API answers to what the views show: no DOM, no fetch, no clock (the time is
 * passed in), so the same answers always give the same rows.
 */

/** The rule the shipped template gives an app without a stored rule (templates/haproxy.cfg.liquid). */
export function defaultRule(appId) {
  return `path_beg -i ${appId}`;
}

function taskView(t) {
  const alive = t.Alive === true;
  const ready = t.Ready === true;
  return {
    id: String(t.Id ?? ''),
    host: String(t.Host ?? ''),
    port: Number(t.Port ?? 0),
    address: `${t.Host ?? '?'}:${t.Port ?? '?'}`,
    alive,
    ready,
    state: String(t.State ?? ''),
    serving: alive && ready,
    label: alive && ready ? 'serving' : !alive ? 'unhealthy' : 'not ready',
  };
}

/** Tasks in host order, then port order (Marathon's order is by task id, which means nothing to a reader). */
function byAddress(a, b) {
  if (a.host !== b.host) return a.host < b.host ? -1 : 1;
  return a.port - b.port;
}

/**
 * Where a rule stands on the fleet: for each worker, whether it runs the stored rule version
 * (`rulesApplied[id] === Version`), has quarantined the app, or is behind. Without a stored rule,
 * a worker still listing the app in `rulesApplied` runs a deleted rule: it is behind as well.
 * `quarantine`: the details the quarantining workers' records give (reason, failing version, since,
 * what the app routes by meanwhile), by worker.
 */
export function rollout(appId, record, workers) {
  const applied = [];
  const pending = [];
  const quarantined = [];
  const quarantine = [];
  for (const w of workers) {
    const runs = w.rulesApplied ? w.rulesApplied[appId] : undefined;
    if ((w.quarantined ?? []).includes(appId)) {
      quarantined.push(w.name);
      const q = (w.quarantine ?? []).find((x) => x.appId === appId);
      if (q) quarantine.push(quarantineView(w.name, q));
    }
    else if (record ? runs === record.Version : runs === undefined) applied.push(w.name);
    else pending.push(w.name);
  }
  return { applied, pending, quarantined, quarantine, workers: workers.length };
}

/** One worker's quarantine of an app, as the rule cell shows it. */
function quarantineView(worker, q) {
  const version = (v) => (typeof v === 'number' ? v : null);
  const routesBy = q.level === 'app'
    ? 'left out on this worker (no backend)'
    : q.fallback === 'last-good' ? `routes by its last good rule${version(q.lastGoodVersion) === null ? '' : ` v${q.lastGoodVersion}`}` : 'routes by the default rule';
  return {
    worker,
    error: String(q.error ?? ''),
    ruleVersion: version(q.ruleVersion),
    since: typeof q.since === 'number' ? q.since : 0,
    routesBy,
  };
}

/**
 * One row per app of the Marathon snapshot, plus one per stored rule whose app is not in it (so such
 * rules can still be seen and deleted). `state` is /api/state (null when no snapshot is stored yet),
 * `services` is /api/services?versions=1, `workers` the `workers` array of /api/workers.
 */
export function buildRows(state, services, workers) {
  const rows = [];
  const seen = new Set();
  for (const app of state?.Apps ?? []) {
    seen.add(app.Id);
    const tasks = (app.Tasks ?? []).map(taskView).sort(byAddress);
    rows.push(row(app.Id, true, tasks, services[app.Id] ?? null, workers, app.Routing ?? null));
  }
  for (const id of Object.keys(services)) {
    if (!seen.has(id)) rows.push(row(id, false, [], services[id], workers, null));
  }
  return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** `HAPROXY_0_VHOST=a.example.com`-style keys of a Config: the marathon-lb routing keys (docs/labels.md). */
export function isRoutingKey(key) {
  return key === 'HAPROXY_GROUP' || /^HAPROXY_\d{1,3}_(VHOST|PATH|ENABLED|MODE|PORT|BALANCE|STICKY|REDIRECT_TO_HTTPS|SSL_CERT|BACKEND_WEIGHT|BACKEND_HEALTHCHECK_PORT_INDEX)$/.test(key);
}

/** What port 0's routing matches, in words: `host a.example.com, b.example.com path /api`. */
function describeRouting(routing) {
  const p = routing?.ports?.[0];
  if (!p) return '';
  if (p.enabled === false) return 'port 0 disabled (HAPROXY_0_ENABLED)';
  const parts = [];
  if (p.vhosts?.length) parts.push(`host ${p.vhosts.join(', ')}`);
  if (p.paths?.length) parts.push(`path ${p.paths.join(' ')}`);
  if (p.mode === 'tcp') parts.push(`tcp${p.port ? ` port ${p.port}` : ''}`);
  return parts.join(' ');
}

function row(id, inMarathon, tasks, record, workers, routing) {
  // An empty stored ACL also means "the template's default rule" (buildTemplateData keeps it empty),
  // unless the record routes by its Config's routing keys.
  const acl = record !== null && typeof record.Acl === 'string' ? record.Acl.trim() : '';
  const configRoutes = record !== null && Object.keys(record.Config ?? {}).some(isRoutingKey);
  const custom = acl !== '' || configRoutes;
  const source = routing?.source ?? (custom ? 'rule' : 'default');
  const serving = tasks.filter((t) => t.serving).length;
  const described = describeRouting(routing);
  return {
    id,
    inMarathon,
    tasks,
    serving,
    unhealthy: inMarathon && (tasks.length === 0 || serving < tasks.length),
    record,
    custom,
    source,
    conflicts: routing?.conflicts ?? [],
    problems: routing?.problems ?? [],
    groups: routing?.groups ?? [],
    rule: acl !== '' ? record.Acl : source !== 'default' && described ? described : defaultRule(id),
    rollout: rollout(id, record, workers),
  };
}

export const FILTERS = [
  { value: 'all', label: 'All apps' },
  { value: 'custom', label: 'With a custom rule' },
  { value: 'default', label: 'With the default rule' },
  { value: 'labels', label: 'Routed by labels' },
  { value: 'conflicts', label: 'Host conflict or ignored label' },
  { value: 'unhealthy', label: 'Unhealthy (a task not serving, or none)' },
  { value: 'pending', label: 'Rule not applied everywhere' },
];

/** Rows whose id or rule contains `query` (case-insensitive) and that pass `filter`. */
export function filterRows(rows, query, filter) {
  const q = query.trim().toLowerCase();
  return rows.filter((r) => {
    if (q && !r.id.toLowerCase().includes(q) && !r.rule.toLowerCase().includes(q)) return false;
    switch (filter) {
      case 'custom': return r.custom;
      case 'default': return !r.custom;
      case 'labels': return r.source === 'labels';
      case 'conflicts': return r.conflicts.length > 0 || r.problems.length > 0;
      case 'unhealthy': return r.unhealthy;
      case 'pending': return r.rollout.pending.length > 0;
      default: return true;
    }
  });
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago"; "never" for 0 or missing. */
export function ago(at, now) {
  if (!at) return 'never';
  const s = Math.round((now - at) / 1000);
  if (s < 2) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** Rules not yet applied on every worker: `[{ id, version, pending: [names], quarantined: [names] }]`. */
export function pendingRules(rows) {
  return rows
    .filter((r) => r.rollout.pending.length > 0)
    .map((r) => ({ id: r.id, version: r.record ? r.record.Version : null, rule: r.rule, custom: r.custom, pending: r.rollout.pending }));
}
