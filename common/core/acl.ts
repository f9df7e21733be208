/**
 * Validation of the two user-supplied strings that end up inside haproxy.cfg: ACL rules and app ids.
 *
 * Bamboo pasted ACL text into the config unchecked, so a newline in a rule injected arbitrary HAProxy
 * directives (and a bad rule stopped every update). These checks are pure and shared: the api rejects
 * bad input at its edge, and buildTemplateData drops any record that still fails them.
 */

export type ValidationResult = { ok: true } | { ok: false; code: string; message: string };

/** Longest ACL accepted, in characters. HAProxy's own line limit is larger; rules are short in practice. */
export const MAX_ACL_LENGTH = 1024;

/** Longest app id accepted (Marathon ids are far shorter). */
export const MAX_APP_ID_LENGTH = 512;

const OK: ValidationResult = { ok: true };

/**
 * The index of the first character that cannot appear on one printable config line, or -1: every C0
 * control (TAB included: a rule has no reason to carry one), DEL, the C1 controls, and the Unicode
 * line and paragraph separators (some editors and log viewers break lines on them).
 */
export function firstNonPrintable(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f) || c === 0x2028 || c === 0x2029) return i;
  }
  return -1;
}

function describeChar(text: string, i: number): string {
  const c = text.charCodeAt(i);
  const names: Record<number, string> = {
    0x00: 'NUL', 0x09: 'tab', 0x0a: 'newline', 0x0d: 'carriage return', 0x7f: 'DEL',
    0x2028: 'line separator', 0x2029: 'paragraph separator',
  };
  const hex = `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  return names[c] ? `${names[c]} (${hex})` : `control character ${hex}`;
}

/**
 * Checks an HAProxy ACL rule (the text after `acl <name>`), e.g. `hdr(host) -i app.example.com`.
 * Never throws: a failure comes back as `{ ok: false, code, message }` with a stable code:
 * `ACL_NOT_STRING`, `ACL_EMPTY`, `ACL_TOO_LONG`, `ACL_CONTROL_CHAR`, `ACL_INVALID_UNICODE` (a lone
 * surrogate or U+FFFD), and for rules that reach outside the request: `ACL_FILE_ACCESS`,
 * `ACL_ENV_ACCESS`, `ACL_PROCESS_STATE`, `ACL_BAD_QUOTING` (see deniedUse). A rule is an ACL
 * condition on the request, never a way to read the load balancer's files, environment or state.
 */
export function validateAcl(acl: string): ValidationResult {
  if (typeof acl !== 'string') {
    return { ok: false, code: 'ACL_NOT_STRING', message: 'the ACL must be a string' };
  }
  if (acl.trim() === '') {
    return { ok: false, code: 'ACL_EMPTY', message: 'the ACL is empty; give a rule such as "path_beg -i /app/"' };
  }
  if (acl.length > MAX_ACL_LENGTH) {
    return {
      ok: false,
      code: 'ACL_TOO_LONG',
      message: `the ACL is ${acl.length} characters long; at most ${MAX_ACL_LENGTH} are allowed`,
    };
  }
  const bad = firstNonPrintable(acl);
  if (bad >= 0) {
    return {
      ok: false,
      code: 'ACL_CONTROL_CHAR',
      message: `the ACL contains a ${describeChar(acl, bad)} at position ${bad}; an ACL must be one printable line`,
    };
  }
  const broken = firstInvalidUnicode(acl);
  if (broken >= 0) return { ok: false, code: 'ACL_INVALID_UNICODE', message: invalidUnicodeMessage('the ACL', acl, broken) };
  const denied = deniedUse(acl);
  if (denied) return { ok: false, ...denied };
  return OK;
}

/**
 * The index of the first UTF-16 code unit that does not round-trip through strict UTF-8 and JSON, or
 * -1: a lone surrogate (half of a pair; strict JSON parsers such as jq and serde refuse its escape)
 * or U+FFFD, the replacement character a lenient decoder puts where a client sent invalid UTF-8
 * bytes, so the stored text would differ from what was meant.
 */
export function firstInvalidUnicode(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0xfffd) return i;
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return i;
    }
    if (c >= 0xdc00 && c <= 0xdfff) return i;
  }
  return -1;
}

/** The message for text whose character at `at` fails firstInvalidUnicode. */
export function invalidUnicodeMessage(what: string, text: string, at: number): string {
  const c = text.charCodeAt(at);
  const hex = `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  return c === 0xfffd
    ? `${what} contains U+FFFD (the replacement character, what invalid UTF-8 turns into) at position ${at}; send valid UTF-8 text`
    : `${what} contains a lone UTF-16 surrogate (${hex}) at position ${at}; strict JSON parsers cannot read it back. Send valid Unicode text`;
}

