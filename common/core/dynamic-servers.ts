/**
 * Dynamic servers: which server lines a running HAProxy 2.6 can take through `add server` instead of
 * a reload, and with which options. Pure: it reads the rendered config text only.
 *
 * What HAProxy 2.6 allows (management guide, "add server"; checked against 2.6.12 here):
 * - the backend must use a dynamic load-balancing algorithm: `roundrobin`, `leastconn`, `first` or
 *   `random` (`source`, `uri`, `static-rr`, ... answer "Backend must use a dynamic load balancing");
 * - `default-server` settings are not applied: the worker passes the effective options itself, the
 *   defaults section's `default-server` words, then the backend's, then the line's own;
 * - only a subset of server keywords is accepted (no `cookie`, no `init-addr`, no `resolvers`); an
 *   address is taken as written and never resolved (`init-addr none`), so the worker resolves it;
 * - the server starts in maintenance and its health check disabled: `enable health`, then
 *   `set server ... state ready`;
 * - it is not in the config file: the worker writes the same line there, so a reload or a restart
 *   builds it as a plain server.
 * A line that falls outside this takes the reload path, with the reason.
 */

/** Server keywords `add server` accepts in HAProxy 2.6, with the number of arguments each takes. */
const ADDABLE: ReadonlyMap<string, number> = new Map([
  ...['agent-check', 'allow-0rtt', 'backup', 'check', 'check-send-proxy', 'check-ssl', 'check-via-socks4', 'enabled',
    'force-sslv3', 'force-tlsv10', 'force-tlsv11', 'force-tlsv12', 'force-tlsv13', 'no-ssl-reuse', 'no-sslv3',
    'no-tlsv10', 'no-tlsv11', 'no-tlsv12', 'no-tlsv13', 'no-tls-tickets', 'send-proxy', 'send-proxy-v2',
    'send-proxy-v2-ssl', 'send-proxy-v2-ssl-cn', 'ssl', 'tfo', 'tls-tickets'].map((k) => [k, 0] as const),
  ...['agent-addr', 'agent-inter', 'agent-port', 'agent-send', 'alpn', 'addr', 'ca-file', 'check-alpn', 'check-proto',
    'check-sni', 'ciphers', 'ciphersuites', 'crl-file', 'crt', 'downinter', 'error-limit', 'fall', 'fastinter', 'inter',
    'maxconn', 'maxqueue', 'minconn', 'npn', 'observe', 'on-error', 'on-marked-down', 'on-marked-up', 'pool-low-conn',
    'pool-max-conn', 'pool-purge-delay', 'port', 'proto', 'proxy-v2-options', 'rise', 'slowstart', 'sni', 'ssl-max-ver',
    'ssl-min-ver', 'verify', 'verifyhost', 'weight', 'ws'].map((k) => [k, 1] as const),
]);

/**
 * What a word of an `add server` command may hold. The runtime path skips `haproxy -c`, and HAProxy's
 * CLI ends a command at `;` and reads quotes and `\\` escapes: a word with anything else (say, a
 * label a custom template put on a server line) could run a command of its own. Such a line reloads
 * instead, where HAProxy's parser checks it.
 */
export const CLI_WORD = /^[A-Za-z0-9_.:,/@%+=!-]+$/;

/** Load-balancing algorithms that accept dynamic servers (the hash-based ones only with `hash-type consistent`: not used here). */
const DYNAMIC_BALANCE = /^(roundrobin|leastconn|first|random)(\(|$)/;

/** Whether a backend balancing with `algorithm` ("" for HAProxy's default, roundrobin) can take `add server`. */
export function dynamicBalance(algorithm: string): boolean {
  return algorithm === '' || DYNAMIC_BALANCE.test(algorithm);
}

/**
 * Whether the default template's backends and listeners of an app can take `add server`: no port
 * sticky (`cookie` is refused) and every port on a dynamic balance algorithm. Template data sizes
 * such apps without spare slots (common/core/slots.ts).
 */
export function growsAtRuntime(ports: ReadonlyArray<{ sticky: boolean; balance: string }>): boolean {
  return ports.every((p) => !p.sticky && dynamicBalance(p.balance));
}

/**
 * The options of an `add server` command for a server line's words (after the address), given the
 * `default-server` words in force: `init-addr` dropped (the worker passes an address), `disabled`
 * dropped (a server is added in maintenance anyway and left there). An error names the first word
 * HAProxy would refuse.
 */
export function addServerOptions(defaults: readonly string[], own: readonly string[]): { options: string[] } | { error: string } {
  const options: string[] = [];
  const words = [...defaults, ...own];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w === 'init-addr') {
      i++;
      continue;
    }
    if (w === 'disabled') continue;
    const args = ADDABLE.get(w);
    if (args === undefined) return { error: `option "${w}" cannot be given to a server added at runtime` };
    if (args > 0 && i + args >= words.length) return { error: `option "${w}" has no value` };
    const taken = words.slice(i, i + 1 + args);
    const unsafe = taken.find((x) => !CLI_WORD.test(x));
    if (unsafe !== undefined) return { error: `option "${w}" has a value the Runtime API cannot pass safely` };
    options.push(...taken);
    i += args;
  }
  return { options };
}

