/** What every scenario gets from bench/run.ts. */
export interface Ctx {
  /** Scaled-down sizes and a few iterations (npm test runs this). */
  smoke: boolean;
  /** Connection string of the ZooKeeper shared by the run (each stack uses its own paths). */
  zk: string;
  /** A temp directory for this run (removed at exit). */
  dir: string;
  /** A progress line on stderr. */
  log(line: string): void;
}