/** One word of a rule as HAProxy's line parser reads it: quotes removed, escapes decoded. */
export interface AclWord {
  /** The word as HAProxy sees it. */
  text: string;
  /** True when a `$` appeared inside double quotes: HAProxy expands environment variables there. */
  envExpansion: boolean;
}

/**
 * Splits a rule into words the way HAProxy 2.6's config line parser does (`parse_line`), so checks
 * see what HAProxy will see whatever the spelling: words are separated by spaces outside quotes;
 * quotes may start or stop anywhere in a word (`e"n"v` is `env`); inside single quotes nothing is
 * special; outside them a backslash escapes a space, quote, backslash or `#`, and `\r`, `\n`, `\t`,
 * `\xHH` are decoded (`-\x66` is `-f`); any other backslash stays. Returns null when a quote is left
 * open (HAProxy refuses the line).
 */
export function aclWords(acl: string): AclWord[] | null {
  const words: AclWord[] = [];
  let cur = '';
  let inWord = false;
  let env = false;
  let squote = false;
  let dquote = false;
  for (let i = 0; i < acl.length; i++) {
    const c = acl[i];
    if (squote) {
      if (c === "'") squote = false;
      else cur += c;
      continue;
    }
    if (c === "'" && !dquote) {
      squote = true;
      inWord = true;
      continue;
    }
    if (c === '"') {
      dquote = !dquote;
      inWord = true;
      continue;
    }
    if (c === '\\' && i + 1 < acl.length) {
      const n = acl[i + 1];
      const simple: Record<string, string> = { ' ': ' ', '\\': '\\', "'": "'", '"': '"', '#': '#', $: '$', r: '\r', n: '\n', t: '\t' };
      if (n === 'x' && /^[0-9A-Fa-f]{2}$/.test(acl.slice(i + 2, i + 4))) {
        cur += String.fromCharCode(parseInt(acl.slice(i + 2, i + 4), 16));
        i += 3;
      } else if (simple[n] !== undefined) {
        if (n === '$' && dquote) env = true; // an escaped `$` is still refused: no `$` inside double quotes
        cur += simple[n];
        i++;
      } else {
        cur += c;
      }
      inWord = true;
      continue;
    }
    if (c === '$' && dquote) env = true;
    if (c === ' ' && !dquote) {
      if (inWord) words.push({ text: cur, envExpansion: env });
      cur = '';
      inWord = false;
      env = false;
      continue;
    }
    cur += c;
    inWord = true;
  }
  if (squote || dquote) return null;
  if (inWord) words.push({ text: cur, envExpansion: env });
  return words;
}

/**
 * Sample fetches a rule may not use (lower case; HAProxy's names are case-sensitive, the check is
 * not): the environment, the host and process (`hostname`, `pid`, threads, CPU and latency counters,
 * the config file's path), other backends' and servers' state (an oracle on other apps' traffic),
 * stick tables, and variables (templates may keep values in them).
 */
const DENIED_FETCHES = new Set([
  'env', 'hostname', 'pid', 'proc', 'thread', 'nbproc', 'nbthread', 'stopping', 'last_rule_file', 'last_rule_line',
  'cpu_calls', 'cpu_ns_avg', 'cpu_ns_tot', 'lat_ns_avg', 'lat_ns_tot', 'var',
  'avg_queue', 'be_conn', 'be_conn_free', 'be_sess_rate', 'connslots', 'nbsrv', 'queue',
  'srv_conn', 'srv_conn_free', 'srv_is_up', 'srv_queue', 'srv_sess_rate', 'srv_iweight', 'srv_uweight', 'srv_weight',
  'table_avl', 'table_cnt',
]);

