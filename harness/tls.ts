/**
 * A throwaway certificate authority for the demo and the tests, made with the `openssl` command
 * (Node's crypto parses X.509 certificates but cannot issue them). Everything lives in one directory
 * the caller owns; keys are P-256 (fast to make). Never for production.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const OPENSSL_TIMEOUT_MS = 20_000;

/** True when an `openssl` command is on PATH and answers. */
export function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore', timeout: OPENSSL_TIMEOUT_MS });
    return true;
  } catch {
    return false;
  }
}

/** One issued certificate: the bundle HAProxy.CertDir takes (certificate then key), and its parts. */
export interface Issued {
  bundle: string;
  cert: string;
  key: string;
  /** Serial number, hex upper case. */
  serial: string;
}

let counter = 0;

export class TestCa {
  /** The CA certificate (PEM file), for clients' trust (`curl --cacert`, tls `ca`). */
  readonly certPath: string;
  private readonly keyPath: string;

  private constructor(private readonly dir: string) {
    this.certPath = join(dir, 'ca.crt');
    this.keyPath = join(dir, 'ca.key');
  }

  /** Makes a CA in `dir` (which must exist). Throws when openssl fails. */
  static create(dir: string, name = 'Bamboo Test CA'): TestCa {
    const ca = new TestCa(dir);
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', ca.keyPath, '-out', ca.certPath, '-days', '30', '-subj', `/CN=${name}`]);
    return ca;
  }

  /** The CA certificate's text. */
  get cert(): string {
    return readFileSync(this.certPath, 'utf8');
  }

  /** Issues a certificate for `hosts` (DNS subjectAltNames; the first is also the CN), valid `days`. */
  issue(hosts: string[], opts: { days?: number } = {}): Issued {
    const base = join(this.dir, `leaf-${process.pid}-${++counter}`);
    writeFileSync(`${base}.ext`, `subjectAltName=${hosts.map((h) => `DNS:${h}`).join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${hosts[0]}`]);
    const serial = randomBytes(8).toString('hex').replace(/^0/, '1').toUpperCase();
    openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', this.certPath, '-CAkey', this.keyPath, '-set_serial', `0x${serial}`, '-days', String(opts.days ?? 10), '-extfile', `${base}.ext`, '-out', `${base}.crt`]);
    const cert = readFileSync(`${base}.crt`, 'utf8');
    const key = readFileSync(`${base}.key`, 'utf8');
    return { bundle: cert + key, cert, key, serial };
  }
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: OPENSSL_TIMEOUT_MS });
}
