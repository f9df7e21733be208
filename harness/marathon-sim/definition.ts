/**
 * App definitions the way Marathon fills them in on create: where each era puts the ports, which
 * host and service ports an app and its tasks get, and the defaults Marathon reports. Pure: the state
 * passes the service port counter and the version in.
 */
import { canonicalAppId } from './records.js';
import { asArray, asObject, type JsonObject } from './types.js';
import type { Era } from './version.js';

/** Port mappings wherever the era put them: `container.portMappings` (1.5+) or `container.docker.portMappings`. */
export function portMappingsOf(def: JsonObject): JsonObject[] | undefined {
  const container = asObject(def['container']);
  if (!container) return undefined;
  return asArray(container['portMappings']) ?? asArray(asObject(container['docker'])?.['portMappings']);
}

/**
 * Whether tasks get their own network namespace: Docker BRIDGE/USER (<= 1.4) or a non-host entry in
 * `networks` (1.5+). Then port mappings, not port definitions, describe the ports.
 */
export function usesContainerNetworking(def: JsonObject): boolean {
  const docker = asObject(asObject(def['container'])?.['docker']);
  const network = docker?.['network'];
  if (network === 'BRIDGE' || network === 'USER') return true;
  const networks = asArray(def['networks']);
  return !!networks?.some((n) => n['mode'] !== undefined && n['mode'] !== 'host');
}

function isBridge(def: JsonObject): boolean {
  const docker = asObject(asObject(def['container'])?.['docker']);
  if (docker?.['network'] === 'BRIDGE') return true;
  return !!asArray(def['networks'])?.some((n) => n['mode'] === 'container/bridge');
}

/** The app's service ports (what `/v2/tasks` reports as `servicePorts` and HAProxy binds). */
export function servicePortsOf(def: JsonObject): number[] {
  const mappings = portMappingsOf(def);
  if (mappings && mappings.length > 0 && usesContainerNetworking(def)) {
    return mappings.map((m) => Number(m['servicePort'] ?? 0));
  }
  const defs = asArray(def['portDefinitions']);
  if (defs && defs.length > 0) return defs.map((p) => Number(p['port'] ?? 0));
  if (Array.isArray(def['ports']) && def['ports'].length > 0) return (def['ports'] as unknown[]).map(Number);
  return mappings ? mappings.map((m) => Number(m['servicePort'] ?? 0)) : [];
}

/**
 * Host ports a new task needs, one entry per port: the fixed host port, or 0 for "pick one".
 * Bridge mappings always take a host port; container (overlay) mappings only when they name one;
 * IP-per-task apps (`ipAddress` set) take none; an app that declares no ports at all gets Marathon's
 * default of one port.
 */
export function hostPortSlots(def: JsonObject): number[] {
  const mappings = portMappingsOf(def);
  if (usesContainerNetworking(def) && mappings) {
    const bridge = isBridge(def);
    return mappings
      .filter((m) => bridge || m['hostPort'] !== undefined)
      .map((m) => Number(m['hostPort'] ?? 0));
  }
  if (asObject(def['ipAddress'])) return [];
  const requirePorts = def['requirePorts'] === true;
  const defs = asArray(def['portDefinitions']);
  if (defs) return defs.map((p) => (requirePorts ? Number(p['port'] ?? 0) : 0));
  if (Array.isArray(def['ports'])) return (def['ports'] as unknown[]).map((p) => (requirePorts ? Number(p) : 0));
  return [0];
}

/**
 * Marathon gives an app that declares no ports one port: `ports: [0]` up to 0.x, `ports` and
 * `portDefinitions` in 1.0-1.4, `portDefinitions` only from 1.5 (fact 6). Apps with container
 * networking or IP-per-task describe their ports elsewhere and are returned unchanged.
 */
export function withDefaultPorts(def: JsonObject, era: Era): JsonObject {
  if ('ports' in def || 'portDefinitions' in def || usesContainerNetworking(def) || asObject(def['ipAddress'])) return def;
  return {
    ...def,
    ...(era.legacyPorts ? { ports: [0] } : {}),
    ...(era.portDefinitions ? { portDefinitions: [{ port: 0, protocol: 'tcp', name: 'default', labels: {} }] } : {}),
  };
}

/**
 * Fills the service ports a definition leaves at 0 (or omits in a port mapping), the way Marathon
 * allocates them from its local port range. Returns a new definition; `ports`, `portDefinitions` and
 * port mappings stay consistent index by index.
 */
export function assignServicePorts(def: JsonObject, next: () => number): JsonObject {
  const out: JsonObject = structuredClone(def);
  const mappings = portMappingsOf(out);
  const portDefs = asArray(out['portDefinitions']);
  const ports = Array.isArray(out['ports']) ? (out['ports'] as number[]) : undefined;
  const count = Math.max(mappings?.length ?? 0, portDefs?.length ?? 0, ports?.length ?? 0);
  const chosen: number[] = [];
  for (let i = 0; i < count; i++) {
    const given = [mappings?.[i]?.['servicePort'], portDefs?.[i]?.['port'], ports?.[i]].find(
      (p) => typeof p === 'number' && p !== 0,
    ) as number | undefined;
    chosen.push(given ?? next());
  }
  mappings?.forEach((m, i) => {
    m['servicePort'] = chosen[i];
  });
  portDefs?.forEach((p, i) => {
    p['port'] = chosen[i];
  });
  if (ports) out['ports'] = ports.map((_, i) => chosen[i] as number);
  return out;
}

/**
 * A definition as Marathon returns it after a POST: absolute id first, the defaults every era
 * reports, and `version`/`versionInfo`. Networking keys stay in the shape given (see AppDefinition).
 */
export function normalizeDefinition(def: JsonObject, version: string): JsonObject {
  const { id, ...rest } = def;
  const defaults: JsonObject = {
    cmd: null,
    args: null,
    user: null,
    env: {},
    instances: 1,
    cpus: 1,
    mem: 128,
    disk: 0,
    executor: '',
    constraints: [],
    uris: [],
    backoffSeconds: 1,
    backoffFactor: 1.15,
    maxLaunchDelaySeconds: 3600,
    healthChecks: [],
    dependencies: [],
    upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
    labels: {},
    requirePorts: false,
  };
  if (rest['container'] !== undefined) delete defaults['cmd'];
  const out: JsonObject = { id: canonicalAppId(String(id)), ...rest };
  for (const [key, value] of Object.entries(defaults)) if (!(key in out)) out[key] = value;
  out['version'] = version;
  out['versionInfo'] = { lastScalingAt: version, lastConfigChangeAt: version };
  return out;
}
