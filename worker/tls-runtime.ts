/**
 * The running HAProxy's certificates made equal to the accepted ones through its Runtime API:
 * `new/set/commit ssl cert` for a certificate HAProxy lacks or holds with another fingerprint,
 * `add/del ssl crt-list` for entries to add, re-filter or remove, `del ssl cert` for removed ones.
 * The files are tls-certs.ts's; this is the conversation on the admin socket.
 */
import { cliCommand } from '../common/adapters/haproxy/master-cli.js';
import type { Accepted } from './tls-bundle.js';

/** HAProxy's CLI reads one line of commands into a buffer (tune.bufsize, 16 KiB by default). */
const CLI_LINE_MAX = 8000;

/** An entry of the running HAProxy's crt-list (`show ssl crt-list -n`). */
interface RunningEntry {
  path: string;
  line: number;
  filters: string[];
}

export class RuntimeRefused extends Error {
  override name = 'RuntimeRefused';
}

/** The running HAProxy has no HTTPS listener yet (started before it, or not at all): the files serve at its next (re)load. */
export class NotServing extends RuntimeRefused {
  override name = 'NotServing';
}

/** The answer's first line, bounded: HAProxy's answers name files, never their content. */
function firstLine(answer: string): string {
  return (answer.trim().split('\n')[0] ?? '').slice(0, 200);
}


/** Where the certificates go and who hears of each change. */
export interface RuntimeTarget {
  adminSocket: string;
  timeoutMs: number;
  /** Path of the crt-list HAProxy loads. */
  crtList: string;
  /** The worker's TLS directory: certificates HAProxy holds from elsewhere are left alone. */
  tlsDir: string;
  defaultCert: string;
  /** Path of a certificate's copy in tlsDir. */
  path(name: string): string;
  /** The SNI filters of a certificate's crt-list entry (the default certificate's entry is left as loaded). */
  filters(name: string, a: Accepted): string[];
  onChange(kind: 'added' | 'renewed' | 'removed', path: string, a?: Accepted): void;
}

/** Makes the running HAProxy hold exactly `certs`. Throws RuntimeRefused on an answer that is not a success. */
export async function convergeRuntime(o: RuntimeTarget, certs: ReadonlyMap<string, Accepted>): Promise<void> {
  const cmd = (c: string) => cliCommand(o.adminSocket, c, o.timeoutMs);
  const listed = await cmd(`show ssl crt-list -n ${o.crtList}`);
  // HAProxy runs a config without the HTTPS listener yet (the reload that adds it is to come).
  if (!listed.startsWith(`# ${o.crtList}`)) throw new NotServing(`HAProxy does not serve the crt-list yet: ${firstLine(listed)}`);
  const entries: RunningEntry[] = [];
  for (const raw of listed.split('\n').slice(1)) {
    const m = /^(\S+):(\d+)(?:\s+\[[^\]]*\])?\s*(.*)$/.exec(raw.trim());
    if (m) entries.push({ path: m[1], line: Number(m[2]), filters: m[3].split(/\s+/).filter(Boolean) });
  }
  const loaded = new Set((await cmd('show ssl cert')).split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/')));
  const expect = async (answer: Promise<string>, ok: RegExp, what: string) => {
    const a = await answer;
    if (!ok.test(a)) throw new RuntimeRefused(`${what}: haproxy answered "${firstLine(a)}"`);
  };
  const wanted = new Map<string, { name: string; a: Accepted }>();
  for (const [name, a] of certs) wanted.set(o.path(name), { name, a });
  // The fingerprints HAProxy holds, asked in `;`-joined batches (one connection per ~8 kB of commands).
  const held = new Map<string, string>();
  const ask = [...wanted.keys()].filter((p) => loaded.has(p));
  while (ask.length > 0) {
    const batch: string[] = [];
    let len = 0;
    while (ask.length > 0 && (batch.length === 0 || len + ask[0].length + 16 < CLI_LINE_MAX)) {
      const p = ask.shift()!;
      batch.push(`show ssl cert ${p}`);
      len += p.length + 16;
    }
    for (const block of (await cmd(batch.join('; '))).split(/^Filename: /m).slice(1)) {
      const fp = /^SHA1 FingerPrint:\s*([0-9A-F]+)/im.exec(block)?.[1];
      if (fp) held.set(block.split('\n')[0].trim(), fp.toUpperCase());
    }
  }

  // Removed certificates (and duplicate entries) leave the crt-list first, highest line first.
  const seen = new Set<string>();
  const drop: RunningEntry[] = [];
  for (const e of entries) {
    if (!wanted.has(e.path) || seen.has(e.path)) drop.push(e);
    seen.add(e.path);
  }
  for (const e of drop.sort((x, y) => y.line - x.line)) {
    await expect(cmd(`del ssl crt-list ${o.crtList} ${e.path}:${e.line}`), /deleted/, `removing ${e.path} from the crt-list`);
  }
  for (const path of loaded) {
    if (wanted.has(path) || !path.startsWith(o.tlsDir + '/')) continue;
    await expect(cmd(`del ssl cert ${path}`), /deleted/, `removing ${path}`);
    o.onChange('removed', path);
  }

  for (const [path, { name, a }] of wanted) {
    const isDefault = name === o.defaultCert;
    if (!loaded.has(path)) {
      await expect(cmd(`new ssl cert ${path}`), /New empty certificate store/, `creating ${name}`);
    } else {
      if (held.get(path) === a.info.fingerprint) {
        await fixEntry(o, entries, drop, path, o.filters(name, a), isDefault, cmd, expect);
        continue;
      }
    }
    try {
      await expect(cmd(`set ssl cert ${path} <<\n${a.pem}`), /Transaction (created|updated)/, `loading ${name}`);
      await expect(cmd(`commit ssl cert ${path}`), /Success/, `committing ${name}`);
    } catch (err) {
      await cmd(`abort ssl cert ${path}`).catch(() => undefined);
      throw err;
    }
    o.onChange(loaded.has(path) ? 'renewed' : 'added', path, a);
    await fixEntry(o, entries, drop, path, o.filters(name, a), isDefault, cmd, expect);
  }
}

/** Adds the crt-list entry of `path`, or replaces it when its SNI filters differ. */
async function fixEntry(
o: RuntimeTarget,
  entries: RunningEntry[],
  dropped: RunningEntry[],
  path: string,
  wantFilters: string[],
  isDefault: boolean,
  cmd: (c: string) => Promise<string>,
  expect: (answer: Promise<string>, ok: RegExp, what: string) => Promise<void>,
): Promise<void> {
  const entry = entries.find((e) => e.path === path && !dropped.includes(e));
  const filters = isDefault ? [] : wantFilters;
  if (entry && (isDefault || entry.filters.join(' ') === filters.join(' '))) return;
  if (entry) await expect(cmd(`del ssl crt-list ${o.crtList} ${path}:${entry.line}`), /deleted/, `re-filtering ${path}`);
  await expect(cmd(`add ssl crt-list ${o.crtList} <<\n${[path, ...filters].join(' ')}\n`), /Success/, `adding ${path} to the crt-list`);
}
