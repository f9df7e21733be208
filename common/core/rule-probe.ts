/**
 * The pure parts of checking a rule (ACL) with HAProxy before the api stores it: which form the
 * default template gives the rule, the probe config that holds it in that form, the shape key under
 * which a probe's verdict is cached, and HAProxy's `[ALERT]` output mapped back to the rule.
 *
 * No I/O here; api/rule-check.ts runs `haproxy -c` on the probe.
 */

/**
 * How templates/haproxy.cfg.liquid writes a rule into `frontend http-in`:
 * - `anonymous`: `use_backend <app>-cluster if { <rule> }`;
 * - `named`: `acl <app>-aclrule <rule>` + `use_backend <app>-cluster if <app>-aclrule`, for a rule of
 *   more than 48 words or one holding `{`, `}` or `#` (which would read differently inside braces).
 * Mirrors the template's own test, word count included: Liquid's `split: " "` drops trailing empty
 * words only.
 */
export type RuleForm = 'anonymous' | 'named';

export function ruleForm(acl: string): RuleForm {
  const words = acl.split(' ');
  while (words.length > 0 && words[words.length - 1] === '') words.pop();
  return words.length > 48 || /[{}#]/.test(acl) ? 'named' : 'anonymous';
}

/** Name the probe gives the app; HAProxy's messages that mention it are about the probe, not the rule. */
export const PROBE_APP = 'bamboo-rule-probe';

/**
 * A minimal haproxy.cfg holding `acl` the way the default template would (same defaults section
 * mode and frontend name), plus the line numbers of the rule's lines. It reads no file, binds
 * nothing under `haproxy -c`, and needs no environment.
 */
export interface Probe {
  text: string;
  /** Lines (1-based) of the probe that hold the rule or refer to it; the rule's text is on the first. */
  ruleLines: number[];
  /** Characters before the rule's text on `ruleLines[0]` (HAProxy's `at position N` counts from 1). */
  ruleOffset: number;
}

export function probeConfig(acl: string): Probe {
  const lines = [
    '# Bamboo rule probe: one rule in the form templates/haproxy.cfg.liquid gives it.',
    'defaults http-defaults',
    '    mode http',
    '    timeout connect 5s',
    '    timeout client 50s',
    '    timeout server 50s',
    'frontend http-in',
    '    bind 127.0.0.1:9',
  ];
  const ruleLines: number[] = [];
  const prefix = ruleForm(acl) === 'named' ? `    acl ${PROBE_APP}-aclrule ` : `    use_backend ${PROBE_APP}-cluster if { `;
  if (ruleForm(acl) === 'named') {
    lines.push(`${prefix}${acl}`);
    ruleLines.push(lines.length);
    lines.push(`    use_backend ${PROBE_APP}-cluster if ${PROBE_APP}-aclrule`);
    ruleLines.push(lines.length);
  } else {
    lines.push(`${prefix}${acl} }`);
    ruleLines.push(lines.length);
  }
  lines.push(`backend ${PROBE_APP}-cluster`, '');
  return { text: lines.join('\n'), ruleLines, ruleOffset: prefix.length };
}

/**
 * Why a rule must not be probed at all, or null: it would make `haproxy -c` read a file while
 * parsing (`-f <file>`, `-M`, a `map*` converter), and HAProxy's alerts quote the lines it cannot
 * parse, so the 400 would hand the writer the api host's files (its env file holds the auth token).
 * Quotes and backslashes are ignored here, as HAProxy's line parser removes them (`"-f"` is `-f`).
 */
export function probeRefusal(acl: string): string | null {
  const words = acl.replace(/["'\\]/g, '').split(' ').filter((w) => w !== '');
  if (words.length === 0) return null;
  if (/(^|,)\s*map[a-z_]*\s*\(/i.test(words[0])) return 'a map converter reads a file; rules may not read files';
  for (let i = 1; i < words.length && words[i].startsWith('-'); i++) {
    const w = words[i];
    if (w === '--') break;
    if (w === '-f' || w === '-M') return `the ${w} flag reads a file; rules may not read files`;
    if (w === '-m' || w === '-u') i++;
  }
  return null;
}

// ------------------------------------------------------------------------------------------------
// Shape keys
// ------------------------------------------------------------------------------------------------

/** Match methods whose patterns HAProxy takes as plain strings (nothing parsed at config time). */
const STRING_METHODS = new Set(['str', 'beg', 'end', 'sub', 'dir', 'dom']);

/**
 * ACL keywords whose default match is one of STRING_METHODS on a string sample. Anything else
 * (`src` and `*_ip`: addresses; `*_reg`: regexes; `*_len`, `*_cnt`, `*_val`, ports: integers;
 * `method`; booleans; unknown names) keeps its patterns in the key.
 */
const STRING_KEYWORDS = new Set([
  ...['path', 'url', 'base', 'hdr', 'fhdr', 'cook', 'urlp', 'url_param', 'shdr', 'scook'].flatMap((k) =>
    ['', '_beg', '_end', '_sub', '_dir', '_dom'].map((s) => k + s),
  ),
  'req.hdr', 'req.fhdr', 'req.cook', 'res.hdr', 'res.fhdr', 'res.cook', 'query', 'pathq',
  'req.ssl_sni', 'req_ssl_sni', 'ssl_fc_sni', 'ssl_fc_sni_end',
]);

/** Converters that keep a string a string, so the keyword's string match still applies. */
const STRING_CONVERTERS = new Set(['lower', 'upper']);

/** A word HAProxy's line parser reads as itself: no quote, escape, variable, comment or brace. */
const PLAIN_WORD = /^[A-Za-z0-9._~:/%@!&*+=?,;^()[\]|<>-]+$/;

/**
 * `hdr(host),lower` -> `{ name: 'hdr', converters: ['lower'] }`; null when the expression's
 * parentheses do not balance (HAProxy will say what is wrong; the key then keeps everything).
 */
function splitExpression(expr: string): { name: string; converters: string[] } | null {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '(') depth++;
    else if (c === ')') {
      if (--depth < 0) return null;
    } else if (c === ',' && depth === 0) {
      parts.push(expr.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) return null;
  parts.push(expr.slice(start));
  const nameOf = (p: string) => p.replace(/\(.*$/s, '');
  return { name: nameOf(parts[0]), converters: parts.slice(1).map(nameOf) };
}

/**
 * The cache key of a rule's probe: the rule with each pattern HAProxy does not parse at config time
 * replaced by one placeholder, so `hdr(host) -i a.example.com` and `hdr(host) -i b.example.com`
 * share a key (one probe), while `path_reg ^/a(` and `path_reg ^/b(` do not.
 *
 * The fetch expression (arguments and converters), every flag and its argument, the number of
 * patterns (HAProxy reads at most 64 words on a line) and the form the template gives the rule stay
 * literal. Patterns collapse only when the match is a plain string one
 * (`-m str|beg|end|sub|dir|dom`, or a string keyword such as `hdr`, `path_beg`, `hdr_dom` with no
 * `-m` and at most `lower`/`upper` converters) and every pattern is a plain word. A rule holding a
 * quote, backslash, `$`, `#` or brace anywhere keeps its whole text: HAProxy's line parser may
 * join, split or expand words there.
 */
export function ruleShapeKey(acl: string): string {
  const form = ruleForm(acl);
  const literal = `${form}|literal|${acl}`;
  if (/["'\\$#{}]/.test(acl)) return literal;
  const words = acl.split(' ').filter((w) => w !== '');
  if (words.length === 0) return literal;
  const expr = splitExpression(words[0]);
  if (!expr) return literal;
  let i = 1;
  let method: string | null = null;
  const flags: string[] = [];
  while (i < words.length && words[i].startsWith('-')) {
    const w = words[i];
    flags.push(w);
    i++;
    if (w === '--') break;
    if (w === '-m' || w === '-u' || w === '-f' || w === '-M') {
      // -M takes no argument in HAProxy, but a file flag of any kind never gets a shared key.
      if (w === '-f' || w === '-M') return literal;
      if (i >= words.length) return literal;
      if (w === '-m') method = words[i];
      flags.push(words[i]);
      i++;
    }
  }
  const patterns = words.slice(i);
  const stringMatch = method !== null
    ? STRING_METHODS.has(method)
    : STRING_KEYWORDS.has(expr.name) && expr.converters.every((c) => STRING_CONVERTERS.has(c));
  if (!stringMatch || !patterns.every((p) => PLAIN_WORD.test(p))) return literal;
  // The number of patterns stays: HAProxy reads at most 64 words on a line.
  return `${form}|shape|${[words[0], ...flags].join(' ')} <${patterns.length} strings>`;
}

// ------------------------------------------------------------------------------------------------
// HAProxy's verdict
// ------------------------------------------------------------------------------------------------

/**
 * HAProxy's reasons for rejecting the probe, as they concern the rule: the `[ALERT]` lines that
 * point at the rule's lines, without the file name, line number, and the probe's own names
 * (`error detected while parsing ACL 'bamboo-rule-probe-aclrule' :`), without the follow-up alert
 * on the `use_backend` line that only says the named ACL is missing, and without duplicates (the
 * named form reports once per line); a line parser's `at position N` becomes the character of the
 * rule. When no alert points at the rule, the other alerts (cleaned
 * the same way) are returned; an output without alerts gives [].
 */
export function ruleReasons(output: string, probe: Pick<Probe, 'ruleLines' | 'ruleOffset'>): string[] {
  const { ruleLines, ruleOffset } = probe;
  const onRule: string[] = [];
  const other: string[] = [];
  for (const raw of output.split('\n')) {
    if (!raw.includes('[ALERT]')) continue;
    if (/Error\(s\) found in configuration file|Fatal errors found in configuration/.test(raw)) continue;
    const loc = /parsing \[[^\]]*:(\d+)\]\s*:\s*/.exec(raw);
    let text = loc ? raw.slice(loc.index + loc[0].length) : raw.replace(/^\s*\[ALERT\]\s*(\(\d+\))?\s*:\s*(config\s*:\s*)?/, '');
    // The line parser's `at position N` counts in the probe's line; say where it is in the rule.
    const onRuleText = loc !== null && Number(loc[1]) === ruleLines[0];
    text = text
      .replace(/ at position (\d+)\s*:?\s*$/, (_m, n: string) => (onRuleText && Number(n) > ruleOffset ? ` at character ${Number(n) - ruleOffset} of the rule` : ''))
      .replace(/, position (\d+):/, (_m, n: string) => (onRuleText && Number(n) > ruleOffset ? `, at character ${Number(n) - ruleOffset} of the rule:` : ':'));
    text = cleanReason(text);
    if (text === '' || text.includes(`no such ACL : '${PROBE_APP}-aclrule'`)) continue;
    const target = loc && ruleLines.includes(Number(loc[1])) ? onRule : other;
    if (!target.includes(text)) target.push(text);
  }
  return onRule.length > 0 ? onRule : other;
}

function cleanReason(text: string): string {
  return text
    .replace(/error detected while parsing (?:switching rule|ACL '[^']*'|an? '[^']*' condition)\s*:\s*/g, '')
    .replace(new RegExp(`\\s*(?:in|for) (?:proxy|frontend|backend) '(?:http-in|${PROBE_APP}-cluster)'`, 'g'), '')
    .replace(/\s*\.+\s*$/, '')
    .trim();
}
