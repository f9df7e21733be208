/**
 * One certificate of HAProxy.CertDir checked before HAProxy sees it: a PEM bundle holding the
 * certificate, its private key and optionally the chain. What HAProxy would refuse (or load wrongly)
 * is refused here for that file alone, with a reason that never quotes the file: reasons go to logs
 * and the worker's status, and the file holds a private key.
 *
 * No I/O and no clock (`now` is passed in); node:crypto parses the certificate and the key.
 */
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';

/** A bundle larger than this is refused (a certificate chain is a few KiB). */
export const MAX_BUNDLE_BYTES = 1 << 20;

/** What the worker knows and may show of an accepted certificate: nothing secret. */
export interface CertInfo {
  /** Host names SNI selects it by: its DNS subjectAltNames, else its subject CN (lower case, sorted). */
  names: string[];
  /** Serial number, hex upper case (as `show ssl cert` prints it). */
  serial: string;
  subject: string;
  issuer: string;
  /** Validity, ISO 8601. */
  notBefore: string;
  notAfter: string;
  /** SHA-1 fingerprint of the leaf certificate, hex upper case without colons (as `show ssl cert` prints it). */
  fingerprint: string;
  /** sha256 of the normalised bundle: equal hashes mean equal files for HAProxy. */
  hash: string;
}

export type BundleCheck =
  | { ok: true; info: CertInfo; expired: boolean; notYetValid: boolean; /** The bundle as HAProxy gets it: certificates, then the key; no blank line. */ pem: string }
  | { ok: false; reason: string };

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
const KEY_TYPES = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'DSA PRIVATE KEY']);
const BASE64_LINE = /^[A-Za-z0-9+/]+={0,2}$/;
/** A host name SNI can carry, optionally a leading wildcard label. */
const HOST = /^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/;

/** SNI names of a certificate: DNS subjectAltNames, or the subject's CN when it has none. */
function sniNames(x509: X509Certificate): string[] {
  const out = new Set<string>();
  for (const part of (x509.subjectAltName ?? '').split(/,\s*/)) {
    const m = /^DNS:(.+)$/.exec(part.trim());
    if (m) out.add(m[1].trim().toLowerCase().replace(/\.$/, ''));
  }
  if (out.size === 0) {
    const cn = /^CN=(.+)$/m.exec(x509.subject);
    if (cn) out.add(cn[1].trim().toLowerCase().replace(/\.$/, ''));
  }
  return [...out].filter((n) => n.length <= 253 && HOST.test(n)).sort();
}

/**
 * Checks one bundle. `requireNames`: refuse a certificate no SNI name selects (every certificate but
 * the default). An expired or not yet valid certificate is accepted and flagged: clients decide, and
 * an edge that drops a certificate the day it expires turns a late renewal into an outage of every
 * host it covers.
 */
export function checkBundle(text: string, now: number, opts: { requireNames?: boolean } = {}): BundleCheck {
  if (Buffer.byteLength(text) > MAX_BUNDLE_BYTES) return { ok: false, reason: `larger than ${MAX_BUNDLE_BYTES} bytes` };
  const certs: string[] = [];
  const keys: string[] = [];
  let encrypted = false;
  let notBase64 = false;
  for (const m of text.matchAll(BLOCK)) {
    const lines = m[2].replace(/\r/g, '').split('\n').map((l) => l.trim()).filter((l) => l !== '');
    if (m[1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type: 4,ENCRYPTED/.test(m[2])) {
      encrypted = true;
      continue;
    }
    if (m[1] !== 'CERTIFICATE' && !KEY_TYPES.has(m[1])) continue;
    // Only base64 goes on: the bundle is sent on HAProxy's CLI, where a stray line would be a command.
    if (lines.some((l) => !BASE64_LINE.test(l))) notBase64 = true;
    const block = `-----BEGIN ${m[1]}-----\n${lines.join('\n')}\n-----END ${m[1]}-----`;
    if (m[1] === 'CERTIFICATE') certs.push(block);
    else keys.push(block);
  }
  if (encrypted) return { ok: false, reason: 'the private key is encrypted (HAProxy loads keys without a passphrase)' };
  if (notBase64) return { ok: false, reason: 'a PEM block holds a line that is not base64' };
  if (certs.length === 0) return { ok: false, reason: 'no PEM certificate in the bundle' };
  if (keys.length === 0) return { ok: false, reason: 'no private key in the bundle (a bundle holds the certificate and its key)' };
  if (keys.length > 1) return { ok: false, reason: 'more than one private key in the bundle' };
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certs[0]);
  } catch {
    return { ok: false, reason: 'the first certificate cannot be parsed' };
  }
  for (const extra of certs.slice(1)) {
    try {
      new X509Certificate(extra);
    } catch {
      return { ok: false, reason: 'a chain certificate cannot be parsed' };
    }
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(keys[0]));
  } catch {
    // The parser's message is not passed on: nothing derived from the key leaves this function.
    return { ok: false, reason: 'the private key cannot be parsed' };
  }
  if (!matches) return { ok: false, reason: 'the private key does not belong to the certificate' };
  const names = sniNames(x509);
  if (opts.requireNames && names.length === 0) return { ok: false, reason: 'the certificate names no DNS host (subjectAltName or CN), so no SNI can select it' };
  const pem = [...certs, keys[0]].join('\n') + '\n';
  const notBefore = new Date(x509.validFrom);
  const notAfter = new Date(x509.validTo);
  return {
    ok: true,
    pem,
    expired: notAfter.getTime() < now,
    notYetValid: notBefore.getTime() > now,
    info: {
      names,
      serial: x509.serialNumber.toUpperCase(),
      subject: x509.subject.replace(/\n/g, ', '),
      issuer: x509.issuer.replace(/\n/g, ', '),
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
      fingerprint: x509.fingerprint.replace(/:/g, '').toUpperCase(),
      hash: createHash('sha256').update(pem).digest('hex'),
    },
  };
}

/** A bundle the worker accepted: what it says, its text, and whether it is within its validity. */
export interface Accepted {
  info: CertInfo;
  pem: string;
  expired: boolean;
  notYetValid: boolean;
}
