/**
 * Where each app's routing comes from, and who owns a host name.
 *
 * One precedence: an explicit rule (a service record with an ACL or routing keys in its Config) wins
 * over the app's labels, labels win over the template's default path rule. And one owner per host:
 * labels come from any team that can deploy, so a host claimed by two apps is a conflict, resolved
 * deterministically (a rule before labels, then the earlier claimant: the app's last configuration
 * change in Marathon, then its id) and reported on the losing app, never shared. An optional
 * per-group allow-list of domains (`Labels.AllowedDomains`) confines which hosts labels may claim.
 *
 * Pure: no clock, no I/O; the result depends only on the inputs and is sorted.
 */
import {
  hostAllowed,
  portRouting,
  readRoutingSettings,
  type AllowedDomains,
  type PortRouting,
  type RoutingProblem,
  type RoutingSettings,
} from './labels.js';

export type RoutingSource = 'rule' | 'labels' | 'default';

/** A host (and path) an app asked for and did not get. */
export interface RoutingConflict {
  host: string;
  /** The path prefix claimed on that host ("" for the whole host). */
  path: string;
  /** The app that holds the host. */
  winner: string;
  reason: string;
}

/** The routing of one app, as the template data carries it (`app.Routing`). */
export interface AppRouting {
  /** Where the app's HTTP routing comes from. */
  source: RoutingSource;
  /** `HAPROXY_GROUP` (from the rule's Config when it says, else the labels), sorted; [] for none. */
  groups: string[];
  /** One entry per service port (at least one), by index. */
  ports: PortRouting[];
  /** Claims this app lost to another app. */
  conflicts: RoutingConflict[];
  /** Labels and rule Config keys left out, and why. */
  problems: RoutingProblem[];
  /** Ms since the epoch of the app's last configuration change in Marathon (0 when unknown): "earlier" in conflicts. */
  since: number;
}

/** The per-app part (memoised with the app): what its labels say. */
export function labelRouting(labels: Readonly<Record<string, string>>, portCount: number, since: number, appId: string): AppRouting {
  const settings = readRoutingSettings(labels, portCount);
  const own = ownNamespace(settings, appId);
  return finish(own.settings, null, since, own.problems, portCount);
}

/**
 * A path without a host may only lie under the app's own id (its default rule's space), so that
 * labels cannot take paths that other apps' default rules serve.
 */
function ownNamespace(s: RoutingSettings, appId: string): { settings: RoutingSettings; problems: RoutingProblem[] } {
  const problems = s.problems.slice();
  const ports = new Map<number, Array<[never, string]>>() as RoutingSettings['ports'];
  for (const [n, entries] of s.ports) {
    const hasHost = entries.some(([k]) => k === 'VHOST');
    const kept = entries.filter(([k, v]) => {
      if (k !== 'PATH' || hasHost) return true;
      const bad = v.split(' ').filter((p) => p !== '' && p !== appId && !p.startsWith(`${appId}/`));
      if (bad.length === 0) return true;
      problems.push({ key: `HAPROXY_${n}_PATH`, reason: `without HAPROXY_${n}_VHOST a path must lie under the app's own id (${appId}); other paths belong to other apps` });
      return false;
    });
    ports.set(n, kept);
  }
  return { settings: { groups: s.groups, ports, problems: [] }, problems };
}

/** Does a rule's Config say where requests go (a host or a path on some port)? */
function matches(rule: RoutingSettings): boolean {
  for (const entries of rule.ports.values()) if (entries.some(([k]) => k === 'VHOST' || k === 'PATH')) return true;
  return false;
}

/**
 * The routing from the labels' settings and, when the app has a rule, the rule's (later wins per key).
 * `ruleMatches`: the rule says where requests go (an ACL, or a host or path key), so the labels' hosts
 * and paths are not used and the source is `rule`; a rule with other keys only (BALANCE, GROUP, ...)
 * overrides those and leaves the matching to the labels or the default rule.
 */
