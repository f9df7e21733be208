/**
 * Template data + Liquid template -> haproxy.cfg text.
 *
 * Rendering is synchronous and pure: the same template, data and settings give byte-equal text. The
 * Liquid engine runs with strict variables and strict filters, so a typo is an error (a TemplateError
 * naming file, line and column), never a silently empty value.
 *
 * Two additions to plain Liquid, both carried by the `{% app <var> %}...{% endapp %}` block tag that
 * the default template puts around every per-app fragment:
 *
 * - Origins: the renderer records which output lines each app's fragments produced, so the worker
 *   can map a `haproxy -c` error line back to the app that caused it and quarantine that app alone.
 * - Memoisation: the block's output is kept per (block, app), keyed by everything the body may
 *   read (the app, its service record, the HAProxy settings), compared by value (app data deep-frozen
 *   by buildTemplateData's memo cannot change, so the same object again needs no comparison and is
 *   kept without a copy). Re-rendering after a
 *   one-app change re-renders only that app's blocks. To make that sound, the body runs in an
 *   isolated scope holding only the app (under the block's variable name), `Services` restricted to
 *   that app's record, and `HAProxy`; a reference to anything else is an undefined-variable error,
 *   not stale output. The memo lives in the Renderer and keeps only apps seen in the last render.
 */
import { Context, Liquid, LiquidError, Tag, TypeGuards, Value, toValueSync } from 'liquidjs';
import type { Emitter, Parser, TagToken, Template, TopLevelToken } from 'liquidjs';
import { firstNonPrintable, printable } from './acl.js';
import { isDeepFrozen, jsonClone, jsonEqual, sameApp } from './app-equality.js';
import { BAMBOO_FILTERS } from './liquid-filters.js';
import type { AppData, HAProxySettings, ServiceRecord, TemplateData, Warning } from './model.js';
import { buildTemplateData } from './template-data.js';

/** Where one app's block landed in the output (1-based, inclusive line numbers). */
export interface Origin {
  appId: string;
  startLine: number;
  endLine: number;
}

export interface RenderResult {
  text: string;
  /** One entry per rendered `{% app %}` block with visible content, in output order. */
  origins: Origin[];
}

export interface RenderStats {
  /** Blocks served from the memo in the last render. */
  hits: number;
  /** Blocks rendered in the last render. */
  misses: number;
  /** Memo entries kept after the last render. */
  entries: number;
}

export interface Renderer {
  /** The file name used in error messages. */
  readonly filename: string;
  /**
   * Renders the template. Throws a TemplateError when the template fails (undefined variable or
   * filter, a filter error, a misused `{% app %}` block) or a setting is not one printable line.
   * A failed render leaves the memo usable.
   */
  render(data: TemplateData, settings: HAProxySettings): RenderResult;
  /** Counters of the last render, for tests and benchmarks. */
  stats(): RenderStats;
}

/** A template that cannot be parsed or rendered, or settings that cannot be rendered safely. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError';
  constructor(
    /** One line: `file:line:column: what went wrong`. */
    message: string,
    readonly file: string,
    readonly line?: number,
    readonly column?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * An `{% app %}` block renders once per app and is reused wherever that app stands, so it cannot see
 * its position (Bamboo templates used `$index`): said where the error would otherwise only name forloop.
 */
const FORLOOP_HINT =
  ' (inside {% app %} a block cannot depend on its position: name things by app.EscapedId, or loop with a plain {% for app in Apps %} where forloop works; see "Porting a Bamboo template" in docs/templates.md)';

