/**
 * Marathon apps + service records -> template data, in Bamboo's shape.
 *
 * A pure, deterministic function: no I/O, no clock (`now` is passed in), no randomness; apps, tasks,
 * map keys and warnings are sorted, so equal inputs give deep-equal (and JSON byte-equal) outputs.
 *
 * It accepts every Marathon response shape from 0.7 to 1.10 (0.x `ports`, 1.x `portDefinitions`,
 * Docker bridge `portMappings` under `container.docker` or `container`, IP-per-task `ipAddress` and
 * 1.5+ `networks`, every health-check protocol) and never throws on a bad app: a malformed app or
 * task is skipped with a warning naming it, and the rest of the snapshot goes through.
 *
 * Rules for `Alive` and `Ready` follow Bamboo's `services/marathon` with its traps fixed; they are
 * described for template authors in docs/templates.md ("Alive, Ready and unknown health").
 */
import { firstNonPrintable, printable, validateAcl, validateAppId } from './acl.js';
import { deepFreeze } from './app-equality.js';
import { servesGroups, type AllowedDomains } from './labels.js';
import { labelRouting, resolveHosts, withRule, type AppRouting } from './routing.js';
import { addressing, byString, type Clock, DEFAULT_GRACE_MS, firstTaskIp, type Health, health, healthChecks, HOST, HTTP_LIKE, isObject, isRunning, type Json, mesosDnsId, normaliseAppId, objects, parseMarathonTime, portList, ready, servicePorts, stringMap } from './marathon-app.js';
import { TemplateDataMemo, sameSlots, type SlotInput } from './template-memo.js';
import { assignSlots, DEFAULT_SLOT_HEADROOM_PERCENT, type SlotSizing, type SlotTable } from './slots.js';
import { growsAtRuntime } from './dynamic-servers.js';
import type {
  AppData,
  MarathonApp,
  MarathonTask,
  ServiceRecord,
  TaskData,
  TemplateData,
  Warning,
} from './model.js';

export interface BuildTemplateDataInput {
  /** The raw `apps` array of a Marathon /v2/apps response (any version); entries are not trusted. */
  apps: unknown[];
  /** Service records keyed by app id, as the api stores them. Entries are not trusted either. */
  services: Record<string, ServiceRecord>;
  /** The current time in ms since the epoch, passed in so the function stays pure. */
  now: number;
  /**
   * Grace period (ms) for a health check that does not state `gracePeriodSeconds`; Marathon's own
   * default is 300 s. See docs/templates.md for how it is used.
   */
  graceMs?: number;
  /**
   * Server slots (see common/core/slots.ts): `previous` is the slot table of the config HAProxy runs, so
   * tasks keep their slots; `headroomPercent` sizes new backends (HAProxy.ServerSlotHeadroom), except
   * that with `dynamic` (HAProxy.DynamicServers) an app whose backends can take `add server` gets one
   * slot per task and no spare one.
   * Without `previous`, tasks fill slots 1..n in task id order.
   */
  slots?: { previous?: SlotTable | null; headroomPercent?: number; dynamic?: boolean };
  /**
   * A per-app memo kept by the caller across builds (see TemplateDataMemo): an app equal to one of
   * the previous build, with the same slots and on the same side of every time threshold, is not
   * built again. The result is the same as without it (deep-equal, JSON byte-equal); its app data
   * is frozen and shared with earlier builds, so treat it as read-only.
   */
  memo?: TemplateDataMemo;
  /**
   * Routing from labels (docs/labels.md): `allowedDomains` (Labels.AllowedDomains) confines the hosts
   * each group's labels may claim; `groups` (Worker.Groups) keeps only the apps a worker serves
   * (empty or absent: every app). Host ownership is decided over every app before the group filter,
   * so every worker and the api agree on who owns a host.
   */
  routing?: {
    allowedDomains?: AllowedDomains;
    groups?: readonly string[];
    /**
     * Host -> the app that holds it in the config in force (`hostOwners` of the previous build): it
     * keeps the host against later claims by labels, whatever their times, as the port policy keeps
     * a port with its holder.
     */
    incumbents?: ReadonlyMap<string, string>;
  };
}

export interface BuildTemplateDataResult {
  data: TemplateData;
  warnings: Warning[];
}

