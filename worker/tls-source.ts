/**
 * HAProxy.CertDir read as the operator (or certbot, lego) wrote it: `<name>.pem` bundles and certbot's
 * `live/<name>/` directories (fullchain.pem + privkey.pem), by certificate name, each file bounded in
 * size. Reads only; checking a bundle is tls-bundle.ts's, serving it tls-certs.ts's.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CERT_NAME } from '../common/core/tls-labels.js';

/** One certificate's text, or why it cannot be read. */
export type Source = { ok: true; text: string } | { ok: false; reason: string };

/** CertDir by certificate name: a bundle's text, or why it cannot be read. Rejects when the directory cannot be read. */
export async function readCertDir(certDir: string): Promise<Map<string, Source>> {
  const out = new Map<string, Source>();
  const entries = await readdir(certDir);
  for (const entry of entries.sort()) {
    // Dot files are editors' and atomic writers' temp files (and certbot's are not there at all).
    if (entry.startsWith('.')) continue;
    const full = join(certDir, entry);
    const st = await stat(full).catch(() => null); // follows symlinks
    if (!st) continue;
    if (st.isFile() && entry.endsWith('.pem')) {
      const name = entry.slice(0, -4);
      if (!CERT_NAME.test(name)) continue;
      out.set(name, await readBounded([full]));
    } else if (st.isDirectory() && CERT_NAME.test(entry) && !out.has(entry)) {
      // certbot's layout: live/<name>/fullchain.pem and privkey.pem.
      const files = await readdir(full).catch(() => [] as string[]);
      if (!files.includes('fullchain.pem') && !files.includes('privkey.pem')) continue;
      if (!files.includes('fullchain.pem') || !files.includes('privkey.pem')) {
        out.set(entry, { ok: false, reason: 'a certificate directory needs both fullchain.pem and privkey.pem' });
        continue;
      }
      out.set(entry, await readBounded([join(full, 'fullchain.pem'), join(full, 'privkey.pem')]));
    }
  }
  return out;
}

/** Reads and concatenates files (a bundle, or certbot's fullchain + privkey), bounded. */
async function readBounded(paths: string[]): Promise<Source> {
  const parts: string[] = [];
  for (const p of paths) {
    try {
      const st = await stat(p);
      if (st.size > 1 << 20) return { ok: false, reason: 'larger than 1 MiB' };
      parts.push(await readFile(p, 'utf8'));
    } catch (err) {
      return { ok: false, reason: `cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
    }
  }
  return { ok: true, text: parts.join('\n') };
}
