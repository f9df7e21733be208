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
 *
 * The block tag is app-tag.ts; the `bamboo render` dry run's input parsing is render-input.ts.
 */
import { Context, Liquid, LiquidError, toValueSync } from 'liquidjs';
import type { Template } from 'liquidjs';
import { firstNonPrintable } from './acl.js';
import { BAMBOO_FILTERS } from './liquid-filters.js';
import type { HAProxySettings, TemplateData } from './model.js';
import { LineCountingEmitter, makeAppTag, type Engine, type Origin, type RenderState } from './app-tag.js';

export type { Origin } from './app-tag.js';

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

export function oneLine(s: string): string {
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
