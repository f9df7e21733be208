/** The original Bamboo's figures (docs/bamboo-baseline.md gives the method) and the targets the report checks. */

/** The original Bamboo, measured on a machine like this one (docs/bamboo-baseline.md, which gives the method). */
export const BAMBOO = {
  eventToCfg: { 100: '43 ms', 1000: '134 ms', 10000: '1.18 s' } as Record<number, string>,
  eventToRouted: { 100: '91 ms', 1000: '232 ms', 10000: '3.38 s' } as Record<number, string>,
  burst: { 100: '2 / 1 / 131 ms', 1000: '2 / 1 / 292 ms', 10000: '2 / 1 / 3.7 s' } as Record<number, string>,
  peakRss: { 100: '15 MB', 1000: '30 MB', 10000: '146-174 MB' } as Record<number, string>,
  check: { 100: '26 ms', 1000: '52 ms', 10000: '497 ms' } as Record<number, string>,
  reload: { 100: '47 ms', 1000: '89 ms', 10000: '906 ms' } as Record<number, string>,
  marathonLb: { 100: '146 ms', 1000: '372 ms', 10000: '7.0 s' } as Record<number, string>,
  /** A new Marathon app -> HAProxy routes it (issue 20's side-by-side run; bamboo-baseline.md). */
  newAppRoutedMs: { 100: 158, 1000: 399, 10000: 4500 } as Record<number, number>,
};

/** The same figures as numbers (ms, MB, requests/s), to say where the original was faster. */
export const BAMBOO_NUM = {
  eventToCfgMs: { 100: 43, 1000: 134, 10000: 1180 } as Record<number, number>,
  eventToRoutedMs: { 100: 91, 1000: 232, 10000: 3380 } as Record<number, number>,
  burstQuietMs: { 100: 131, 1000: 292, 10000: 3700 } as Record<number, number>,
  peakRssMB: { 100: 15, 1000: 30, 10000: 174 } as Record<number, number>,
  checkMs: { 100: 26, 1000: 52, 10000: 497 } as Record<number, number>,
  getNoRulesPerS: 7300,
  createOneByOneMsPer1000: 1400,
};

export const TARGETS = {
  render10kMs: 500,
  p99At1000Ms: 100,
  reloadsPerBurst: 2,
};

/** The goal for a task change -> routed (issue 20 goal 2): p99 under 25 ms at 1,000 and 10,000 apps. */
export const TASK_CHANGE_P99_MS = 25;

/** Goal 3 of issue 20: peak RSS at 10,000 apps, managed mode. */
export const MEMORY_GOALS = { apiMB: 200, workerMB: 300 };
/** The original Bamboo's peak RSS (one process) beside the memory scenario's sizes. */
export const BAMBOO_PEAK = { 100: '18 MB', 1000: '31-34 MB', 10000: '162-187 MB' } as Record<number, string>;
