/**
 * Server slots: a stable place for every task in its app's backends, so that task churn (a task
 * started, killed or replaced) changes what a server line says but not which server lines exist.
 * The worker then applies the change through HAProxy's Runtime API (`set server <be>/slot-<i> addr
 * ... ; state ready|drain|maint`) instead of reloading.
 *
 * Pure and deterministic, like the rest of the core: the slot table of the config HAProxy runs is an
 * input, not hidden state. With the same previous table and the same tasks the output is the same;
 * with no previous table, tasks fill slots 1..n in task id order.
 *
 * Rules:
 * - a task that held a slot keeps it (as long as the capacity holds it);
 * - a new task takes the lowest slot that was already free before this change, then the lowest slot
 *   freed by this change (a slot just freed is still draining its old task's requests);
 * - capacity = n + max(MIN_FREE_SLOTS, ceil(n * headroom / 100)), kept while it holds every task
 *   and is at most SHRINK_FACTOR times what n tasks would get; so a backend is sized by the most
 *   tasks its app had lately: the first scale-up (or rolling deployment) beyond the slots reloads
 *   and grows it, and the next ones fit; only a large, lasting scale-down shrinks it.
 *
 * - with HAProxy.DynamicServers, a backend HAProxy can add servers to at runtime (no `cookie`, a
 *   dynamic balance algorithm: common/core/dynamic-servers.ts) gets no spare slot: capacity = n, and a
 *   task beyond it is a new server line the worker applies with `add server`.
 *
 * Spare slots cost parse time: every slot is a server HAProxy builds on each reload (and
 * `haproxy -c`), about as much as a server with a task. Until issue 20 a backend got the next power
 * of two >= max(n + 4, n * 1.5): 8 servers for 3 tasks, 80,000 server lines at 10,000 apps where
 * Bamboo wrote 30,000; now 5, so 50,000 (docs/templates.md, "Cost of validation").
 */

/** Slot table: app id -> task id per slot (null: free), slot i at index i - 1. */
export type SlotTable = Record<string, ReadonlyArray<string | null>>;

/** Free slots every backend gets at least, whatever the headroom percentage (a task replaced, one more). */
export const MIN_FREE_SLOTS = 2;
/** A backend keeps its capacity until it exceeds this many times what its tasks would get. */
export const SHRINK_FACTOR = 4;
/** Default of HAProxy.ServerSlotHeadroom (percent of the task count). */
export const DEFAULT_SLOT_HEADROOM_PERCENT = 50;

/**
 * How a backend is sized: `headroomPercent` and `minFree` spare slots, or none at all for a backend
 * that grows through `add server` (HAProxy.DynamicServers: `dynamic`, one server per task).
 */
export type SlotSizing = number | { dynamic: true };

/** Slots a backend with `tasks` tasks gets from scratch. */
export function slotCapacity(tasks: number, sizing: SlotSizing = DEFAULT_SLOT_HEADROOM_PERCENT): number {
  if (typeof sizing === 'object') return tasks;
  const pct = Number.isFinite(sizing) && sizing >= 0 ? sizing : DEFAULT_SLOT_HEADROOM_PERCENT;
  return tasks + Math.max(MIN_FREE_SLOTS, Math.ceil((tasks * pct) / 100));
}

/**
 * The slots of one app: `taskIds` (sorted, unique) placed into the previous layout when there is one.
 * Returns task id or null per slot.
 */
export function assignSlots(
  taskIds: readonly string[],
  previous: ReadonlyArray<string | null> | undefined,
  sizing: SlotSizing = DEFAULT_SLOT_HEADROOM_PERCENT,
): Array<string | null> {
  const fresh = slotCapacity(taskIds.length, sizing);
  if (!previous || previous.length === 0) {
    const out: Array<string | null> = new Array(fresh).fill(null);
    taskIds.forEach((id, i) => (out[i] = id));
    return out;
  }
  // A dynamic backend with few tasks (none, say) keeps as many slots as a sized one would.
  const keep = previous.length >= taskIds.length && previous.length <= Math.max(fresh, MIN_FREE_SLOTS) * SHRINK_FACTOR;
  const capacity = keep ? previous.length : fresh;
  const wanted = new Set(taskIds);
  const out: Array<string | null> = new Array(capacity).fill(null);
  const placed = new Set<string>();
  // Tasks stay where they were (slots beyond a shrunk capacity give their tasks up).
  for (let i = 0; i < Math.min(previous.length, capacity); i++) {
    const id = previous[i];
    if (id !== null && wanted.has(id) && !placed.has(id)) {
      out[i] = id;
      placed.add(id);
    }
  }
  // Slots free before this change first, then slots this change freed (still draining).
  const order: number[] = [];
  for (let i = 0; i < capacity; i++) if (out[i] === null && (i >= previous.length || previous[i] === null)) order.push(i);
  for (let i = 0; i < capacity; i++) if (out[i] === null && i < previous.length && previous[i] !== null) order.push(i);
  let next = 0;
  for (const id of taskIds) {
    if (placed.has(id)) continue;
    out[order[next++]] = id;
  }
  return out;
}
