/**
 * The `{% app <var> %}...{% endapp %}` block tag the default template puts around every per-app
 * fragment: it records which output lines each app produced (origins), and memoises the block's output
 * per (block, app), keyed by everything the body may read, with the body run in an isolated scope
 * (render.ts's header says why that makes the memo sound).
 */
import { Context, Liquid, Tag, TypeGuards, Value, toValueSync } from 'liquidjs';
import type { Emitter, Parser, TagToken, Template, TopLevelToken } from 'liquidjs';
import { isDeepFrozen, jsonClone, jsonEqual, sameApp } from './app-equality.js';
import type { AppData, HAProxySettings, ServiceRecord } from './model.js';

/** Where one app's block landed in the output (1-based, inclusive line numbers). */
export interface Origin {
  appId: string;
  startLine: number;
  endLine: number;
}

/** What the renderer keeps of one rendered block. */
export interface MemoEntry {
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
export class LineCountingEmitter implements Emitter {
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
export interface AppState {
  app: AppData;
  service: ServiceRecord | undefined;
  version: number;
  gen: number;
}

export interface RenderState {
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

export interface Engine {
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

export function makeAppTag(engine: Engine) {
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
