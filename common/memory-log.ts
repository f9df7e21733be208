/**
 * The process's memory, logged at debug level: how docs/BENCHMARKS.md ("Memory") tells live data from
 * the room V8 keeps for garbage. `rssMB` and `peakRssMB` (VmHWM) are what the host sees; `heapUsedMB`
 * is the JavaScript heap in use (live data plus garbage not yet collected), `heapTotalMB` what V8
 * holds for it, `heapLimitMB` the old-generation limit (`--max-old-space-size`, cli/node-options.ts),
 * `externalMB` buffers outside the heap (socket reads, gzip, file writes).
 */
import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from './log.js';

export interface MemoryFigures {
  rssMB: number;
  /** VmHWM from /proc/self/status; null where there is no /proc. */
  peakRssMB: number | null;
  heapUsedMB: number;
  heapTotalMB: number;
  heapLimitMB: number;
  externalMB: number;
}

const mb = (bytes: number) => Math.round(bytes / 1048576);

function peakRss(): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

export function memoryFigures(): MemoryFigures {
  const u = process.memoryUsage();
  return {
    rssMB: mb(u.rss),
    peakRssMB: peakRss(),
    heapUsedMB: mb(u.heapUsed),
    heapTotalMB: mb(u.heapTotal),
    heapLimitMB: mb(getHeapStatistics().heap_size_limit),
    externalMB: mb(u.external),
  };
}

/**
 * Logs memoryFigures() as `memory` at debug level every `everyMs` while the logger's level lets debug
 * lines through; at a higher level it sets no timer and returns null. The timer does not keep the
 * process alive. Returns the function that stops it.
 */
export function startMemoryLog(log: Logger, everyMs = 30000): (() => void) | null {
  if (!log.isLevelEnabled('debug')) return null;
  const timer = setInterval(() => log.debug(memoryFigures(), 'memory'), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
