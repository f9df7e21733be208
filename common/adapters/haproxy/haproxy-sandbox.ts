/**
 * What HAProxy and the commands around it (validation, reload, cleanup) get from the worker: a
 * minimal environment, and resource limits for validations.
 *
 * Rules are written by tenants, and HAProxy can read its own environment (the `env()` sample fetch,
 * `"${VAR}"` in quoted strings). The worker's environment holds its secrets (the ZooKeeper digest,
 * the stats password, tokens), so HAProxy never gets it: only PATH and the variables an operator
 * names in `HAProxy.PassEnv`. A rule that loads a file (`-f /dev/zero`, `-f /dev/urandom`) can make
 * `haproxy -c` spin or grow without bound, so validations run under a CPU-time and an address-space
 * limit (`prlimit` from util-linux, which execs the validator: the limits hold for it and anything
 * it starts).
 */
import { accessSync, constants, readFileSync } from 'node:fs';

/** PATH when the worker itself has none (Debian's default for services). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The environment for HAProxy and the validation, reload and cleanup commands: PATH plus the named
 * variables that are set in `from`. Nothing else of the worker's environment is passed on.
 */
export function haproxyEnv(passEnv: readonly string[] = [], from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: from.PATH || DEFAULT_PATH };
  for (const name of passEnv) {
    const value = from[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** `HAProxy.PassEnv` split into names (comma- or space-separated). */
export function passEnvNames(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** Resource limits of one validation run; 0 turns a limit off. */
export interface ValidationLimits {
  /** CPU time (user + system) in seconds; SIGXCPU at the limit, SIGKILL 2 s of CPU later. */
  cpuSeconds: number;
  /** Address space (RLIMIT_AS) in MiB: allocations beyond it fail. */
  memoryMB: number;
}

export const NO_LIMITS: ValidationLimits = { cpuSeconds: 0, memoryMB: 0 };

export function hasLimits(l: ValidationLimits | undefined): l is ValidationLimits {
  return !!l && (l.cpuSeconds > 0 || l.memoryMB > 0);
}

/**
 * The program and arguments that run `file args` under the limits (through `prlimit`, which sets
 * them and execs, so the validator keeps the PID: its exit signal and /proc entries are its own).
 * Core dumps are off: a validator killed by SIGXCPU must not write its memory to the worker's cwd.
 */
export function limitedArgv(file: string, args: readonly string[], limits: ValidationLimits | undefined): { file: string; args: string[] } {
  if (!hasLimits(limits)) return { file, args: [...args] };
  const opts = ['--core=0'];
  if (limits.cpuSeconds > 0) opts.push(`--cpu=${limits.cpuSeconds}:${limits.cpuSeconds + 2}`);
  if (limits.memoryMB > 0) opts.push(`--as=${limits.memoryMB * 1024 * 1024}`);
  return { file: 'prlimit', args: [...opts, '--', file, ...args] };
}

/** What a process used, sampled from /proc while it ran. */
export interface UsageSample {
  /** Highest VmPeak seen (KiB). */
  peakKB: number;
  /** CPU time (user + system) at the last sample (s). */
  cpuSeconds: number;
}

const CLOCK_TICKS = 100;

/** Samples /proc/<pid> (VmPeak, CPU time) until stopped; missing entries are skipped. */
export function sampleUsage(pid: number | undefined, everyMs = 20): { stop(): UsageSample } {
  const usage: UsageSample = { peakKB: 0, cpuSeconds: 0 };
  const sample = () => {
    if (!pid) return;
    try {
      const m = /VmPeak:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) usage.peakKB = Math.max(usage.peakKB, Number(m[1]));
      // Fields 14 and 15 (utime, stime) after the parenthesised command name.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(f[11]) + Number(f[12]);
      if (Number.isFinite(ticks)) usage.cpuSeconds = Math.max(usage.cpuSeconds, ticks / CLOCK_TICKS);
    } catch {
      /* gone, or not started yet */
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      return usage;
    },
  };
}

/** HAProxy's own words when an allocation fails (it may also just print `(null)` for a message it could not build). */
const OUT_OF_MEMORY = /out of memory|cannot allocate memory|not enough memory|: \(null\)\.?\s*$/im;

/**
 * Which limit stopped a failed validation, if any: `cpu` when it died of SIGXCPU (or of the SIGKILL
 * that follows it, or a shell reported either as 152 / 137) after using about the CPU-time limit;
 * `memory` when its address space reached the limit or HAProxy reported an allocation failure
 * under a memory limit. Null when it failed on its own (a config error) or timed out.
 */
export function limitHit(
  r: { ok: boolean; timedOut: boolean; code: number | null; signal: string | null; output: string },
  limits: ValidationLimits | undefined,
  usage: UsageSample,
): 'cpu' | 'memory' | null {
  if (r.ok || r.timedOut || !hasLimits(limits)) return null;
  if (limits.cpuSeconds > 0) {
    if (r.signal === 'SIGXCPU' || r.code === 128 + 24) return 'cpu';
    if ((r.signal === 'SIGKILL' || r.code === 128 + 9) && usage.cpuSeconds >= limits.cpuSeconds * 0.8) return 'cpu';
  }
  if (limits.memoryMB > 0) {
    const limitKB = limits.memoryMB * 1024;
    if (usage.peakKB >= limitKB * 0.9 || OUT_OF_MEMORY.test(r.output)) return 'memory';
  }
  return null;
}

/** The one-line reason of a validation a limit stopped. */
export function limitReason(limit: 'cpu' | 'memory', limits: ValidationLimits): string {
  return limit === 'cpu'
    ? `validation stopped by the CPU-time limit (${limits.cpuSeconds} s, HAProxy.ValidationCpuSeconds)`
    : `validation stopped by the memory limit (${limits.memoryMB} MiB, HAProxy.ValidationMemoryMB)`;
}

/** Whether `name` is an executable file in one of the PATH directories of `env`. */
export function onPath(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  for (const dir of (env.PATH || DEFAULT_PATH).split(':')) {
    if (!dir) continue;
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return true;
    } catch {
      /* not here */
    }
  }
  return false;
}
