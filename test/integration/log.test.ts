/**
 * Logs people can read, and that still never leak: the pretty format for terminals is scrubbed of
 * every configured secret like the JSON one (in fields, messages, error messages, stacks and causes,
 * whatever escaping they come with), errors are written with their stack and cause chain but without
 * an HTTP client's request options (a Basic credential in base64 is no configured secret value), and
 * pretty lines written just before the process exits are not lost.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../../common/config-load.js';
import { createLogger, resolveLogFormat, type LogFormat } from '../../common/log.js';
import { freePort } from '../../harness/ports.js';
import { startProcess, waitFor } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';

function capture(format: LogFormat, secrets: string[]) {
  let out = '';
  const destination = new Writable({
    write(chunk, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  const log = createLogger({ format, secrets, destination: destination as never, role: 'api' });
  return { log, text: () => out };
}

describe('logs', () => {
  // Secrets as operators choose them: plain, with characters JSON escapes, and with a newline.
  const SECRETS = ['hunter2-Sekret', 'p"a\\ss/wörd', 'line1\nline2'];

  for (const format of ['pretty', 'json'] as const) {
    it(`never writes a configured secret in the ${format} format: not in a field, a message, an error, its stack or its cause`, () => {
      const { log, text } = capture(format, SECRETS);
      for (const s of SECRETS) {
        const cause = new Error(`upstream said ${s}`);
        const err = new Error(`login with ${s} failed`, { cause });
        log.info({ url: `http://u:${s}@marathon:8080`, nested: { deep: { value: s } }, [`key-${s}`]: 1 }, `connecting with ${s}`);
        log.warn(`plain message ${s}`);
        log.error({ err }, 'request failed');
        log.error({ err: { message: s, stack: `Error: ${s}\n    at x` } }, 'error-like object');
      }
      const out = text();
      expect(out).to.include('connecting with ***');
      for (const s of SECRETS) {
        for (const variant of new Set([s, JSON.stringify(s).slice(1, -1), ...s.split('\n').filter((p) => p.length > 5)])) {
          expect(out, `${format} output holds ${JSON.stringify(variant)}`).not.to.include(variant);
        }
      }
      if (format === 'pretty') {
        // Human-readable: level names and messages as text, not JSON objects.
        expect(out.split('\n')[0]).to.match(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: connecting with \*\*\* /);
        expect(out).to.match(/\] ERROR: request failed/);
        expect(out.split('\n').some((l) => l.startsWith('{'))).to.equal(false);
      }
    });
  }

  it('writes an error with its type, stack and cause chain, not just its message', () => {
    const { log, text } = capture('json', []);
    const root = new TypeError('socket hang up');
    log.error({ err: new Error('cannot read the rules', { cause: new Error('zookeeper timed out', { cause: root }) }) }, 'reconcile failed');
    const line = JSON.parse(text().trim().split('\n').pop()!);
    expect(line.msg).to.equal('reconcile failed');
    expect(line.err.type).to.equal('Error');
    expect(line.err.message).to.equal('cannot read the rules');
    expect(line.err.stack).to.match(/^Error: cannot read the rules\n\s+at /);
    expect(line.err.cause.message).to.equal('zookeeper timed out');
    expect(line.err.cause.stack).to.match(/\n\s+at /);
    expect(line.err.cause.cause.type).to.equal('TypeError');
    expect(line.err.cause.cause.message).to.equal('socket hang up');
  });

  it("leaves an HTTP client's request options, headers and response out of a logged error and its causes", () => {
    const { log, text } = capture('json', []);
    // What axios attaches to its errors: the request options with the Authorization header.
    const basic = `Basic ${Buffer.from('marathon:not-a-configured-secret').toString('base64')}`;
    const http = Object.assign(new Error('Request failed with status code 401'), {
      code: 'ERR_BAD_REQUEST',
      config: { url: 'http://marathon:8080/v2/apps', headers: { Authorization: basic } },
      request: { _header: `GET /v2/apps HTTP/1.1\r\nAuthorization: ${basic}\r\n` },
      response: { status: 401, headers: { 'set-cookie': 'session=abc' }, config: { headers: { Authorization: basic } } },
    });
    log.warn({ err: http }, 'marathon fetch failed');
    log.warn({ err: new Error('fetch failed', { cause: http }) }, 'marathon fetch failed');
    const out = text();
    expect(out).not.to.include(basic.slice(6));
    expect(out).not.to.include('session=abc');
    const [first, second] = out.trim().split('\n').map((l) => JSON.parse(l));
    expect(first.err.code).to.equal('ERR_BAD_REQUEST');
    expect(first.err.stack).to.match(/\n\s+at /);
    expect(second.err.cause.code).to.equal('ERR_BAD_REQUEST');
  });

  it('picks the format: auto is pretty only on a terminal and never into a --log file; the key and its env var select it', () => {
    expect(resolveLogFormat('auto', { tty: true })).to.equal('pretty');
    expect(resolveLogFormat(undefined, { tty: true })).to.equal('pretty');
    expect(resolveLogFormat('auto', { tty: false })).to.equal('json');
    expect(resolveLogFormat('auto', { tty: true, file: '/var/log/bamboo.log' })).to.equal('json');
    expect(resolveLogFormat('pretty', { tty: false })).to.equal('pretty');
    expect(resolveLogFormat('json', { tty: true })).to.equal('json');
    expect(loadConfig({ env: {} }).Log.Format).to.equal('auto');
    expect(loadConfig({ env: { BAMBOO_LOG_FORMAT: 'pretty' } }).Log.Format).to.equal('pretty');
    expect(loadConfig({ env: { BAMBOO_LOG_FORMAT: 'json' }, overrides: { 'Log.Format': 'pretty' } }).Log.Format).to.equal('pretty');
    expect(() => loadConfig({ env: { BAMBOO_LOG_FORMAT: 'colour' } })).to.throw(/Log\.Format/);
  });

  it('bamboo api --log-format pretty writes readable, scrubbed lines; BAMBOO_LOG_FORMAT=json (and auto off a terminal) JSON', async function () {
    this.timeout(90000);
    const deadZk = `127.0.0.1:${await freePort()}`; // nothing listens: the api warns and keeps serving
    const token = 'tok-0123456789abcdef-secret';
    const run = async (args: string[], env: Record<string, string>) => {
      const p = startProcess(process.execPath, [join(process.cwd(), 'bin', 'bamboo.js'), 'api', '--bind', `127.0.0.1:${await freePort()}`, ...args], {
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          BAMBOO_ZK_HOST: deadZk,
          BAMBOO_ZMQ_BIND: 'tcp://127.0.0.1:*',
          MARATHON_ENDPOINT: 'http://127.0.0.1:9',
          BAMBOO_AUTH_TOKENS: JSON.stringify({ ci: token }),
          BAMBOO_RULE_CHECK: 'off',
          ...env,
        },
      });
      try {
        await waitFor(() => /api listening/.test(p.output()), 'the api to start and log', 60000, 50);
      } finally {
        await p.stop('SIGTERM');
      }
      return p.output();
    };
    const pretty = await run(['--log-format', 'pretty'], {});
    expect(pretty).to.match(/^\[[^\]]+\] WARN: zookeeper not reachable yet/m);
    expect(pretty).to.match(/^\[[^\]]+\] INFO: api listening /m);
    expect(pretty).not.to.include(token);
    const json = await run([], { BAMBOO_LOG_FORMAT: 'json' });
    const lines = json.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; role: string });
    expect(lines.map((l) => l.msg)).to.include('api listening');
    expect(lines[0].role).to.equal('api');
    // auto: stderr is a pipe here, not a terminal, so JSON.
    const auto = await run([], {});
    expect(auto.trim().split('\n').every((l) => l.startsWith('{')), auto.slice(0, 300)).to.equal(true);
  });

  it('loses no pretty line when the process exits right after logging (synchronous writes to stderr)', async function () {
    this.timeout(60000);
    const dir = tempDir('bamboo-log-');
    const script = join(dir, 'burst.mts');
    const logModule = pathToFileURL(join(process.cwd(), 'common', 'log.ts')).href;
    writeFileSync(
      script,
      `import { createLogger } from ${JSON.stringify(logModule)};\n` +
        `const log = createLogger({ format: 'pretty', secrets: ['s3cr3t-value'], role: 'worker' });\n` +
        `for (let i = 0; i < 3000; i++) log.info({ i, token: 's3cr3t-value' }, 'line ' + i);\n` +
        `process.exit(0);\n`,
    );
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (c) => resolve({ code: c, stderr: err }));
    });
    expect(code, stderr.slice(-500)).to.equal(0);
    const lines = stderr.split('\n').filter((l) => / INFO: line \d+/.test(l));
    expect(lines).to.have.length(3000);
    expect(lines[2999]).to.include('INFO: line 2999');
    expect(stderr).not.to.include('s3cr3t-value');
  });
});
