/** The `bamboo` command line, run as a child process (bin/bamboo.js on the built dist/). */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../common/config.js';
import { secretValues } from '../../common/config-redact.js';
import { loadConfig } from '../../common/config-load.js';
import { tempDir } from '../../harness/tmp.js';

const pexec = promisify(execFile);
const BIN = join(PROJECT_ROOT, 'bin', 'bamboo.js');

function writeJson(obj: unknown): string {
  const p = join(tempDir(), 'config.json');
  writeFileSync(p, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return p;
}

async function runCli(args: string[], env: Record<string, string> = {}) {
  try {
    const r = await pexec(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 30000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

describe('bamboo command line', function () {
  this.timeout(60000);

  it('lists every subcommand, and every flag with its default in each --help', async () => {
    const top = await runCli(['--help']);
    expect(top.code).to.equal(0);
    for (const c of ['api', 'worker', 'render', 'keygen', 'demo']) expect(top.out).to.include(c);
    const api = await runCli(['api', '--help']);
    expect(api.out).to.include('--config').and.include('--bind').and.include('--log').and.include('default: ":8000"');
    const worker = await runCli(['worker', '--help']);
    expect(worker.out).to.include('default: ":8001"').and.include('--keep-haproxy');
  });

  it('prints a CURVE keypair the config accepts with keygen', async () => {
    const r = await runCli(['keygen']);
    expect(r.code).to.equal(0);
    const env = Object.fromEntries([...r.out.matchAll(/^(BAMBOO_ZMQ_CURVE_\w+)='([^']{40})'$/gm)].map((m) => [m[1], m[2]]));
    expect(Object.keys(env).sort()).to.deep.equal(['BAMBOO_ZMQ_CURVE_PUBLIC_KEY', 'BAMBOO_ZMQ_CURVE_SECRET_KEY']);
    const cfg = loadConfig({ env });
    expect(cfg.ZeroMQ.CurvePublicKey).to.equal(env.BAMBOO_ZMQ_CURVE_PUBLIC_KEY);
    expect(secretValues(cfg)).to.include(env.BAMBOO_ZMQ_CURVE_SECRET_KEY);
  });

  it('exits non-zero with one line for an unknown key, and accepts Bamboo\'s -config', async () => {
    const file = writeJson({ Marathon: { Endpoint: 'http://x:8080', Bogus: 1 } });
    const r = await runCli(['api', '-config', file]);
    expect(r.code).to.equal(2);
    expect(r.out.trim()).to.match(/^bamboo: config: unknown key Marathon\.Bogus \(from .*\)$/);
  });

  it('exits non-zero naming UseEventStream for "maybe" without echoing MARATHON_PASSWORD', async () => {
    const file = writeJson({ Marathon: { UseEventStream: 'maybe' } });
    const r = await runCli(['worker', '--config', file], { MARATHON_PASSWORD: 'sup3r-s3cret-pw' });
    expect(r.code).to.equal(2);
    expect(r.out.trim().split('\n')).to.have.length(1);
    expect(r.out).to.include('Marathon.UseEventStream').and.not.to.include('sup3r-s3cret-pw');
  });
});