function buildApp(raw: Json, index: number, clock: Clock, defaultGraceMs: number, warnings: Warning[], slots: SlotInput): AppData | undefined {
  const app = raw as MarathonApp;
  const labels = stringMap(app.labels);
  if (typeof app.id !== 'string') {
    warnings.push({ code: 'app_invalid', message: `skipped apps[${index}]: it has no string "id"` });
    return undefined;
  }
  const id = normaliseAppId(app.id);
  const idCheck = validateAppId(id);
  if (!idCheck.ok) {
    warnings.push({ code: 'app_invalid', appId: printable(app.id), message: `skipped app "${printable(app.id)}": ${idCheck.message}` });
    return undefined;
  }
  for (const field of ['tasks', 'healthChecks', 'readinessChecks', 'deployments', 'readinessCheckResults'] as const) {
    const v = raw[field];
    if (v !== undefined && v !== null && !Array.isArray(v)) {
      warnings.push({ code: 'app_invalid', appId: id, message: `skipped app ${id}: "${field}" is not an array` });
      return undefined;
    }
  }

  const rawChecks = objects(app.healthChecks);
  const checks = healthChecks(rawChecks);
  const firstHttp = checks.find((c) => HTTP_LIKE.has(c.Protocol));
  const readinessChecks = objects(app.readinessChecks);
  const ports = servicePorts(app);
  const { containerPorts } = addressing(app);

  const seen = new Set<string>();
  const tasks: Array<TaskData & { health: Health }> = [];
  const rawTasks = Array.isArray(app.tasks) ? app.tasks : [];
  for (const t of rawTasks as unknown[]) {
    if (!isObject(t) || typeof t.id !== 'string' || t.id === '') {
      warnings.push({ code: 'task_invalid', appId: id, message: `skipped a task of ${id} without a string "id"` });
      continue;
    }
    const task = t as MarathonTask & Json;
    const taskId = task.id as string;
    if (seen.has(taskId)) {
      warnings.push({ code: 'task_duplicate', appId: id, message: `skipped a second task ${printable(taskId)} of ${id}` });
      continue;
    }
    seen.add(taskId);
    const running = isRunning(task);
    let host = typeof task.host === 'string' ? task.host : '';
    let taskPorts = portList(task.ports);
    if (containerPorts) {
      const ip = firstTaskIp(task);
      if (ip !== '') {
        host = ip;
        taskPorts = containerPorts.slice();
      }
    }
    const port = taskPorts.length > 0 ? taskPorts[0] : 0;
    if (host !== '' && !HOST.test(host)) {
      // The host is written into haproxy.cfg as is; anything but a name or an address could inject text.
      warnings.push({ code: 'task_invalid', appId: id, message: `skipped task ${printable(taskId)} of ${id}: host "${printable(host)}" is not a host name or IP address` });
      continue;
    }
    if (host === '' || port === 0) {
      // Staging tasks have no address yet; only a running one without an address is worth a warning.
      if (running) {
        warnings.push({
          code: 'task_no_address',
          appId: id,
          message: `task ${printable(taskId)} of ${id} is running but has no host or port; it gets no traffic`,
        });
      }
      continue;
    }
    const h = running ? health(task, rawChecks, clock, defaultGraceMs) : 'dead';
    tasks.push({
      Id: taskId,
      Host: host,
      Port: port,
      Ports: taskPorts,
      Alive: h === 'alive',
      Ready: ready(task, taskId, running, app, clock),
      State: typeof task.state === 'string' ? task.state : '',
      health: h,
    });
  }
  tasks.sort(byString((t) => t.Id));

  // Unknown health must never empty a backend: when no task of the app is known to be alive but some
  // are merely unknown (e.g. right after a Marathon leader change, or MESOS_* checks that report
  // nothing), those stay in rotation and HAProxy's own health checks decide.
  if (!tasks.some((t) => t.health === 'alive') && tasks.some((t) => t.health === 'unknown')) {
    for (const t of tasks) if (t.health === 'unknown') t.Alive = true;
    warnings.push({
      code: 'health_unknown',
      appId: id,
      message: `no task of ${id} has a health check result yet; its tasks stay in rotation and HAProxy's checks decide`,
    });
  }

  const finalTasks = tasks.map(({ health: _h, ...task }) => task);
  const byTaskId = new Map(finalTasks.map((t) => [t.Id, t]));
  const routing = labelRouting(labels, Math.max(1, ports.length), configChangedAt(app), id);
  const layout = assignSlots(finalTasks.map((t) => t.Id), slots.previous?.[id], slotSizing(slots, routing));
  return {
    Id: id,
    EscapedId: id.replace(/\//g, '::'),
    MesosDnsId: mesosDnsId(id),
    SplitId: id.split('/'),
    HealthCheckPath: firstHttp ? firstHttp.Path : '',
    HealthCheckProtocol: firstHttp ? (firstHttp.Protocol.endsWith('HTTPS') ? 'HTTPS' : 'HTTP') : '',
    HealthChecks: checks,
    ReadinessCheckPath: readinessChecks.length > 0 && typeof readinessChecks[0].path === 'string' ? readinessChecks[0].path : '',
    ServicePort: ports.length > 0 ? ports[0] : 0,
    ServicePorts: ports,
    Env: stringMap(app.env),
    Labels: labels,
    Tasks: finalTasks,
    Slots: layout.map((taskId, i) => ({ Index: i + 1, Task: taskId === null ? null : byTaskId.get(taskId)! })),
    Routing: routing,
  };
}

/** How an app's backends are sized: no spare slot when they grow through `add server` (see slots.ts). */
function slotSizing(slots: SlotInput, routing: AppRouting): SlotSizing {
  return slots.dynamic && growsAtRuntime(routing.ports) ? { dynamic: true } : slots.headroomPercent;
}

/** When the app's configuration last changed in Marathon (ms), 0 when it does not say: "earlier" in host conflicts. */
function configChangedAt(app: MarathonApp): number {
  const info = isObject(app.versionInfo) ? app.versionInfo : undefined;
  for (const t of [info?.lastConfigChangeAt, app.version]) {
    const ms = parseMarathonTime(t);
    if (Number.isFinite(ms) && ms > 0) return ms;
  }
  return 0;
}

/**
 * Each app's final routing: its rule over its labels, then host ownership across apps. An app whose
 * routing is what its labels alone gave keeps its (memoised, frozen) object; another gets a frozen
 * copy, itself kept by the memo while it stays equal, so the renderer's memo still sees the same object.
 */
function routeApps(apps: AppData[], services: Record<string, ServiceRecord>, allowed: AllowedDomains, incumbents: ReadonlyMap<string, string> | undefined, memo: TemplateDataMemo | undefined, warnings: Warning[]): AppData[] {
  const ruled = apps.map((a) => ({
    Id: a.Id,
    Routing: withRule(a.Routing, a.Labels, Object.prototype.hasOwnProperty.call(services, a.Id) ? services[a.Id] : undefined, Math.max(1, a.ServicePorts.length), a.Id),
  }));
  const changed = resolveHosts(ruled, allowed, incumbents);
  return apps.map((a, i) => {
    const routing = changed.get(a.Id) ?? ruled[i].Routing;
    for (const p of routing.problems) warnings.push({ code: 'label_invalid', appId: a.Id, message: `ignored ${p.key} of ${a.Id}: ${p.reason}` });
    for (const c of routing.conflicts) warnings.push({ code: 'host_conflict', appId: a.Id, message: `${a.Id} does not get ${c.reason}` });
    if (routing === a.Routing) return a;
    const key = JSON.stringify(routing);
    const kept = memo?.routed.get(a);
    if (kept && kept.key === key) return kept.out;
    const out = deepFreeze({ ...a, Routing: routing as AppRouting });
    memo?.routed.set(a, { key, out });
    return out;
  });
}

/** The slot table of template data (what `slots.previous` takes on the next build). */
export function slotTable(data: TemplateData): SlotTable {
  const out: Record<string, Array<string | null>> = {};
  for (const app of data.Apps) {
    if (Array.isArray(app.Slots)) out[app.Id] = app.Slots.map((s) => s.Task?.Id ?? null);
  }
  return out;
}

/**
 * Validates service records: the id must be an app id, a non-empty ACL must pass validateAcl
 * (otherwise the record is left out, so its text never reaches haproxy.cfg), and Config values must
 * be printable one-line strings (others are dropped). An empty ACL is kept: templates then use their
 * default rule for the app.
 */
function buildServices(input: unknown, warnings: Warning[]): Record<string, ServiceRecord> {
  const out: Record<string, ServiceRecord> = {};
  if (!isObject(input)) return out;
  const entries: Array<[string, ServiceRecord]> = [];
  for (const key of Object.keys(input)) {
    const rec = input[key];
    if (!isObject(rec)) {
      warnings.push({ code: 'service_invalid', appId: printable(key), message: `skipped service record "${printable(key)}": not an object` });
      continue;
    }
    const rawId = typeof rec.Id === 'string' && rec.Id !== '' ? rec.Id : key;
    const id = normaliseAppId(rawId);
    const idCheck = validateAppId(id);
    if (!idCheck.ok) {
      warnings.push({ code: 'service_invalid', appId: printable(rawId), message: `skipped service record "${printable(rawId)}": ${idCheck.message}` });
      continue;
    }
    let acl = '';
    if (rec.Acl !== undefined && rec.Acl !== null) {
      if (typeof rec.Acl !== 'string') {
        warnings.push({ code: 'acl_invalid', appId: id, message: `left out the rule of ${id}: the ACL is not a string` });
        continue;
      }
      acl = rec.Acl.trim();
    }
    if (acl !== '') {
      const check = validateAcl(acl);
      if (!check.ok) {
        warnings.push({ code: 'acl_invalid', appId: id, message: `left out the rule of ${id}: ${check.message}` });
        continue;
      }
    }
    const config: Record<string, string> = {};
    if (isObject(rec.Config)) {
      for (const k of Object.keys(rec.Config).sort()) {
        const v = rec.Config[k];
        if (typeof v === 'string' && firstNonPrintable(v) < 0 && firstNonPrintable(k) < 0) config[k] = v;
        else warnings.push({ code: 'config_invalid', appId: id, message: `dropped Config key "${printable(k)}" of ${id}: values must be one printable line` });
      }
    }
    entries.push([id, { Id: id, Acl: acl, Config: config }]);
  }
  entries.sort(byString(([k]) => k));
  for (const [id, rec] of entries) {
    if (out[id]) {
      warnings.push({ code: 'service_duplicate', appId: id, message: `ignored a second service record for ${id}` });
      continue;
    }
    out[id] = rec;
  }
  return out;
}

/**
 * Builds the template data from one Marathon snapshot and the service records.
 *
 * Never throws for bad entries: a malformed app, task or service record is skipped and reported in
 * `warnings` (each names the app). Throws a TypeError only when `apps` itself is not an array, which
 * is a caller bug (the caller must reject an unreadable Marathon response before this point, so that
 * an error page never empties the config).
 */
export function buildTemplateData(input: BuildTemplateDataInput): BuildTemplateDataResult {
  if (!Array.isArray(input.apps)) throw new TypeError('buildTemplateData: "apps" must be an array');
  const now = input.now;
  const defaultGraceMs = typeof input.graceMs === 'number' && input.graceMs >= 0 ? input.graceMs : DEFAULT_GRACE_MS;
  const warnings: Warning[] = [];
  const slots: SlotInput = {
    previous: input.slots?.previous ?? null,
    headroomPercent: input.slots?.headroomPercent ?? DEFAULT_SLOT_HEADROOM_PERCENT,
    dynamic: input.slots?.dynamic ?? false,
  };
  const byId = new Map<string, AppData>();
  const memo = input.memo;
  memo?.begin();
  input.apps.forEach((raw, index) => {
    if (!isObject(raw)) {
      warnings.push({ code: 'app_invalid', message: `skipped apps[${index}]: not an object` });
      return;
    }
    let app: AppData | undefined;
    const key = memo && typeof raw.id === 'string' ? raw.id : undefined;
    // A second app with the same key is built afresh (its data is dropped as a duplicate anyway).
    const hit = key === undefined ? undefined : memo!.find(key, raw, now, defaultGraceMs, slots);
    if (hit) {
      for (const w of hit.warnings) warnings.push(w);
      app = hit.app;
    } else try {
      const clock: Clock = { now, log: [] };
      const own: Warning[] = key === undefined ? warnings : [];
      try {
        app = buildApp(raw, index, clock, defaultGraceMs, own, slots);
      } finally {
        if (own !== warnings) for (const w of own) warnings.push(w);
      }
      if (app && key !== undefined) {
        // Frozen: shared by later builds (and the renderer may then skip comparing it).
        deepFreeze(app);
        const prev = slots.previous?.[app.Id];
        const layout = app.Slots.map((x) => x.Task?.Id ?? null);
        const again = assignSlots(app.Tasks.map((t) => t.Id), layout, slotSizing(slots, app.Routing));
        memo!.store(key, {
          raw, id: app.Id, graceMs: defaultGraceMs, headroomPercent: slots.headroomPercent, dynamic: slots.dynamic,
          previousSlots: Array.isArray(prev) ? prev.slice() : undefined, stableLayout: sameSlots(again, layout) ? layout : null,
          clock: clock.log, app, warnings: own.map((w) => deepFreeze(w)),
        });
      }
    } catch (err) {
      // Defensive: the checks above should make this unreachable, but one app must never sink the rest.
      const name = typeof raw.id === 'string' ? printable(raw.id) : `apps[${index}]`;
      warnings.push({ code: 'app_invalid', appId: name, message: `skipped app ${name}: ${(err as Error).message}` });
      return;
    }
    if (!app) return;
    if (byId.has(app.Id)) {
      warnings.push({ code: 'app_duplicate', appId: app.Id, message: `ignored a second app with id ${app.Id}` });
      return;
    }
    byId.set(app.Id, app);
  });
  memo?.end();
  const services = buildServices(input.services, warnings);
  const routed = routeApps([...byId.values()].sort(byString((a) => a.Id)), services, input.routing?.allowedDomains ?? {}, input.routing?.incumbents, memo, warnings);
  const groups = input.routing?.groups ?? [];
  const apps = groups.length === 0 ? routed : routed.filter((a) => servesGroups(groups, a.Routing.groups));
  warnings.sort(byString((w) => `${w.appId ?? ''}\u0000${w.code}\u0000${w.message}`));
  return { data: { Apps: apps, Services: services }, warnings };
}