function finish(labels: RoutingSettings, rule: RoutingSettings | null, since: number, problems: RoutingProblem[], portCount: number, ruleMatches = false): AppRouting {
  const count = Math.max(1, portCount);
  const sources: RoutingSettings[] = [labels];
  if (rule && !ruleMatches) sources.push(rule);
  if (rule && ruleMatches) {
    // The rule owns the matching: the labels' hosts and paths are not used.
    const stripped = new Map([...labels.ports].map(([n, e]) => [n, e.filter(([k]) => k !== 'VHOST' && k !== 'PATH')])) as RoutingSettings['ports'];
    sources[0] = { ...labels, ports: stripped };
    sources.push(rule);
  }
  const ports: PortRouting[] = [];
  for (let n = 0; n < count; n++) ports.push(portRouting(n, sources));
  const groups = rule?.groups ?? labels.groups ?? [];
  const p0 = ports[0];
  let source: RoutingSource = 'default';
  if (rule && ruleMatches) source = 'rule';
  else if (p0.vhosts.length > 0 || p0.paths.length > 0 || !p0.enabled || p0.mode !== 'http') source = 'labels';
  return { source, groups, ports, conflicts: [], problems: sortProblems(problems), since };
}

function sortProblems(p: RoutingProblem[]): RoutingProblem[] {
  return p.slice().sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0));
}

/** The app's routing once its service record is taken into account (rule > labels). */
export function withRule(
  base: AppRouting,
  labels: Readonly<Record<string, string>>,
  record: { Acl: string; Config: Readonly<Record<string, string>> } | undefined,
  portCount: number,
  appId: string,
): AppRouting {
  if (!record) return base;
  const rule = readRoutingSettings(record.Config ?? {}, portCount);
  const hasRoutingKeys = rule.groups !== null || rule.ports.size > 0;
  if (record.Acl === '' && !hasRoutingKeys) return base;
  const own = ownNamespace(readRoutingSettings(labels, portCount), appId);
  const problems = [...own.problems, ...rule.problems.map((p) => ({ key: `rule Config ${p.key}`, reason: p.reason }))];
  if (record.Acl !== '') {
    // An ACL routes port 0 by itself; host and path keys for port 0 would say something else.
    const p0 = rule.ports.get(0);
    if (p0 && p0.some(([k]) => k === 'VHOST' || k === 'PATH')) {
      problems.push({ key: 'rule Config HAPROXY_0_VHOST', reason: 'the rule\'s Acl routes port 0; its host and path keys for port 0 are not used' });
      rule.ports.set(0, p0.filter(([k]) => k !== 'VHOST' && k !== 'PATH'));
    }
  }
  return finish(own.settings, rule, base.since, problems, portCount, record.Acl !== '' || matches(rule));
}

/** Host -> the app routed by it, in template data already resolved (the incumbents of the next resolution). */
export function hostOwners(apps: ReadonlyArray<{ Id: string; Routing?: AppRouting }>): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of apps) {
    for (const p of a.Routing?.ports ?? []) {
      if (!p.enabled || p.mode !== 'http') continue;
      for (const h of p.vhosts) if (!out.has(h)) out.set(h, a.Id);
    }
  }
  return out;
}

/**
 * Takes a host out of a port. Paths given with hosts were checked against nothing (the host made
 * them the app's own): a port left without hosts drops them too, so they cannot match on any host.
 */
function dropHost(p: PortRouting, host: string): void {
  if (!p.vhosts.includes(host)) return;
  p.vhosts = p.vhosts.filter((h) => h !== host);
  if (p.vhosts.length === 0) p.paths = [];
}

interface Claim {
  appId: string;
  source: RoutingSource;
  since: number;
  host: string;
  path: string;
}

