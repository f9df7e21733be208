/**
 * Commands with timeouts: the validation, reload and cleanup commands and `haproxy -c`. Every command
 * runs in its own process group and is killed as a group (SIGKILL) when it outlives its timeout, so a
 * hung command (or one of its children) cannot stall updates. The environment is PATH only unless the
 * caller passes one (never the worker's, which holds its secrets: haproxy-sandbox.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { haproxyEnv, limitedArgv, limitHit, limitReason, sampleUsage, type UsageSample, type ValidationLimits } from './haproxy-sandbox.js';
import { monotonicNow } from '../../pacing.js';
import { alertLines } from '../../core/reload-alerts.js';

export interface CommandResult {
  /** Exit code 0 within the timeout. */
  ok: boolean;
  code: number | null;
  signal: string | null;
  /** The command outlived its timeout and was killed with its process group. */
  timedOut: boolean;
  /** stdout + stderr, interleaved, at most the last 64 KiB. */
  output: string;
  ms: number;
  /** With `sampleUsage`: what the process used, sampled from /proc while it ran. */
  usage?: UsageSample;
}

export interface RunOptions {
  timeoutMs: number;
  cwd?: string;
  /** Default: PATH only (haproxyEnv()); never the worker's own environment, which holds its secrets. */
  env?: NodeJS.ProcessEnv;
  /** Sample the process's peak memory and CPU time from /proc while it runs. */
  sampleUsage?: boolean;
}

/** The most output kept of a command (its last bytes). */
export const MAX_OUTPUT = 64 * 1024;

/** Quotes a string for POSIX sh: `it's` -> `'it'\''s'`. */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs a program (no shell) in its own process group. Never rejects: a spawn failure or a timeout
 * comes back as `ok: false`. On timeout the whole group gets SIGKILL.
 */
export function runFile(file: string, args: readonly string[], opts: RunOptions): Promise<CommandResult> {
  const started = monotonicNow();
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(file, args, { cwd: opts.cwd, env: opts.env ?? haproxyEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      resolve({ ok: false, code: null, signal: null, timedOut: false, output: (err as Error).message, ms: monotonicNow() - started });
      return;
    }
    let output = '';
    let timedOut = false;
    let settled = false;
    const sampler = opts.sampleUsage ? sampleUsage(child.pid) : null;
    const keep = (b: Buffer) => {
      output += b.toString();
      if (output.length > MAX_OUTPUT * 2) output = output.slice(-MAX_OUTPUT);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const finish = (code: number | null, signal: string | null, extra = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A daemon started by the command may keep the pipes open: stop reading them.
      child.stdout?.destroy();
      child.stderr?.destroy();
      const out = (output + extra).slice(-MAX_OUTPUT);
      const usage = sampler?.stop();
      resolve({ ok: !timedOut && code === 0, code, signal, timedOut, output: out, ms: monotonicNow() - started, ...(usage ? { usage } : {}) });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
      // If even SIGKILL does not produce an exit event, give up waiting.
      setTimeout(() => finish(null, 'SIGKILL', `\n(timed out after ${opts.timeoutMs} ms)`), 2000).unref();
    }, opts.timeoutMs);
    child.on('error', (err) => finish(null, null, err.message));
    child.on('exit', (code, signal) => {
      // Let buffered output arrive, but do not wait for grandchildren holding the pipes.
      const grace = setTimeout(() => finish(code, signal, timedOut ? `\n(timed out after ${opts.timeoutMs} ms)` : ''), 50);
      child.on('close', () => {
        clearTimeout(grace);
        finish(code, signal, timedOut ? `\n(timed out after ${opts.timeoutMs} ms)` : '');
      });
    });
  });
}

/** Runs a shell command line with `sh -c` (see runFile). */
export function runCommand(command: string, opts: RunOptions): Promise<CommandResult> {
  return runFile('/bin/sh', ['-c', command], opts);
}

/** Signals a command's whole process group (it was spawned detached, as its group leader). */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

export interface ValidationResult {
  ok: boolean;
  /** The validator's output (HAProxy's [ALERT] lines on failure). */
  output: string;
  timedOut: boolean;
  ms: number;
  /** Line numbers of the validated file that HAProxy's alerts point at (sorted, unique). */
  lines: number[];
  /** A resource limit (HAProxy.ValidationCpuSeconds / ValidationMemoryMB) stopped it; null otherwise. */
  limit?: 'cpu' | 'memory' | null;
  /** With `limit`: one line saying which limit. */
  limitReason?: string;
  /** Peak memory and CPU time sampled while it ran (when limits are set). */
  usage?: UsageSample;
}

export interface ValidatorOptions {
  /** HAProxy.Binary, for the built-in `haproxy -c -f <file>`. */
  binary: string;
  /** HAProxy.ReloadValidationCommand; `{{.}}` or `{}` is replaced by the shell-quoted file path. */
  command?: string;
  timeoutMs: number;
  /** Environment of the validator (default: PATH only). */
  env?: NodeJS.ProcessEnv;
  /** CPU-time and memory limits of the validator (and of a custom command's children). */
  limits?: ValidationLimits;
}

/** The validation command line for a custom ReloadValidationCommand. */
export function validationCommandLine(template: string, path: string): string {
  const quoted = shellQuote(path);
  return template.replace(/\{\{\s*\.\s*\}\}/g, quoted).replace(/\{\}/g, quoted);
}

/**
 * Validates a config file; never rejects (a hung validator is a failed validation). With `limits`,
 * the validator runs under them and a validation they stop says so in `limit` and `limitReason`.
 */
export async function validateConfig(path: string, opts: ValidatorOptions): Promise<ValidationResult> {
  const [file, args] = opts.command ? ['/bin/sh', ['-c', validationCommandLine(opts.command, path)]] : [opts.binary, ['-c', '-f', path]];
  const argv = limitedArgv(file, args, opts.limits);
  const r = await runFile(argv.file, argv.args, { timeoutMs: opts.timeoutMs, env: opts.env, sampleUsage: !!opts.limits });
  const limit = opts.limits && r.usage ? limitHit(r, opts.limits, r.usage) : null;
  return {
    ok: r.ok,
    output: r.output,
    timedOut: r.timedOut,
    ms: r.ms,
    lines: r.ok ? [] : alertLines(r.output, path),
    limit,
    ...(limit && opts.limits ? { limitReason: limitReason(limit, opts.limits) } : {}),
    ...(r.usage ? { usage: r.usage } : {}),
  };
}
