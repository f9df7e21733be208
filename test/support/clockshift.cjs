/**
 * Preload (`node --require test/support/clockshift.cjs`, or through NODE_OPTIONS) that shifts the
 * wall clock of one process the way an NTP step or a VM resume does: `Date.now()` and `new Date()`
 * move by an offset, while `performance.now()` and timers stay monotonic.
 *
 * The offset (milliseconds, may be negative) is read from the file named by $CLOCKSHIFT_FILE every
 * 50 ms; each time it changes, the process writes the offset it now applies to
 * `$CLOCKSHIFT_FILE.ack-<pid>`, so a test knows the step has landed before it acts.
 */
'use strict';
const fs = require('node:fs');

const file = process.env.CLOCKSHIFT_FILE;
if (file) {
  const RealDate = Date;
  let offset = 0;
  let acked = null;
  const read = () => {
    let next = offset;
    try {
      const n = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isFinite(n)) next = n;
    } catch {
      /* no file yet: no shift */
    }
    offset = next;
    if (acked !== offset) {
      try {
        fs.writeFileSync(`${file}.ack-${process.pid}`, String(offset));
        acked = offset;
      } catch {
        /* the test's directory is gone: nothing to tell */
      }
    }
  };
  read();
  setInterval(read, 50).unref();
  const now = () => RealDate.now() + offset;
  globalThis.Date = new Proxy(RealDate, {
    construct(target, args, newTarget) {
      return Reflect.construct(target, args.length === 0 ? [now()] : args, newTarget);
    },
    apply() {
      return new RealDate(now()).toString();
    },
    get(target, prop, receiver) {
      if (prop === 'now') return now;
      return Reflect.get(target, prop, receiver);
    },
  });
}
