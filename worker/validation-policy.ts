/**
 * When a candidate config needs `haproxy -c` before its reload.
 *
 * In managed mode the master's reload parses the candidate anyway, and a master that cannot load
 * it keeps its old workers serving (common/adapters/haproxy/haproxy.ts detects the refusal on the master CLI). So by
 * default the reload is the validation: one HAProxy parse per structural change instead of two, and
 * `haproxy -c` runs only after a refusal, to find the app to quarantine (worker/apply-decisions.ts).
 *
 * What the master parse lacks is the sandbox of a validation (common/adapters/haproxy/haproxy-sandbox.ts): no
 * CPU-time or memory limit. A config line that makes HAProxy read a file (`-f /dev/zero` in an ACL,
 * a map, an error file, a certificate, Lua) can make a parse spin or grow without bound, and a master
 * stuck in its parse takes no further reload. Rules cannot load files (common/core/acl.ts refuses them at
 * the api and in the worker), but a custom template may paste other tenant text (`Config` values,
 * labels). So a candidate that brings a line mentioning a file, map, certificate or Lua that the
 * config in force does not have is validated under the limits first. The test is deliberately
 * coarse (any such word, any backslash escape): a false alarm costs one `haproxy -c`.
 */

/** A config line that may make HAProxy read a file (or hide such a word behind an escape). */
const MAY_LOAD = /^.*(?:(?:^|[\s"'])-[fM]|file|crt|\blua|map(?:_\w+)?\(|-map\b|spoe|51d|wurfl|deviceatlas|chain-path|include|\\).*$/gm;

/** The lines of `text` that may load a file, as a set. */
function loadingLines(text: string): Set<string> {
  const out = new Set<string>();
  MAY_LOAD.lastIndex = 0;
  for (let m = MAY_LOAD.exec(text); m !== null; m = MAY_LOAD.exec(text)) out.add(m[0].trim());
  return out;
}

export class ValidationPolicy {
  /** The loading lines of the config in force, by its hash (computed once per running config). */
  private running: { hash: string; lines: Set<string> } | null = null;

  /**
   * `enabled`: HAProxy.ValidateBeforeReload (or command mode, or a ReloadValidationCommand): every
   * candidate is validated before its reload.
   */
  constructor(private readonly enabled: boolean) {}

  /**
   * Null when the candidate may go to the reload without `haproxy -c` (managed mode, the config in
   * force known); otherwise why it is validated first.
   */
  validateFirst(candidate: string, running: { hash: string; text: string; confirmed: boolean } | null): string | null {
    if (this.enabled) return 'HAProxy.ValidateBeforeReload';
    // Without a confirmed config in force, a refused reload could leave nothing to fall back on.
    if (!running?.confirmed) return 'no confirmed config in force';
    if (this.running?.hash !== running.hash) this.running = { hash: running.hash, lines: loadingLines(running.text) };
    const known = this.running.lines;
    MAY_LOAD.lastIndex = 0;
    for (let m = MAY_LOAD.exec(candidate); m !== null; m = MAY_LOAD.exec(candidate)) {
      const line = m[0].trim();
      if (!known.has(line)) return `a new line may load a file: ${line.slice(0, 120)}`;
    }
    return null;
  }
}
