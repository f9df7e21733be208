/**
 * A config made safe to log or serve: URLs without their user:password, secrets replaced, and every
 * secret value listed for the log's redaction (common/log.ts).
 */
import { getPath, SCHEMA, setPath, type Config } from './config.js';

/** Hides user:password in a URL. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@\s]*@/, '//***@');
}

/** A copy of the config with every secret replaced, safe to log or serve. */
export function redactConfig(cfg: Config): Config {
  const copy = JSON.parse(JSON.stringify(cfg)) as Record<string, unknown>;
  for (const f of SCHEMA) {
    const v = getPath(copy, f.key);
    if (f.secret && f.type === 'secrets' && v && typeof v === 'object') {
      setPath(copy, f.key, Object.fromEntries(Object.keys(v).map((k) => [k, '***'])));
    } else if (f.secret && v) setPath(copy, f.key, '***');
  }
  const m = copy.Marathon as Record<string, string>;
  m.Endpoint = m.Endpoint.split(',').map(redactUrl).join(',');
  return copy as unknown as Config;
}

/** Every secret value currently configured (for log redaction). */
export function secretValues(cfg: Config): string[] {
  return SCHEMA.filter((f) => f.secret)
    .flatMap((f) => {
      const v = getPath(cfg as unknown as Record<string, unknown>, f.key);
      return v && typeof v === 'object' ? Object.values(v as Record<string, unknown>) : [v];
    })
    .filter((v): v is string => typeof v === 'string' && v.length > 0);
}
