/**
 * The two marathon-lb labels the HTTPS side reads from an app, `HAPROXY_{n}_REDIRECT_TO_HTTPS` and
 * `HAPROXY_{n}_SSL_CERT`, for service port `n`. Until the label parser of issue 19 (items 1-4) lands
 * this reads `app.Labels` itself; at merge the template filters below take the parsed fields instead.
 *
 * Labels are written by any team that can deploy, so nothing here trusts them: a certificate name is
 * a bare name of HAProxy.CertDir (CERT_NAME), never a path, and anything else is ignored.
 *
 * Pure: no clock, no I/O.
 */

/** A certificate's name in HAProxy.CertDir (and in an app's `HAPROXY_{n}_SSL_CERT`): never a path. */
export const CERT_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;

/** What an app's labels ask of the HTTPS side for one service port. */
export interface HttpsLabels {
  /** `HAPROXY_{n}_REDIRECT_TO_HTTPS` is true: plain HTTP requests routed to the app are redirected to HTTPS. */
  redirectToHttps: boolean;
  /** `HAPROXY_{n}_SSL_CERT` when it is a valid certificate name; null when absent or invalid. */
  sslCert: string | null;
  /** The label's value when it was set but is not a valid name (to report, never to use). */
  invalidSslCert: string | null;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);

function label(labels: unknown, key: string): string | null {
  if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) return null;
  if (!Object.prototype.hasOwnProperty.call(labels, key)) return null;
  const v = (labels as Record<string, unknown>)[key];
  return typeof v === 'string' ? v : null;
}

/** The HTTPS labels of service port `portIndex` (0: the port the HTTP frontend routes to). */
export function httpsLabels(labels: unknown, portIndex = 0): HttpsLabels {
  const n = Number.isSafeInteger(portIndex) && portIndex >= 0 ? portIndex : 0;
  const redirect = label(labels, `HAPROXY_${n}_REDIRECT_TO_HTTPS`);
  const cert = label(labels, `HAPROXY_${n}_SSL_CERT`)?.trim() ?? null;
  const valid = cert !== null && CERT_NAME.test(cert);
  return {
    redirectToHttps: redirect !== null && TRUE.has(redirect.trim().toLowerCase()),
    sslCert: valid ? cert : null,
    invalidSslCert: cert !== null && cert !== '' && !valid ? cert.slice(0, 200) : null,
  };
}

function appLabels(app: unknown): unknown {
  return app !== null && typeof app === 'object' ? (app as { Labels?: unknown }).Labels : null;
}

/** `app | redirect_to_https`: the app's first service port asks HTTP to be redirected to HTTPS. */
export function redirectToHttps(app: unknown): boolean {
  return httpsLabels(appLabels(app), 0).redirectToHttps;
}

/** `app | ssl_cert`: the certificate name the app's first service port names, or nil. */
export function sslCert(app: unknown): string | null {
  return httpsLabels(appLabels(app), 0).sslCert;
}