function toTemplateError(err: unknown, file: string): TemplateError {
  if (err instanceof TemplateError) return err;
  if (err instanceof Error && LiquidError.is(err)) {
    const token = (err as unknown as { token?: { getPosition?: () => [number, number] } }).token;
    const original = (err as unknown as { originalError?: unknown }).originalError;
    if (original instanceof TemplateError) return original;
    const pos = token && typeof token.getPosition === 'function' ? token.getPosition() : undefined;
    const bare = oneLine(err.message.replace(/(, file:.*?)?, line:\d+, col:\d+$/, ''));
    const hint = /undefined variable: forloop\b/.test(bare) ? FORLOOP_HINT : '';
    if (pos) return new TemplateError(`${file}:${pos[0]}:${pos[1]}: ${bare}${hint}`, file, pos[0], pos[1], { cause: err });
    return new TemplateError(`${file}: ${bare}${hint}`, file, undefined, undefined, { cause: err });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new TemplateError(`${file}: ${oneLine(msg)}`, file, undefined, undefined, { cause: err });
}

const SETTING_KEYS = ['HttpBind', 'StatsBind', 'StatsUser', 'StatsPassword', 'AdminSocket', 'BindOptions', 'ServerStateFile', 'PrometheusExporter', 'HttpsBind', 'CrtList', 'HstsMaxAge'] as const;

/** Settings go into the config verbatim, so each must be one printable line (like an ACL). */
function checkedSettings(settings: HAProxySettings): HAProxySettings {
  const out = {} as Record<(typeof SETTING_KEYS)[number], string>;
  for (const key of SETTING_KEYS) {
    const v = (settings as unknown as Record<string, unknown>)?.[key];
    if (v === undefined || v === null) {
      out[key] = '';
      continue;
    }
    if (typeof v !== 'string') throw new TemplateError(`settings: HAProxy.${key} must be a string`, '<settings>');
    if (firstNonPrintable(v) >= 0) {
      throw new TemplateError(`settings: HAProxy.${key} must be one printable line (it contains a control character)`, '<settings>');
    }
    out[key] = v;
  }
  return out;
}

/** What the renderer keeps of one rendered block. */
interface MemoEntry {
  /** Version of the app's inputs (see AppState) the text was rendered from. */
  version: number;
  text: string;
  /** Newlines in `text`. */
  newlines: number;
  /** Newlines before the first and the last visible character; -1 when the text is all blank. */
  firstLine: number;
  lastLine: number;
  /** Render generation that last used the entry. */
  gen: number;
}

function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

function memoEntry(version: number, text: string, gen: number): MemoEntry {
  let first = -1;
  let last = -1;
  for (let i = 0; i < text.length; i++) {
    if (!isBlank(text.charCodeAt(i))) {
      first = i;
      break;
    }
  }
  if (first >= 0) {
    for (let i = text.length - 1; i >= first; i--) {
      if (!isBlank(text.charCodeAt(i))) {
        last = i;
        break;
      }
    }
  }
  let newlines = 0;
  let firstLine = -1;
  let lastLine = -1;
  for (let i = text.indexOf('\n'); ; i = text.indexOf('\n', i + 1)) {
    if (first >= 0 && firstLine < 0 && (i < 0 || i > first)) firstLine = newlines;
    if (last >= 0 && lastLine < 0 && (i < 0 || i > last)) lastLine = newlines;
    if (i < 0) break;
    newlines++;
  }
  return { version, text, newlines, firstLine, lastLine, gen };
}

/**
 * The output buffer. It counts newlines as text arrives, so the app tag knows on which line a block
 * starts without searching the output: `buffer` is a concatenated (rope) string, and searching it
 * would flatten it on every block. liquidjs reads `buffer` after every nested render, so it must
 * stay a plain string property.
 */
class LineCountingEmitter implements Emitter {
  buffer = '';
  /** Newlines written so far. */
  newlines = 0;

  write(html: unknown): void {
    const s = typeof html === 'string' ? html : html === null || html === undefined ? '' : String(html);
    for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) this.newlines++;
    this.buffer += s;
  }

  /** Writes a memoised block whose newlines are already counted. */
  writeCounted(s: string, newlines: number): void {
    this.buffer += s;
    this.newlines += newlines;
  }
}

