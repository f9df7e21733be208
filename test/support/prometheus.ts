/**
 * Reading `/metrics` in tests with a real exposition-format parser (parse-prometheus-text-format),
 * never with regexes: a malformed exposition fails the parse.
 *
 * The parser folds a histogram's series into one sample and drops their labels (it was written for
 * unlabelled histograms), so each scrape is parsed twice: as served, for the families and their
 * types; and with histogram and summary TYPE lines made untyped, so every series (`x_bucket`,
 * `x_count`, ...) keeps its labels as a family of its own.
 */
import parsePrometheusTextFormat, { type PromFamily } from 'parse-prometheus-text-format';

export interface Families {
  /** Families as served (name -> family with its type). */
  families: Map<string, PromFamily>;
  /** Every series name with its labelled samples. */
  series: Map<string, PromFamily>;
  has(name: string): boolean;
  get(name: string): PromFamily | undefined;
}

export function parseExposition(text: string): Families {
  const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
  const flat = text.replace(/^# TYPE (\S+) (histogram|summary)$/gm, '# TYPE $1 untyped');
  // A labelled histogram's series interleave (bucket, sum, count per label set): merge by name.
  const series = new Map<string, PromFamily>();
  for (const f of parsePrometheusTextFormat(flat)) {
    const seen = series.get(f.name);
    if (seen) seen.metrics.push(...f.metrics);
    else series.set(f.name, { ...f, metrics: [...f.metrics] });
  }
  return { families, series, has: (n) => families.has(n), get: (n) => families.get(n) };
}

/** GETs `url` and parses the Prometheus text it answers (throws on a non-200 answer). */
export async function scrape(url: string, headers: Record<string, string> = {}): Promise<Families> {
  const r = await fetch(url, { headers });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`GET ${url} answered ${r.status}: ${text.slice(0, 200)}`);
  if (!/^text\/plain; version=0\.0\.4/.test(r.headers.get('content-type') ?? '')) throw new Error(`GET ${url}: content-type ${r.headers.get('content-type')}`);
  return parseExposition(text);
}

/**
 * The sum over the series of family `name` whose labels include `labels`: the value of counters and
 * gauges, the observation count of histograms and summaries. 0 when no series matches.
 */
export function total(f: Families, name: string, labels: Record<string, string> = {}): number {
  const family = f.families.get(name);
  if (!family) throw new Error(`no family ${name} in the scrape`);
  const counted = family.type === 'HISTOGRAM' || family.type === 'SUMMARY' ? `${name}_count` : name;
  let sum = 0;
  for (const m of f.series.get(counted)?.metrics ?? []) {
    if (!Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)) continue;
    sum += Number(m.value ?? 0);
  }
  return sum;
}

/** The label values of `label` across the series of family `name` (histograms: their count series). */
export function labelValues(f: Families, name: string, label: string): Set<string | undefined> {
  const family = f.families.get(name);
  const counted = family?.type === 'HISTOGRAM' || family?.type === 'SUMMARY' ? `${name}_count` : name;
  return new Set((f.series.get(counted)?.metrics ?? []).map((m) => m.labels?.[label]));
}

/** Every series name a PromQL query can use for these families (histograms: _bucket, _sum, _count). */
export function seriesNames(f: Families): Set<string> {
  const out = new Set<string>();
  for (const family of f.families.values()) {
    out.add(family.name);
    if (family.type === 'HISTOGRAM') for (const s of ['_bucket', '_sum', '_count']) out.add(family.name + s);
    if (family.type === 'SUMMARY') for (const s of ['_sum', '_count']) out.add(family.name + s);
  }
  return out;
}
