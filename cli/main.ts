/**
 * The `bamboo` executable: subcommands api, worker, render, keygen and demo.
 *
 * Configuration errors print one line (naming the key and where it came from) and exit 2, never a
 * stack trace. Bamboo's single-dash flags (`-config FILE`, `-bind :8000`, `-log FILE`) are accepted.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { ConfigError, type Config } from '../common/config.js';
import { secretValues } from '../common/config-redact.js';
import { haproxySettings } from '../common/config-views.js';
import { loadConfig } from '../common/config-load.js';
import { createLogger, type Logger } from '../common/log.js';

const VERSION = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    try {
      return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      return '0.0.0';
    }
  }
})();

/** Bamboo's Go flags were single-dash; commander wants two. */
export function normaliseArgv(argv: string[]): string[] {
  return argv.map((a) => {
    const m = /^-(config|bind|log)(=.*)?$/.exec(a);
    return m ? `--${m[1]}${m[2] ?? ''}` : a;
  });
}

interface CommonOpts {
  config?: string;
  bind?: string;
  log?: string;
  logLevel?: string;
  logFormat?: string;
}

function fail(message: string, code = 2): never {
  process.stderr.write(`bamboo: ${message}\n`);
  process.exit(code);
}

/** Loads config (file from --config or CONFIG_PATH) and a logger with every secret stripped. */
function setup(opts: CommonOpts, role: string): { cfg: Readonly<Config>; log: Logger } {
  let cfg: Readonly<Config>;
  try {
    cfg = loadConfig({
      file: opts.config ?? process.env.CONFIG_PATH ?? undefined,
      overrides: { 'Log.Level': opts.logLevel, 'Log.Format': opts.logFormat },
    });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const log = createLogger({ level: cfg.Log.Level, format: cfg.Log.Format, file: opts.log, secrets: secretValues(cfg), role });
  return { cfg, log };
}

/** Every long-lived command stops cleanly on SIGINT/SIGTERM. */
function onShutdown(log: Logger, close: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const hard = setTimeout(() => process.exit(1), 15000);
    hard.unref();
    close()
      .then(() => process.exit(0))
      .catch((err: Error) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

function commonOptions(cmd: Command, bindDefault?: string): Command {
  cmd
    .option('--config <file>', 'Bamboo JSON config file (env CONFIG_PATH; env vars override it)')
    .option('--log <file>', 'append logs to this file instead of stderr')
    .addOption(new Option('--log-level <level>', 'log level (overrides Log.Level)').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
    .addOption(new Option('--log-format <format>', 'log lines: pretty (for a terminal), json, or auto: pretty on a terminal, else JSON (overrides Log.Format)').choices(['auto', 'pretty', 'json']));
  if (bindDefault !== undefined) cmd.option('--bind <address>', 'HTTP listen address, host:port or :port (env BIND)', process.env.BIND || bindDefault);
  return cmd;
}

export function buildProgram(): Command {
  const program = new Command('bamboo')
    .description('Bamboo in TypeScript: keeps HAProxy configured for every app on Marathon')
    .version(VERSION)
    .showHelpAfterError();

  commonOptions(program.command('api').description('run an api copy: REST API, web UI, Marathon intake, ZeroMQ publisher'), ':8000').action(
    async (opts: CommonOpts) => {
      const { cfg, log } = setup(opts, 'api');
      const { runApi } = await import('../api/main.js');
      const api = await runApi(cfg, log, { bind: opts.bind ?? ':8000' }).catch((err: unknown) => {
        if (err instanceof ConfigError) fail(err.message); // e.g. no credential off loopback: exit 2
        throw err;
      });
      onShutdown(log, () => api.close());
    },
  );

  commonOptions(program.command('worker').description('run a worker: subscribe, render, validate and apply to the local HAProxy'), ':8001')
    .option('--keep-haproxy', 'managed mode: leave HAProxy serving when the worker stops', false)
    .action(async (opts: CommonOpts & { keepHaproxy?: boolean }) => {
      const { cfg, log } = setup(opts, 'worker');
      const { runWorker } = await import('../worker/main.js');
      const worker = await runWorker(cfg, log, { bind: opts.bind ?? ':8001', keepHaproxy: opts.keepHaproxy ?? false });
      onShutdown(log, () => worker.close());
    });

  commonOptions(program.command('render').description('dry run: render haproxy.cfg from a /v2/apps JSON file and a services JSON file to stdout'))
    .requiredOption('--apps <file>', 'a Marathon GET /v2/apps response (or a bare array of apps)')
    .option('--services <file>', 'service records in the shape GET /api/services returns')
    .option('--template <file>', 'Liquid template (default: HAProxy.TemplatePath)')
    .option('--now <ms>', 'clock for health grace periods, ms since epoch (default: now)')
    .action(async (opts: CommonOpts & { apps: string; services?: string; template?: string; now?: string }) => {
      const { cfg, log } = setup({ ...opts, logLevel: opts.logLevel ?? 'warn' }, 'render');
      const { renderFromFiles } = await import('../common/core/render-input.js');
      const read = (path: string, what: string) => {
        try {
          return readFileSync(path, 'utf8');
        } catch (err) {
          fail(`cannot read ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, 1);
        }
      };
      const templatePath = opts.template ?? cfg.HAProxy.TemplatePath;
      try {
        const result = renderFromFiles({
          appsJson: read(opts.apps, 'apps'),
          servicesJson: opts.services ? read(opts.services, 'services') : undefined,
          templateText: read(templatePath, 'template'),
          templateFile: templatePath,
          settings: haproxySettings(cfg),
          now: opts.now ? Number(opts.now) : Date.now(),
          // Slots as a managed worker sizes them at start (no previous layout).
          slots: { headroomPercent: cfg.HAProxy.ServerSlotHeadroom, dynamic: cfg.HAProxy.RuntimeApi && cfg.HAProxy.DynamicServers },
        });
        for (const w of result.warnings) log.warn(w, 'skipped');
        process.stdout.write(result.text);
      } catch (err) {
        fail((err as Error).message, 1);
      }
    });

  program
    .command('keygen')
    .description('print a new ZeroMQ CURVE keypair (ZeroMQ.CurvePublicKey / CurveSecretKey) as env-file lines, or --json')
    .option('--json', 'print a config-file fragment instead')
    .action(async (opts: { json?: boolean }) => {
      const { newCurveKeys } = await import('../common/adapters/zeromq/bus.js');
      const k = newCurveKeys();
      if (opts.json) {
        process.stdout.write(JSON.stringify({ ZeroMQ: { CurvePublicKey: k.publicKey, CurveSecretKey: k.secretKey } }, null, 2) + '\n');
      } else {
        // Single quotes: Z85 has no quote or backslash, and keys contain $, & and #.
        process.stdout.write(`# ZeroMQ CURVE keypair. Keep the secret key secret; give the public key to the other side.\n`);
        process.stdout.write(`BAMBOO_ZMQ_CURVE_PUBLIC_KEY='${k.publicKey}'\nBAMBOO_ZMQ_CURVE_SECRET_KEY='${k.secretKey}'\n`);
      }
    });

  commonOptions(program.command('demo').description('run the whole stack on this machine (ZooKeeper, Marathon simulator, two api copies, a worker with HAProxy; HTTPS when openssl is there)'))
    .option('--http-port <port>', 'HAProxy HTTP port (default: a free port)')
    .option('--ui-port <port>', 'port of the first api copy (default: a free port)')
    .option('--zk <connection>', 'use this ZooKeeper instead of starting one')
    .option('--exit-after <seconds>', 'stop by itself after this many seconds (for scripts)')
    .action(async (opts: CommonOpts & { httpPort?: string; uiPort?: string; zk?: string; exitAfter?: string }) => {
      const { runDemo } = await import('./demo.js');
      await runDemo({
        httpPort: opts.httpPort ? Number(opts.httpPort) : undefined,
        uiPort: opts.uiPort ? Number(opts.uiPort) : undefined,
        zk: opts.zk,
        exitAfterSec: opts.exitAfter ? Number(opts.exitAfter) : undefined,
        logLevel: opts.logLevel ?? 'warn',
      });
    });

  return program;
}

if (process.env.BAMBOO_CLI_MAIN === '1') {
  buildProgram()
    .parseAsync(normaliseArgv(process.argv))
    .catch((err: Error) => fail(err.message, 1));
}