/** State of one render call, read by the app tag (rendering is synchronous, so one at a time). */
/**
 * The inputs of one app as of its last change: deep copies of its AppData and service record, and
 * a version number bumped whenever they differ (by value) from the previous render's. Blocks
 * remember the version they rendered; comparing the inputs once per app and render (instead of once
 * per block) keeps a 10,000-app re-render cheap.
 */
interface AppState {
  app: AppData;
  service: ServiceRecord | undefined;
  version: number;
  gen: number;
}

interface RenderState {
  emitter: LineCountingEmitter;
  /** AppData objects already compared in this render. */
  seen: Map<object, AppState>;
  services: Record<string, ServiceRecord>;
  settings: HAProxySettings;
  gen: number;
  origins: Origin[];
  hits: number;
  misses: number;
}

interface Engine {
  liquid: Liquid;
  /** Every app block of the parsed template; each keeps its own memo, keyed by app id. */
  blocks: Array<{ memo: Map<string, MemoEntry> }>;
  /** Inputs of every app seen in the last render, keyed by app id. */
  apps: Map<string, AppState>;
  version: number;
  current: RenderState | undefined;
}

/** `app` or `app in Apps` or `app in Apps reversed`. */
const APP_ARGS = /^([A-Za-z_][A-Za-z0-9_-]*)(?:\s+in\s+([A-Za-z_][A-Za-z0-9_.-]*)(\s+reversed)?)?$/;

function makeAppTag(engine: Engine) {
  return class AppTag extends Tag {
    /** The name the body sees the app under. */
    private readonly variable: string;
    /** Single form: the app itself. Loop form: the collection of apps. */
    private readonly value: Value;
    private readonly loop: boolean;
    private readonly reversed: boolean;
    private readonly templates: Template[] = [];
    readonly memo = new Map<string, MemoEntry>();

    constructor(token: TagToken, remainTokens: TopLevelToken[], liquid: Liquid, parser: Parser) {
      super(token, remainTokens, liquid);
      const m = APP_ARGS.exec(token.args.trim());
      if (!m) {
        throw new Error(`{% app %} takes the app variable ({% app app %}) or a loop ({% app app in Apps %}), not "${token.args.trim()}"`);
      }
      this.variable = m[1];
      this.loop = m[2] !== undefined;
      this.reversed = m[3] !== undefined;
      this.value = new Value(this.loop ? m[2] : m[1], liquid);
      engine.blocks.push(this);
      while (remainTokens.length) {
        const next = remainTokens.shift() as TopLevelToken;
        if (TypeGuards.isTagToken(next) && next.name === 'endapp') return;
        this.templates.push(parser.parseToken(next, remainTokens));
      }
      throw new Error(`tag ${token.getText()} not closed`);
    }

    // Synchronous on purpose: a memo hit must cost a map lookup, not a trip through liquidjs'
    // generator machinery (Renderer.render only ever renders synchronously).
    render(ctx: Context, emitter: Emitter): void {
      const st = engine.current;
      if (!st || emitter !== st.emitter) {
        throw new Error('{% app %} blocks cannot be nested or used inside {% capture %}: put them at the top level of the template, or in for/if/unless/case');
      }
      const value = toValueSync(this.value.value(ctx, false));
      if (!this.loop) {
        this.emit(st, ctx, value as AppData);
        return;
      }
      if (!Array.isArray(value)) throw new Error(`{% app ${this.variable} in ... %}: the collection is not a list of apps`);
      if (this.reversed) for (let i = value.length - 1; i >= 0; i--) this.emit(st, ctx, value[i] as AppData);
      else for (let i = 0; i < value.length; i++) this.emit(st, ctx, value[i] as AppData);
    }

    private emit(st: RenderState, ctx: Context, app: AppData): void {
      if (app === null || typeof app !== 'object' || typeof app.Id !== 'string') {
        throw new Error(`{% app ${this.variable} %}: "${this.variable}" is not an app (an element of Apps)`);
      }
      const id = app.Id;
      const service = Object.prototype.hasOwnProperty.call(st.services, id) ? st.services[id] : undefined;
      let state = st.seen.get(app);
      if (state === undefined) {
        state = engine.apps.get(id);
        // Deep-frozen data (buildTemplateData with a memo) cannot change: it is kept as is, not
        // copied, and the same object again needs no comparison. Anything else is copied and
        // compared by value, so data mutated in place between renders is seen.
        const frozen = isDeepFrozen(app);
        if (state === undefined || (state.app !== app && !sameApp(state.app, app)) || !jsonEqual(state.service, service)) {
          state = { app: frozen ? app : jsonClone(app), service: jsonClone(service), version: ++engine.version, gen: st.gen };
          engine.apps.set(id, state);
        } else if (frozen && state.app !== app) {
          state.app = app;
        }
        state.gen = st.gen;
        st.seen.set(app, state);
      }
      let entry = this.memo.get(id);
      if (entry === undefined || entry.version !== state.version) {
        // The body renders into its own buffer, in a scope that holds only what the memo key
        // covers, so that a memoised block can never differ from a fresh one.
        const scope: Record<string, unknown> = {
          [this.variable]: app,
          Services: service ? { [id]: service } : {},
          HAProxy: st.settings,
        };
        engine.current = undefined;
        let text: string;
        try {
          text = toValueSync(this.liquid.renderer.renderTemplates(this.templates, ctx.spawn(scope))) as string;
        } finally {
          engine.current = st;
        }
        entry = memoEntry(state.version, text, st.gen);
        this.memo.set(id, entry);
        st.misses++;
      } else {
        entry.gen = st.gen;
        st.hits++;
      }
      if (entry.text === '') return;
      // Output lines are 1-based: the block starts on the line after the newlines written so far.
      const line = st.emitter.newlines + 1;
      if (entry.firstLine >= 0) {
        st.origins.push({ appId: id, startLine: line + entry.firstLine, endLine: line + entry.lastLine });
      }
      st.emitter.writeCounted(entry.text, entry.newlines);
    }
  };
}

