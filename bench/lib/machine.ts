/**
 * What the figures were measured on: the machine, the versions of everything involved, and the load
 * other processes put on it (the load average is sampled through the whole run).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { round } from './stats.js';

/** The repository root (also when running compiled from dist/bench/lib). */
export const ROOT = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!(existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'templates')))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root');
    dir = up;
  }
  return dir;
})();

/**
 * How to run a bench script in a child process: compiled from dist/ when the build is current (so
 * memory figures are not inflated by the TypeScript loader), else the source through tsx.
 */
export function nodeScript(rel: string): { args: string[]; runtime: 'compiled' | 'tsx' } {
  if (buildIsCurrent()) return { args: [join(ROOT, 'dist', rel.replace(/\.ts$/, '.js'))], runtime: 'compiled' };
  return { args: ['--import', 'tsx', join(ROOT, rel)], runtime: 'tsx' };
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 }).trim();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim();
  }
}

function pkgVersion(dir: string): string {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryMB: number;
  kernel: string;
  os: string;
  nofileSoft: string;
  nofileHard: string;
}

export function machineInfo(): MachineInfo {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  let memoryMB = 0;
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1].trim();
  } catch {
    /* not Linux */
  }
  try {
    const m = /^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) memoryMB = Math.round(Number(m[1]) / 1024);
  } catch {
    /* not Linux */
  }
  let os = 'unknown';
  try {
    const m = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m) os = m[1];
  } catch {
    /* no os-release */
  }
  return {
    cpuModel,
    cores: cpus().length,
    memoryMB,
    kernel: release(),
    os,
    nofileSoft: run('sh', ['-c', 'ulimit -Sn']),
    nofileHard: run('sh', ['-c', 'ulimit -Hn']),
  };
}

function newestTs(dir: string): number {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTs(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * True when dist/ is at least as new as every source it is built from: then `bin/bamboo.js` runs the
 * compiled code (the same test bin/bamboo.js makes), and the bench children can run compiled too.
 */
export function buildIsCurrent(): boolean {
  const built = join(ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(built)) return false;
  const builtAt = statSync(built).mtimeMs;
  return ['cli', 'common', 'api', 'worker', 'harness', 'bench'].every((d) => newestTs(join(ROOT, d)) <= builtAt);
}

export interface Versions {
  node: string;
  haproxy: string;
  zookeeper: string;
  liquidjs: string;
  package: string;
  wrk: string;
  /** How the bamboo processes ran: the compiled build, or the sources through tsx (slower to start, more memory). */
  runtime: 'compiled' | 'tsx';
  git: { commit: string; dirtyFiles: number };
}

export function versions(): Versions {
  const haproxy = /HA-?Proxy version (\S+)/.exec(run('haproxy', ['-v']))?.[1] ?? 'not installed';
  const zookeeper = run('dpkg-query', ['-W', '-f=${Version}', 'zookeeper']) || 'unknown';
  const wrk = /wrk (\S+)/.exec(run('wrk', ['-v']))?.[1] ?? 'not installed';
  const commit = run('git', ['-C', ROOT, 'rev-parse', '--short=12', 'HEAD']);
  const dirty = run('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no']);
  return {
    node: process.version,
    haproxy,
    zookeeper: /^[\w.+~:-]+$/.test(zookeeper) ? zookeeper : 'unknown',
    liquidjs: pkgVersion(join(ROOT, 'node_modules', 'liquidjs')),
    package: pkgVersion(ROOT),
    wrk,
    runtime: buildIsCurrent() ? 'compiled' : 'tsx',
    git: { commit: /^[0-9a-f]+$/.test(commit) ? commit : 'unknown', dirtyFiles: dirty ? dirty.split('\n').length : 0 },
  };
}

export const load = (): [number, number, number] => loadavg().map((x) => round(x, 2)) as [number, number, number];

/** Samples the 1-minute load average every few seconds while the run goes on. */
export class LoadSampler {
  readonly samples: Array<{ atS: number; load1: number }> = [];
  private readonly t0 = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(everyMs = 5000) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  private sample(): void {
    this.samples.push({ atS: Math.round((Date.now() - this.t0) / 1000), load1: load()[0] });
  }

  stop(): { max1m: number; mean1m: number; samples: Array<{ atS: number; load1: number }> } {
    clearInterval(this.timer);
    this.sample();
    const xs = this.samples.map((s) => s.load1);
    return { max1m: Math.max(...xs), mean1m: round(xs.reduce((a, b) => a + b, 0) / xs.length, 2), samples: this.samples };
  }
}