function claimOrder(a: Claim, b: Claim, holder: string | undefined): number {
  if (a.source !== b.source) return a.source === 'rule' ? -1 : b.source === 'rule' ? 1 : 0;
  if (holder !== undefined && (a.appId === holder) !== (b.appId === holder)) return a.appId === holder ? -1 : 1;
  const sa = a.since > 0 ? a.since : Number.MAX_SAFE_INTEGER;
  const sb = b.since > 0 ? b.since : Number.MAX_SAFE_INTEGER;
  if (sa !== sb) return sa - sb;
  if (a.appId !== b.appId) return a.appId < b.appId ? -1 : 1;
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/**
 * Resolves host ownership across apps. Takes each app's routing (after withRule) and returns the
 * routings that change (hosts taken out of their ports, conflicts and problems added), by app id.
 *
 * - A host outside the app's groups' allowed domains is left out (labels only; rules are written by
 *   operators and are not confined).
 * - Per host, the first claimant in claim order owns it: a rule before labels, then the app that
 *   holds the host in `incumbents` (the config in force), then the earlier `since`, then the app id. Another app's claim on that host loses (the whole host leaves its
 *   ports), except that two rules may share a host on different paths (operators route one site
 *   to several apps); the same host and path twice is a conflict even between rules.
 */
export function resolveHosts(
  apps: ReadonlyArray<{ Id: string; Routing: AppRouting }>,
  allowed: AllowedDomains,
  incumbents?: ReadonlyMap<string, string>,
): Map<string, AppRouting> {
  const changed = new Map<string, AppRouting>();
  const edit = (id: string, r: AppRouting): AppRouting => {
    let e = changed.get(id);
    if (!e) {
      e = { ...r, ports: r.ports.map((p) => ({ ...p, vhosts: p.vhosts.slice(), paths: p.paths.slice() })), conflicts: r.conflicts.slice(), problems: r.problems.slice() };
      changed.set(id, e);
    }
    return e;
  };
  const byHost = new Map<string, Claim[]>();
  for (const app of apps) {
    const r = app.Routing;
    if (!r) continue;
    for (const p of r.ports) {
      if (!p.enabled || p.mode !== 'http' || p.vhosts.length === 0) continue;
      for (const host of p.vhosts) {
        if (r.source !== 'rule' && !hostAllowed(allowed, r.groups, host)) {
          const e = edit(app.Id, r);
          dropHost(e.ports[p.index], host);
          const where = r.groups.length ? `group ${r.groups.join(', ')}` : 'an app without HAPROXY_GROUP';
          e.problems.push({ key: `HAPROXY_${p.index}_VHOST`, reason: `host ${host} is outside the domains allowed for ${where} (Labels.AllowedDomains)` });
          continue;
        }
        for (const path of p.paths.length ? p.paths : ['']) {
          let list = byHost.get(host);
          if (!list) byHost.set(host, (list = []));
          list.push({ appId: app.Id, source: r.source, since: r.since, host, path });
        }
      }
    }
  }
  for (const [host, claims] of byHost) {
    const holder = incumbents?.get(host);
    claims.sort((a, b) => claimOrder(a, b, holder));
    const owner = claims[0];
    const taken = new Map<string, string>();
    const losers = new Map<string, Claim[]>();
    for (const c of claims) {
      const holder = taken.get(c.path);
      const ok = c.appId === owner.appId
        ? holder === undefined || holder === c.appId
        : c.source === 'rule' && owner.source === 'rule' && (holder === undefined || holder === c.appId);
      if (ok) {
        taken.set(c.path, c.appId);
      } else {
        let l = losers.get(c.appId);
        if (!l) losers.set(c.appId, (l = []));
        l.push(c);
      }
    }
    for (const [appId, lost] of losers) {
      const app = apps.find((a) => a.Id === appId)!;
      const e = edit(appId, changed.get(appId) ?? app.Routing);
      for (const p of e.ports) dropHost(p, host);
      for (const c of lost) {
        const winner = taken.get(c.path) ?? owner.appId;
        // Said the same way whether or not the config in force was known, unless holding it decided.
        const heldOnly = winner === holder && winner === owner.appId && claimOrder(c, owner, undefined) < 0;
        const why = owner.source === 'rule' && c.source !== 'rule'
          ? 'an api rule claims it'
          : heldOnly ? `${winner} holds it in the config in force` : `${winner} claimed it earlier`;
        e.conflicts.push({ host, path: c.path, winner, reason: `host ${host}${c.path ? ` path ${c.path}` : ''} is held by ${winner}: ${why}` });
      }
    }
  }
  for (const [id, e] of changed) {
    e.conflicts.sort((a, b) => (a.host + '\u0000' + a.path < b.host + '\u0000' + b.path ? -1 : 1));
    e.problems = sortProblems(e.problems);
    // An app left with no host and no path on port 0 falls back to the default rule.
    const p0 = e.ports[0];
    if (e.source === 'labels' && p0.vhosts.length === 0 && p0.paths.length === 0 && p0.enabled && p0.mode === 'http') e.source = 'default';
    changed.set(id, e);
  }
  return changed;
}