/** Source-address fetches that are not stick-table lookups (every other `src_*` is). */
const SRC_FETCHES = new Set(['src_port', 'src_is_local']);

/**
 * Converters a rule may not use: every `map*` converter and `jwt_verify` read files; stick-table
 * converters read (and `set-var`/`unset-var` write) shared state; `debug` writes to the process's
 * rings; Lua converters run whatever the loaded scripts do.
 */
const DENIED_CONVERTERS = new Set(['jwt_verify', 'in_table', 'set-var', 'unset-var', 'debug', 'nbsrv', 'srv_queue']);

/** A variable reference as a converter argument (`concat(,txn.secret,)`, `strcmp(proc.x)`). */
const VAR_ARG = /^\s*(proc|sess|txn|req|res|check)\.[A-Za-z0-9_.]/i;

type Denial = { code: string; message: string };

function fileDenial(what: string): Denial {
  return { code: 'ACL_FILE_ACCESS', message: `the ACL uses ${what}, which makes HAProxy read a file on the load balancer; a rule may only match request data` };
}

function stateDenial(what: string): Denial {
  return { code: 'ACL_PROCESS_STATE', message: `the ACL uses ${what}, which reads HAProxy's process, host or shared state (other apps' counters, tables, variables); a rule may only match request data` };
}

/** Splits `a(x,y),b(z)` into its elements at top-level commas: the fetch, then each converter. */
function chainElements(word: string): Array<{ name: string; args: string[] }> {
  const out: Array<{ name: string; args: string[] }> = [];
  let depth = 0;
  let start = 0;
  const push = (part: string) => {
    const open = part.indexOf('(');
    // `!` and `{` never belong to a fetch name; strip them so `!env(x)` is read as env.
    const name = (open < 0 ? part : part.slice(0, open)).trim().toLowerCase().replace(/^[!{]+/, '');
    const inner = open < 0 ? '' : part.slice(open + 1, part.lastIndexOf(')') > open ? part.lastIndexOf(')') : undefined);
    out.push({ name, args: open < 0 ? [] : inner.split(',') });
  };
  for (let i = 0; i < word.length; i++) {
    const c = word[i];
    if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) {
      push(word.slice(start, i));
      start = i + 1;
    }
  }
  push(word.slice(start));
  return out;
}

function deniedFetch(name: string): Denial | null {
  if (name === 'env') return { code: 'ACL_ENV_ACCESS', message: 'the ACL uses the env() fetch, which reads the environment of HAProxy (where secrets live); a rule may only match request data' };
  if (DENIED_FETCHES.has(name)) return stateDenial(`the ${name} fetch`);
  if (/^(sc\d*|src)_/.test(name) && !SRC_FETCHES.has(name)) return stateDenial(`the stick-table fetch ${name}`);
  if (name.startsWith('lua.')) return stateDenial(`the Lua fetch ${name}`);
  return null;
}

function deniedConverter(el: { name: string; args: string[] }): Denial | null {
  const { name } = el;
  if (name.startsWith('map')) return fileDenial(`the ${name} converter (maps are loaded from files)`);
  if (name === 'jwt_verify') return fileDenial('the jwt_verify converter (its key is a file)');
  if (DENIED_CONVERTERS.has(name) || name.startsWith('table_')) return stateDenial(`the ${name} converter`);
  if (name.startsWith('lua.')) return stateDenial(`the Lua converter ${name}`);
  if (el.args.some((a) => VAR_ARG.test(a))) return stateDenial(`a variable as an argument of ${name}`);
  return null;
}

/**
 * What a rule may not do, as a denial or null: load a file (`-f`, `-M`, `map*` converters,
 * `jwt_verify`), read the environment (`env()`, `$` inside double quotes) or read process, host or
 * shared state (see DENIED_FETCHES). Fetch names are checked where HAProxy reads a fetch: the first
 * word and the word after `{` (a template may place the rule inside a condition); a word elsewhere
 * that calls a denied name with parentheses is refused too, as are decoded control characters.
 */
