/**
 * Which certificate HAProxy serves for a host an app routes, when the app names one with
 * `HAPROXY_{n}_SSL_CERT` (as marathon-lb's `--group-https-by-vhost` serves an app's vhosts with the
 * certificate its label names), as SNI filters of the crt-list.
 *
 * Only hosts the app owns count: the vhosts of its resolved routing (`app.Routing`, after the
 * precedence, the allowed domains and the one-owner-per-host rule of routing.ts), of its enabled HTTP
 * ports. So naming a certificate can change which certificate is served for one's own hosts, never
 * for another app's. The default certificate's own names stay with it: HAProxy's Runtime API cannot
 * change the entry of the certificate a listener uses as its default, and a reload must serve what
 * the Runtime API made.
 *
 * Pure: no clock, no I/O; the result depends only on the inputs and is sorted.
 */

/** What this module reads of an app of the template data. */
export interface SniApp {
  Id: string;
  Routing?: {
    ports: ReadonlyArray<{ index: number; enabled: boolean; mode: string; vhosts: readonly string[]; sslCert: string }>;
  } | null;
}

/** A host whose certificate an app's label chose. */
export interface SniBinding {
  cert: string;
  appId: string;
}

/**
 * Host -> the certificate an app's `HAPROXY_{n}_SSL_CERT` names for it. A host is owned by one app,
 * except that rules may split one host between apps by path: then the app with the smaller id, and
 * within an app the lower port index, decides.
 */
export function labelledSni(apps: readonly SniApp[]): Map<string, SniBinding> {
  const out = new Map<string, SniBinding>();
  const sorted = [...apps].sort((a, b) => (a.Id < b.Id ? -1 : a.Id > b.Id ? 1 : 0));
  for (const app of sorted) {
    const ports = [...(app.Routing?.ports ?? [])].sort((a, b) => a.index - b.index);
    for (const p of ports) {
      if (!p.enabled || p.mode !== 'http' || !p.sslCert) continue;
      for (const host of p.vhosts) if (!out.has(host)) out.set(host, { cert: p.sslCert, appId: app.Id });
    }
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * The SNI filters of certificate `name`'s crt-list entry: its own names, less the hosts labels gave to
 * another certificate, plus the hosts labels gave to it. The default certificate gets none (its
 * entry stays as loaded). When every own name went elsewhere and no label gave it one, negative
 * filters keep the certificate from being selected by the names it holds.
 */
export function sniFilters(name: string, names: readonly string[], isDefault: boolean, bound: ReadonlyMap<string, SniBinding>): string[] {
  if (isDefault) return [];
  const elsewhere = (h: string) => {
    const b = bound.get(h.toLowerCase());
    return b !== undefined && b.cert !== name;
  };
  const own = names.filter((h) => !elsewhere(h));
  const given = [...bound].filter(([h, b]) => b.cert === name && !own.includes(h)).map(([h]) => h);
  const filters = [...own, ...given];
  if (filters.length > 0) return filters;
  return names.filter(elsewhere).map((h) => `!${h}`);
}
