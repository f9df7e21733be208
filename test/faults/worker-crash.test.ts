import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haproxyCheck } from '../support/haproxy.js';
import { startProcess, waitFor, type Started } from '../../harness/process.js';
import { FakeApi, marathonApp, testSetup, type TestSetup } from '../worker-fixtures.js';

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));

/** The worker as operators run it: the CLI's `worker` subcommand in its own process. */
function startWorkerProcess(s: TestSetup, configFile: string): Started {
  return startProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'cli', 'main.ts'), 'worker', '--config', configFile, '--bind', '127.0.0.1:0'], {
    cwd: ROOT,
    env: { ...process.env, BAMBOO_CLI_MAIN: '1' },
  });
}

function tempFiles(s: TestSetup): string[] {
  return readdirSync(dirname(s.outputPath)).filter((n) => n.startsWith('haproxy.cfg.tmp-'));
}

describe('worker process killed with SIGKILL', function () {
  this.timeout(90000);
  let api: FakeApi | null = null;
  let child: Started | null = null;
  afterEach(async () => {
    await child?.stop('SIGKILL');
    await api?.close();
  });

  it('leaves a haproxy.cfg that passes haproxy -c whenever the kill lands during an apply', async () => {
    const s = await testSetup();
    api = await new FakeApi(s).start();
    // Enough apps that each apply writes a large file and validation takes a while.
    const apps = Array.from({ length: 1500 }, (_, i) => marathonApp(`/crash/app${i}`, [{ port: 30000 + (i % 1000) }, { port: 31000 + (i % 1000) }]));
    await api.setApps(apps);
    await api.setRule('/crash/app7', 'path_beg -i /v0');
    const configFile = join(s.dir, 'worker.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        Bamboo: { Zookeeper: { Host: s.zkHost, Path: s.rulesPath, ControlPath: s.controlPath, SessionTimeoutMs: 4000 } },
        HAProxy: { OutputPath: s.outputPath, HttpBind: `127.0.0.1:${s.httpPort}`, ReloadCommand: 'sleep 0.3', CommandTimeoutMs: 10000 },
        Worker: { Name: 'crash-test', DebounceMs: 0, MinUpdateIntervalMs: 0, MinReloadIntervalMs: 0, ResyncIntervalMs: 0 },
        Log: { Level: 'warn' },
      }),
    );

    // Where each kill lands: while the candidate is written or validated (a temp file exists), just
    // after it was renamed into place (the reload command is running), or at an arbitrary moment.
    const moments: Array<'validating' | 'reloading' | 'any'> = ['validating', 'reloading', 'any'];
    let version = 0;
    for (const moment of moments) {
      child = startWorkerProcess(s, configFile);
      const want = `{ path_beg -i /v${version} }\n`;
      await waitFor(() => existsSync(s.outputPath) && readFileSync(s.outputPath, 'utf8').includes(want), `the worker to apply v${version} (${child.output().slice(-500)})`, 30000, 20);
      await waitFor(() => tempFiles(s).length === 0, 'the apply to finish', 10000, 10);
      const before = readFileSync(s.outputPath, 'utf8');

      version++;
      await api.setRule('/crash/app7', `path_beg -i /v${version}`);
      if (moment === 'validating') {
        await waitFor(() => tempFiles(s).length > 0, 'a temp file to appear', 10000, 1);
      } else if (moment === 'reloading') {
        await waitFor(() => readFileSync(s.outputPath, 'utf8') !== before, 'the new file to be renamed into place', 10000, 1);
      } else {
        await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 150)));
      }
      process.kill(child.pid, 'SIGKILL');
      await child.exited;

      const check = await haproxyCheck(s.outputPath);
      expect(check.ok, `${moment}: ${check.output}`).to.equal(true);
      const after = readFileSync(s.outputPath, 'utf8');
      expect([version - 1, version].some((v) => after.includes(`{ path_beg -i /v${v} }\n`)), `${moment}: old or new config`).to.equal(true);
    }

    // A restarted worker removes what the killed one left and converges.
    child = startWorkerProcess(s, configFile);
    await waitFor(() => readFileSync(s.outputPath, 'utf8').includes(`{ path_beg -i /v${version} }\n`), 'the restarted worker to converge', 30000, 20);
    await waitFor(() => tempFiles(s).length === 0, 'stale temp files to be removed', 10000);
    expect((await haproxyCheck(s.outputPath)).ok).to.equal(true);
  });
});