/**
 * Constructs only Go's text/template has (`{{ range`, `{{ end }}`, `{{ .Field`, `{{ $var :=`,
 * Go comments opening with a slash and a star...): the line of the first, or null. Liquid has `{% %}` tags and `{{ value }}` outputs of
 * lower-case or Liquid-spelt names, so none of these is a valid Liquid output.
 */
const GO_TEMPLATE = /\{\{-?\s*(?:range\s|end\s*-?\}\}|else\s*-?\}\}|if\s|with\s|define\s|template\s|block\s|\/\*|\.[A-Za-z]|\$[A-Za-z_]\w*\s*:?=|\$\.)/;

export function goTemplateLine(text: string): number | null {
  const m = GO_TEMPLATE.exec(text);
  if (!m) return null;
  let line = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < m.index; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/**
 * Parses a template once and returns a Renderer for it. Throws a TemplateError naming the file and
 * line when the template cannot be parsed.
 */
export function createRenderer(templateText: string, opts: { filename?: string } = {}): Renderer {
  const filename = opts.filename ?? 'haproxy.cfg.liquid';
  const go = goTemplateLine(templateText);
  if (go !== null) {
    throw new TemplateError(
      `${filename}:${go}: this is a Go text/template (Bamboo's format), not Liquid; port it as "Porting a Bamboo template" in docs/templates.md shows`,
      filename, go, undefined,
    );
  }
  const liquid = new Liquid({
    strictVariables: true,
    strictFilters: true,
    // `{% if app.Env.BAMBOO_TCP_PORT %}` and `| default:` must work on absent keys, as in Bamboo.
    lenientIf: true,
    ownPropertyOnly: true,
    cache: false,
  });
  for (const [name, fn] of Object.entries(BAMBOO_FILTERS)) liquid.registerFilter(name, fn);
  const engine: Engine = { liquid, blocks: [], apps: new Map(), version: 0, current: undefined };
  liquid.registerTag('app', makeAppTag(engine));

  let templates: Template[];
  try {
    templates = liquid.parse(templateText, filename);
  } catch (err) {
    throw toTemplateError(err, filename);
  }

  let gen = 0;
  let settingsKey: string | undefined;
  let last: RenderStats = { hits: 0, misses: 0, entries: 0 };

  return {
    filename,
    stats: () => ({ ...last }),
    render(data: TemplateData, settings: HAProxySettings): RenderResult {
      const safeSettings = checkedSettings(settings);
      const key = JSON.stringify(safeSettings);
      if (key !== settingsKey) {
        // Every block may read HAProxy.*, so a settings change invalidates all of them.
        for (const block of engine.blocks) block.memo.clear();
        engine.apps.clear();
        settingsKey = key;
      }
      const services = data && typeof data.Services === 'object' && data.Services !== null ? data.Services : {};
      const st: RenderState = {
        emitter: new LineCountingEmitter(),
        seen: new Map(),
        services,
        settings: safeSettings,
        gen: ++gen,
        origins: [],
        hits: 0,
        misses: 0,
      };
      const scope = { Apps: data?.Apps ?? [], Services: services, HAProxy: safeSettings };
      const ctx = new Context(scope, liquid.options, { sync: true }, { liquid });
      engine.current = st;
      try {
        // What liquid.renderSync does, but into our own buffer so the app tag can find line numbers.
        toValueSync(liquid.renderer.renderTemplates(templates, ctx, st.emitter));
      } catch (err) {
        throw toTemplateError(err, filename);
      } finally {
        engine.current = undefined;
      }
      // Keep the memo bounded: drop blocks of apps that this render did not use.
      let entries = 0;
      for (const [k, a] of engine.apps) if (a.gen !== st.gen) engine.apps.delete(k);
      for (const block of engine.blocks) {
        for (const [k, e] of block.memo) if (e.gen !== st.gen) block.memo.delete(k);
        entries += block.memo.size;
      }
      last = { hits: st.hits, misses: st.misses, entries };
      return { text: st.emitter.buffer, origins: st.origins };
    },
  };
}

/**
 * The app ids whose blocks produced any of the given output lines (e.g. line numbers from
 * `haproxy -c` errors), sorted and without duplicates. Lines outside every block map to nothing.
 */
export function appsAtLines(origins: readonly Origin[], lines: readonly number[]): string[] {
  const found = new Set<string>();
  if (origins.length === 0 || lines.length === 0) return [];
  // Origins come in output order and do not overlap, so a binary search finds the candidate.
  const sorted = origins.every((o, i) => i === 0 || origins[i - 1].startLine <= o.startLine)
    ? origins
    : [...origins].sort((a, b) => a.startLine - b.startLine);
  for (const line of lines) {
    let lo = 0;
    let hi = sorted.length - 1;
    let idx = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid].startLine <= line) {
        idx = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (idx >= 0 && line <= sorted[idx].endLine) found.add(sorted[idx].appId);
  }
  return [...found].sort();
}

/** Parses and renders in one go (no memo survives). Throws TemplateError like createRenderer/render. */
export function renderOnce(templateText: string, data: TemplateData, settings: HAProxySettings, opts: { filename?: string } = {}): RenderResult {
  return createRenderer(templateText, opts).render(data, settings);
}

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
}): { text: string; warnings: Warning[] } {
  if (typeof opts.now !== 'number' || !Number.isFinite(opts.now)) fail('now must be a number of ms since the epoch');
  const apps = appsFromJson(opts.appsJson);
  const services = servicesFromJson(opts.servicesJson);
  const { data, warnings } = buildTemplateData({ apps, services, now: opts.now });
  const result = renderOnce(opts.templateText, data, opts.settings, { filename: opts.templateFile });
  return { text: result.text, warnings };
}
