/**
 * The `tls` part of the worker's status: the certificates served (names, serials, dates, never a
 * key), the files refused and why, the labels that choose nothing, the last pass. Built from the
 * certificate manager's state (tls-certs.ts); nothing in it is secret.
 */
import type { SniBinding } from '../common/core/tls-sni.js';
import type { Accepted, CertInfo } from './tls-bundle.js';

/** One certificate HAProxy serves, as the status shows it. */
export interface TlsCertStatus extends Omit<CertInfo, 'hash'> {
  name: string;
  default: boolean;
  /** `expired` and `not-yet-valid` are served all the same (and counted in the metrics). */
  state: 'valid' | 'expired' | 'not-yet-valid';
}

/** The `tls` part of the worker's status. Nothing in it is secret. */
export interface TlsStatus {
  certDir: string;
  defaultCert: string;
  certificates: TlsCertStatus[];
  /** Files of CertDir not served as they are, with why; `kept`: an earlier accepted copy still serves. */
  refused: Array<{ name: string; reason: string; kept: boolean }>;
  /** Certificates added, renewed or removed through the Runtime API since the worker started. */
  runtimeChanges: number;
  /**
   * Apps whose `HAPROXY_0_SSL_CERT` label names a certificate this worker does not serve, or is no
   * certificate name at all, and hosts whose `HAPROXY_{n}_SSL_CERT` cannot apply because the default
   * certificate names them (at most 100). Such a host keeps the certificate SNI picks by its own names.
   */
  labels: Array<{ appId: string; cert: string; problem: string }>;
  /** When the last pass ended (ms epoch); null before the first. */
  lastPassAt: number | null;
  /** Why the last pass could not apply everything (directory unreadable, admin socket away); null when it did. */
  error: string | null;
}

/** What the status is made of: the certificate manager's state after its last pass. */
export interface TlsState {
  certDir: string;
  defaultCert: string;
  accepted: ReadonlyMap<string, Accepted>;
  refused: TlsStatus['refused'];
  runtimeChanges: number;
  /** The apps' HAPROXY_0_SSL_CERT labels in the config in force. */
  labelled: ReadonlyArray<{ appId: string; cert: string; valid: boolean }>;
  /** Host -> the certificate an app's HAPROXY_{n}_SSL_CERT names for it. */
  sni: ReadonlyMap<string, SniBinding>;
  lastPassAt: number | null;
  error: string | null;
}

/** The status of `s`, a copy: later passes do not change it. */
export function tlsStatus(s: TlsState): TlsStatus {
  const certificates = [...s.accepted].map(([name, a]) => {
    const { hash: _hash, ...info } = a.info;
    const state: TlsCertStatus['state'] = a.expired ? 'expired' : a.notYetValid ? 'not-yet-valid' : 'valid';
    return { name, default: name === s.defaultCert, state, ...info };
  });
  return {
    certDir: s.certDir,
    defaultCert: s.defaultCert,
    certificates: certificates.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    refused: s.refused.map((r) => ({ ...r })),
    runtimeChanges: s.runtimeChanges,
    labels: s.labelled
      .filter((l) => !l.valid || !s.accepted.has(l.cert))
      .slice(0, 100)
      .map((l) => ({ appId: l.appId, cert: l.cert, problem: l.valid ? 'no such certificate in HAProxy.CertDir' : 'not a certificate name (letters, digits, . _ -; never a path)' }))
      .concat(
        [...s.sni]
          .filter(([h, b]) => b.cert !== s.defaultCert && s.accepted.get(s.defaultCert)?.info.names.includes(h))
          .map(([h, b]) => ({ appId: b.appId, cert: b.cert, problem: `host ${h} is named by the default certificate, which keeps it` })),
      )
      .slice(0, 100),
    lastPassAt: s.lastPassAt,
    error: s.error,
  };
}
