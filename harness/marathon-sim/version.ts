/**
 * Which wire-format details depend on the Marathon version. Each flag cites the evidence in
 * harness/fixtures/marathon/README.md ("Wire-format facts"), so a reader can check why.
 */

/** Version-dependent choices of the simulator. Pure data derived from the reported version. */
export interface Era {
  /** The reported version string, e.g. "1.6.322". */
  version: string;
  /** 0.11+ writes `event:` lines; 0.9/0.10 wrote `data:` lines only (fact 1). */
  eventLines: boolean;
  /** Key inside deployment actions: "type" up to 1.0, "action" from 1.1 (fact 3). */
  actionKey: 'type' | 'action';
  /** 1.4+: instance ids in health events/results, instance_* events exist (fact 4). */
  instances: boolean;
  /** Task `slaveId` from ~0.11 (fact 5). */
  taskSlaveId: boolean;
  /** Task `ipAddresses` from 0.14 (fact 5). */
  taskIpAddresses: boolean;
  /** Task `state` from 1.1 (fact 5). */
  taskState: boolean;
  /**
   * `lastFailureCause` in health check results. The 0.15 capture lacks it and every 1.5 capture has
   * it; 1.2 is our estimate of when it appeared (Marathon's changelog does not say).
   */
  lastFailureCause: boolean;
  /** Root groups carry `pods` from 1.4 (pods were introduced then; the 0.15 plan has none). */
  groupPods: boolean;
  /** App `portDefinitions` exist from 1.0 (fact 6). */
  portDefinitions: boolean;
  /** App `ports` (service ports list) exist up to 1.4 (fact 6). */
  legacyPorts: boolean;
  /** Deployment plans carry `original`/`target` ("heavy") up to 1.6; 1.7+ default to light (fact 2). */
  heavyPlans: boolean;
  /** 1.6+: a stream may ask for light plans with `?plan-format=light`; older versions ignore it (fact 2). */
  planFormatParam: boolean;
}

/** Parses "1.6.322", "1.5.0-SNAPSHOT", "0.8.1" into numbers; missing parts count as 0. */
export function parseVersion(version: string): [number, number, number] {
  const parts = version.split(/[.-]/).map((p) => Number.parseInt(p, 10));
  const at = (i: number): number => (Number.isFinite(parts[i]) ? (parts[i] as number) : 0);
  return [at(0), at(1), at(2)];
}

/** True when `version` >= `min` (both dotted strings). */
export function atLeast(version: string, min: string): boolean {
  const a = parseVersion(version);
  const b = parseVersion(min);
  for (let i = 0; i < 3; i++) {
    if ((a[i] as number) !== (b[i] as number)) return (a[i] as number) > (b[i] as number);
  }
  return true;
}

/** Derives every version-dependent choice once, so the rest of the simulator reads flags, not versions. */
export function eraOf(version: string): Era {
  return {
    version,
    eventLines: atLeast(version, '0.11'),
    actionKey: atLeast(version, '1.1') ? 'action' : 'type',
    instances: atLeast(version, '1.4'),
    taskSlaveId: atLeast(version, '0.11'),
    taskIpAddresses: atLeast(version, '0.14'),
    taskState: atLeast(version, '1.1'),
    lastFailureCause: atLeast(version, '1.2'),
    groupPods: atLeast(version, '1.4'),
    portDefinitions: atLeast(version, '1.0'),
    legacyPorts: !atLeast(version, '1.5'),
    heavyPlans: !atLeast(version, '1.7'),
    planFormatParam: atLeast(version, '1.6'),
  };
}