function deniedUse(acl: string): Denial | null {
  const words = aclWords(acl);
  if (words === null) return { code: 'ACL_BAD_QUOTING', message: 'the ACL leaves a quote open; close every \' and " (HAProxy would refuse the line)' };
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w.envExpansion) {
      return { code: 'ACL_ENV_ACCESS', message: 'the ACL has a "$" inside double quotes, where HAProxy substitutes environment variables; use single quotes or no quotes for a literal "$"' };
    }
    const bad = firstNonPrintable(w.text);
    if (bad >= 0) return { code: 'ACL_CONTROL_CHAR', message: `the ACL decodes to a ${describeChar(w.text, bad)} (an escape sequence); an ACL must be one printable line` };
    if (/^-[fM]/.test(w.text)) return fileDenial(`the flag ${printable(w.text.slice(0, 2))}`);
    const fetchPosition = i === 0 || words[i - 1].text === '{';
    const elements = chainElements(w.text);
    // A pattern that merely reads like a fetch name (`hostname`, `env`) is fine; a call is not.
    if (!fetchPosition && !w.text.includes('(')) continue;
    for (let k = 0; k < elements.length; k++) {
      const el = elements[k];
      const d = k === 0 ? deniedFetch(el.name) ?? (fetchPosition ? null : deniedConverter(el)) : deniedConverter(el) ?? deniedFetch(el.name);
      if (d) return d;
    }
  }
  return null;
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * Checks a Marathon app id: an absolute path `/seg/seg`, each segment made of letters, digits, `-`,
 * `.` and `_`. Marathon itself only allows lower case; data written by Bamboo may have mixed case,
 * so case is not enforced. Rejected: empty ids, whitespace, control characters, empty segments
 * (`//`, trailing `/`), `.` and `..` segments. Never throws; codes: `APP_ID_NOT_STRING`,
 * `APP_ID_EMPTY`, `APP_ID_TOO_LONG`, `APP_ID_NOT_ABSOLUTE`, `APP_ID_EMPTY_SEGMENT`,
 * `APP_ID_DOT_SEGMENT`, `APP_ID_BAD_CHAR`.
 */
export function validateAppId(id: string): ValidationResult {
  if (typeof id !== 'string') return { ok: false, code: 'APP_ID_NOT_STRING', message: 'the app id must be a string' };
  if (id === '' || id === '/') return { ok: false, code: 'APP_ID_EMPTY', message: 'the app id is empty' };
  if (id.length > MAX_APP_ID_LENGTH) {
    return { ok: false, code: 'APP_ID_TOO_LONG', message: `the app id is longer than ${MAX_APP_ID_LENGTH} characters` };
  }
  if (!id.startsWith('/')) {
    return { ok: false, code: 'APP_ID_NOT_ABSOLUTE', message: `the app id "${printable(id)}" must start with "/"` };
  }
  const segments = id.slice(1).split('/');
  for (const seg of segments) {
    if (seg === '') {
      return { ok: false, code: 'APP_ID_EMPTY_SEGMENT', message: `the app id "${printable(id)}" has an empty path segment` };
    }
    if (seg === '.' || seg === '..') {
      return { ok: false, code: 'APP_ID_DOT_SEGMENT', message: `the app id "${printable(id)}" has a "${seg}" segment` };
    }
    if (!SEGMENT.test(seg)) {
      return {
        ok: false,
        code: 'APP_ID_BAD_CHAR',
        message: `the app id "${printable(id)}" may only contain letters, digits, "-", "." and "_" between slashes`,
      };
    }
  }
  return OK;
}

/** The text with every non-printable character shown as \uXXXX, for safe use in messages. */
export function printable(text: string, max = 200): string {
  let out = '';
  for (let i = 0; i < text.length && out.length < max; i++) {
    const c = text.charCodeAt(i);
    out += c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f) || c === 0x2028 || c === 0x2029
      ? `\\u${c.toString(16).padStart(4, '0')}`
      : text[i];
  }
  return text.length > max ? `${out}...` : out;
}
