/** The result shapes the scenarios write into the results file (read defensively: a scenario may have failed). */
import type { Summary } from '../lib/stats.js';
import type { WrkResult } from '../lib/wrk.js';

export interface RenderSize {
  apps: number;
  outputBytes: number;
  serverLines?: number;
  disabledServerLines?: number;
  buildTemplateDataMs: Summary;
  parseTemplateMs: Summary;
  coldRenderMs: Summary;
  oneAppChangeRenderMs: Summary;
  oneAppChangeBuildAndRenderMs: Summary;
  /** The same change when the worker read the snapshot instead of taking a hint's delta (older results lack it). */
  oneAppChangeFreshReadBuildAndRenderMs?: Summary;
  unchangedRerenderMs: Summary;
  oneAppChangeMaxBlocksRendered: number;
  haproxyCheckMs: Record<string, Summary>;
  configPathChars: number[];
  coldBuildRenderValidateMs: Summary;
  oneAppChangeRenderValidateMs: Summary;
  /** The same apps with spare slots (HAProxy.DynamicServers=false), checked alternately (older results lack it). */
  spareSlots?: { serverLines: number; haproxyCheckMs: Summary };
  baselineRssMB: number;
  peakRssMB: number;
  runtime: string;
}

export interface RenderWorker {
  apps: number;
  rules: number;
  outputPathChars: number;
  configBytes: number;
  startToFirstApplyMs: number;
  firstApplyStages: Record<string, number>;
  ruleChangeHintToAppliedMs: Summary;
  taskChangeHintToAppliedMs: Summary;
  oneAppChangeStagesMs: Record<string, Summary>;
  workerPeakRssMB: number;
}

export interface LatencySize {
  apps: number;
  events: number;
  eventToRoutedMs: Summary;
  eventToHintMs: Summary;
  eventToConfigOnDiskMs: Summary;
  hintToRoutedMs: Summary;
  eventsWithoutNewConfigFile: number;
  simulatorScaleCallMs: Summary;
  pollsPerEvent: Summary;
  workerStagesMs: Record<string, Summary>;
  workerOutcomes: Record<string, number>;
  apiFetchMs?: Summary;
  simulatorBusyAfterEventMs?: Summary;
  eventBytesPerScale?: Summary;
  eventBytesPerScaleFullPlans?: Summary;
  slowestTenth?: { events: number; eventToRoutedMs: Summary; eventToHintMs: Summary; hintToRoutedMs: Summary; simulatorBusyAfterEventMs: Summary };
  rules: { edits: number; notRoutedWithin30s?: number; writeToRoutedMs: Summary; putResponseMs: Summary; writeToHintMs: Summary; workerStagesMs?: Record<string, Summary> };
  configBytes: number;
  configPathChars: number;
}

export interface StormVariant {
  summary: Record<string, Summary>;
  allCorrect: boolean;
  reps: Array<Record<string, unknown>>;
}

export interface StormSize {
  apps: number;
  paced?: StormVariant;
  burst?: StormVariant;
  rules?: StormVariant;
}

export interface ReloadMode {
  baseline: WrkResult;
  withReloads: WrkResult;
  reloads: number;
  reloadPhaseS: number;
  reloadsPerSecond: number;
  failedRequests: number;
  p99ImpactMs: number;
  throughputChangePct: number;
}

export interface ReloadResult {
  apps: number;
  wrk: { threads: number; connections: number };
  keepalive?: ReloadMode;
  close?: ReloadMode;
}

export interface Fleet {
  workers: number;
  changes: number;
  eventToAllAppliedMs: Summary;
  eventToEachAppliedMs: Summary;
  marathonAppsFetchesPerChange: Summary;
  marathonRequestsPerChange: Summary;
  bambooFetchesPerChange: number;
  startToAllAppliedMs: number;
  hostPeakRssMB: number | null;
}

export interface Throughput {
  getServicesNoRules?: WrkResult;
  getServices?: WrkResult;
  getOneService?: WrkResult;
  putService?: WrkResult;
  getServicesAfterWrites?: WrkResult;
  createRules50InFlight?: { rules: number; ms: number; failed: number };
  deleteRules50InFlight?: { rules: number; ms: number; failed: number };
  createRulesOneByOne?: { rules: number; ms: number; failed: number };
  callbackBurst?: { callbacks: number; marathonFetches: number; deliveryMs: number; untilFinalStatePublishedMs: number; lastFetchAfterBurstStartMs: number | null };
  eventToHintMs?: Summary;
  zookeeperWriteMs?: Summary;
}

export interface StructuralPath {
  path: string;
  label: string;
  newAppToRoutedMs: Summary;
  newAppHintToRoutedMs: Summary;
  newAppStagesMs: Record<string, Summary>;
  /** The simulator's deployApp call, part of newAppToRoutedMs (older results lack it). */
  newAppSimMs?: Summary;
  ruleEditToRoutedMs: Summary;
  ruleStagesMs: Record<string, Summary>;
  reloads: number;
  serverLines: number;
  haproxyLinesPerReload: number;
  loggedLinesPerReload: number;
}

export interface ReloadCostVariant {
  variant: 'before' | 'after';
  servers: number;
  configBytes: number;
  checkMs: Summary;
  checkCpuMs: Summary;
  reloadMs: Summary;
  masterCpuPerReloadMs: Summary;
  serverStateBytes: Summary;
  haproxyLinesPerReload: number;
  loggedLinesPerReload: number;
  cpuPerChangeMs: number;
}

export interface EdgeResult {
  apps: number;
  samples: number;
  certRenewedToServedMs: Summary;
  labelChangeToRoutedMs: Summary;
  ruleWriteToRoutedMs: Summary;
  reloadsPerChange: { cert: Summary; label: Summary; rule: Summary };
}

export interface FetchRow {
  size: number;
  path: 'per-app' | 'full';
  events: number;
  eventToRoutedMs?: Summary;
  eventToHintMs?: Summary;
  hintToRoutedMs?: Summary;
  apiFetchMs?: Summary;
  workerStagesMs?: Record<string, Summary>;
  fetches: number;
  appFetches: number;
}

export interface IdleRow {
  size: number;
  variant: 'current' | 'previous';
  timing: string;
  checkedServers: number;
  cpuPercent: number;
  checksPerSecond: number;
  seconds: number;
}

/** One size and build of the memory scenario (bench/scenarios/memory.ts). */
export interface MemorySize {
  build: 'before' | 'after';
  commit: string;
  apps: number;
  rules: number;
  apiPeakMB: number;
  apiRssMB: number;
  worker: { peakMB: number; rssMB: number };
  load: number[];
}