/** Where a section's header line starts in `text`, looking back from `lineStart` (-1: none). */
function headerBefore(text: string, lineStart: number): number {
  let end = lineStart - 1;
  while (end > 0) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    if (end > start) {
      const c = text.charCodeAt(start);
      if (c !== 0x20 && c !== 0x09 && c !== 0x23) return start;
    }
    end = start - 1;
  }
  return -1;
}

/** The lines of the section whose header starts at `start`, up to `until` (exclusive) or the next header. */
function sectionBody(text: string, start: number, until: number): string[] {
  const out: string[] = [];
  let p = text.indexOf('\n', start);
  while (p >= 0 && p + 1 < until) {
    const nl = text.indexOf('\n', p + 1);
    const line = text.slice(p + 1, nl < 0 ? Math.min(text.length, until) : Math.min(nl, until));
    const c = line.charCodeAt(0);
    if (line.length > 0 && c !== 0x20 && c !== 0x09 && c !== 0x23) break;
    out.push(line);
    p = nl;
  }
  return out;
}

/** The first word after `keyword` on the section's lines, each `keyword` line's words in order for `default-server`. */
function directives(lines: readonly string[]): { defaultServer: string[]; balance: string | null; serverNames: Set<string> } {
  const defaultServer: string[] = [];
  let balance: string | null = null;
  const serverNames = new Set<string>();
  for (const line of lines) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'default-server') defaultServer.push(...words.slice(1));
    else if (words[0] === 'balance' && words.length > 1) balance = words[1];
    else if (words[0] === 'server' && words.length > 1) serverNames.add(words[1]);
  }
  return { defaultServer, balance, serverNames };
}

/** What `add server` needs to know about the backend a line is added to. */
export interface AddContext {
  /** `default-server` words in force at the line: the defaults section's, then the backend's before it. */
  defaultServer: string[];
  /** The backend's `balance` algorithm, else its defaults section's, else "" (HAProxy's roundrobin). */
  balance: string;
  /** Names of the servers the section declares anywhere. */
  serverNames: Set<string>;
}

/**
 * The context of a line of a `backend`/`listen` section starting at `lineStart` in `text`: the
 * defaults section it inherits (`from <name>`, else the last `defaults` before it) and the section's
 * own lines. Null when the line is not inside such a section.
 */
export function addContext(text: string, lineStart: number): AddContext | null {
  const header = headerBefore(text, lineStart);
  if (header < 0) return null;
  const eol = text.indexOf('\n', header);
  const head = text.slice(header, eol < 0 ? text.length : eol).trim().split(/\s+/);
  if (head[0] !== 'backend' && head[0] !== 'listen') return null;
  const fromAt = head.indexOf('from');
  const named = fromAt > 0 ? head[fromAt + 1] : undefined;
  const defaults = defaultsSection(text, header, named);
  const inherited = defaults < 0 ? directives([]) : directives(sectionBody(text, defaults, text.length));
  const before = directives(sectionBody(text, header, lineStart));
  const whole = directives(sectionBody(text, header, text.length));
  return {
    defaultServer: [...inherited.defaultServer, ...before.defaultServer],
    balance: whole.balance ?? inherited.balance ?? '',
    serverNames: whole.serverNames,
  };
}

/** Start of the defaults section named `name` (any position), or of the last `defaults` before `header`. */
function defaultsSection(text: string, header: number, name: string | undefined): number {
  if (name !== undefined) {
    for (let at = text.indexOf('defaults'); at >= 0; at = text.indexOf('defaults', at + 1)) {
      if (at > 0 && text.charCodeAt(at - 1) !== 0x0a) continue;
      const eol = text.indexOf('\n', at);
      const words = text.slice(at, eol < 0 ? text.length : eol).trim().split(/\s+/);
      if (words[0] === 'defaults' && words[1] === name) return at;
    }
    return -1;
  }
  for (let at = text.lastIndexOf('\ndefaults', header); at >= 0; at = text.lastIndexOf('\ndefaults', at - 1)) {
    const c = text.charCodeAt(at + 9);
    if (Number.isNaN(c) || c === 0x20 || c === 0x09 || c === 0x0a) return at + 1;
  }
  return text.startsWith('defaults') ? 0 : -1;
}
