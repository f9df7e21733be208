/**
 * The `bamboo render` dry run's input: a Marathon answer (/v2/apps, /v2/apps/{id}, /v2/groups, an
 * array or one app) and a services text (GET /api/services' shape, or an array of records) read
 * leniently into apps and service records, then built and rendered like the worker does.
 */
import { printable } from './acl.js';
import type { HAProxySettings, ServiceRecord, Warning } from './model.js';
import { oneLine, renderOnce } from './render.js';
import { buildTemplateData } from './template-data.js';
function fail(message: string): never {
  throw new Error(oneLine(message));
}

function parseJson(text: string, what: string): unknown {
  if (typeof text !== 'string') fail(`${what}: expected JSON text`);
  try {
    return JSON.parse(text);
  } catch (err) {
    return fail(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The apps of a group and of its subgroups (GET /v2/groups). */
function groupApps(group: Record<string, unknown>, out: unknown[], depth = 0): void {
  if (depth > 100) return;
  if (Array.isArray(group.apps)) out.push(...group.apps);
  if (Array.isArray(group.groups)) {
    for (const g of group.groups) {
      if (g !== null && typeof g === 'object' && !Array.isArray(g)) groupApps(g as Record<string, unknown>, out, depth + 1);
    }
  }
}

/**
 * `{"apps": [...]}` (GET /v2/apps), a bare array of apps, `{"app": {...}}` (GET /v2/apps/{id}), a
 * group with nested `groups` (GET /v2/groups), or one app definition.
 */
function appsFromJson(text: string): unknown[] {
  const doc = parseJson(text, 'apps JSON');
  if (Array.isArray(doc)) return doc;
  if (doc !== null && typeof doc === 'object') {
    const o = doc as Record<string, unknown>;
    if (Array.isArray(o.groups)) {
      const out: unknown[] = [];
      groupApps(o, out);
      return out;
    }
    if (Array.isArray(o.apps)) return o.apps;
    if (o.app !== null && typeof o.app === 'object' && !Array.isArray(o.app)) return [o.app];
    if (typeof o.id === 'string') return [o];
  }
  return fail('apps JSON must be a Marathon /v2/apps response ({"apps": [...]}) or an array of apps');
}

/** The shape GET /api/services returns (`{"/id": {"Id","Acl","Config"}}`), lower-case keys accepted, or an array of records. */
function servicesFromJson(text: string | undefined): Record<string, ServiceRecord> {
  if (text === undefined || text.trim() === '') return {};
  const doc = parseJson(text, 'services JSON');
  const out: Record<string, ServiceRecord> = {};
  const add = (key: string | undefined, rec: unknown) => {
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) {
      fail(`services JSON: the entry ${key === undefined ? '' : `"${printable(key)}" `}is not an object`);
    }
    const r = rec as Record<string, unknown>;
    const id = (r.Id ?? r.id ?? key) as unknown;
    if (typeof id !== 'string' || id === '') fail('services JSON: an entry has no "Id"');
    out[key ?? (id as string)] = {
      Id: id as string,
      Acl: (r.Acl ?? r.acl ?? '') as string,
      Config: (r.Config ?? r.config ?? {}) as Record<string, string>,
    };
  };
  if (Array.isArray(doc)) for (const rec of doc) add(undefined, rec);
  else if (doc !== null && typeof doc === 'object') for (const [k, v] of Object.entries(doc)) add(k, v);
  else fail('services JSON must be an object keyed by app id, as GET /api/services returns');
  return out;
}

/**
 * The `bamboo render` dry run: a /v2/apps response text and a services text in, haproxy.cfg text
 * and warnings out. Throws an Error with a one-line message on unreadable input, and a TemplateError
 * (also one line) when the template fails.
 */
export function renderFromFiles(opts: {
  appsJson: string;
  servicesJson?: string;
  templateText: string;
  /** Used in error messages. */
  templateFile?: string;
  settings: HAProxySettings;
  now: number;
  /** Slot sizing as the worker's (HAProxy.ServerSlotHeadroom, HAProxy.DynamicServers); default: spare slots everywhere. */
  slots?: { headroomPercent?: number; dynamic?: boolean };
}): { text: string; warnings: Warning[] } {
  if (typeof opts.now !== 'number' || !Number.isFinite(opts.now)) fail('now must be a number of ms since the epoch');
  const apps = appsFromJson(opts.appsJson);
  const services = servicesFromJson(opts.servicesJson);
  const { data, warnings } = buildTemplateData({ apps, services, now: opts.now, slots: opts.slots });
  const result = renderOnce(opts.templateText, data, opts.settings, { filename: opts.templateFile });
  return { text: result.text, warnings };
}
