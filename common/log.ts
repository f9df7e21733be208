/**
 * Structured logging (pino): constant messages, fields for the variable parts, secrets stripped.
 *
 * Every configured secret value is replaced by `***` in each line before it is written, whatever field
 * or message it hides in, so a secret can never reach a log line by accident. The pretty format is
 * made from that already scrubbed line, so it is scrubbed too.
 *
 * Errors go in the `err` field as Error objects: they are written with their type, message, stack and
 * `cause` chain (pino's errWithCause serializer), never as a bare message.
 */
import { createWriteStream } from 'node:fs';
import { pino, type Logger, type DestinationStream } from 'pino';
import { prettyFactory } from 'pino-pretty';

export type { Logger } from 'pino';

export interface LogOptions {
  level?: string;
  /** Log file path (Bamboo's -log flag); default stderr. */
  file?: string;
  /** Values that must never be written (passwords, tokens, digests). */
  secrets?: readonly string[];
  /** Process role, added to every line. */
  role?: string;
  /** Custom destination (tests capture logs with this). */
  destination?: DestinationStream;
  /**
   * `json`: one JSON object a line; `pretty`: human-readable lines; `auto` (default): pretty when
   * writing to stderr and stderr is a terminal, JSON otherwise (always JSON with `file`).
   */
  format?: LogFormat;
  /** Whether stderr is a terminal (default `process.stderr.isTTY`); decides `auto` and colours. */
  tty?: boolean;
}

export type LogFormat = 'auto' | 'pretty' | 'json';

/**
 * Fields HTTP clients hang on their errors (axios: the request options with their Authorization
 * header, the socket, the whole response). A base64 Basic credential is not a configured secret
 * value, so line scrubbing cannot catch it: these are left out of every logged error and its causes.
 */
const ERROR_FIELDS_DROPPED = ['config', 'request', 'response', 'headers', 'options', 'socket', 'agent'];

/** pino's errWithCause (type, message, stack, the `cause` chain), without transport internals. */
function serializeError(err: unknown): unknown {
  if (!(err instanceof Error) && (typeof err !== 'object' || err === null)) return err;
  const out = pino.stdSerializers.errWithCause(err as Error) as Record<string, unknown>;
  for (let level: Record<string, unknown> | undefined = out, depth = 0; level && depth < 10; level = level.cause as Record<string, unknown> | undefined, depth++) {
    for (const k of ERROR_FIELDS_DROPPED) delete level[k];
    if (typeof level.cause !== 'object') break;
  }
  return out;
}

/** The format `auto` stands for: pretty only on a terminal's stderr, never into a log file. */
export function resolveLogFormat(format: LogFormat | undefined, to: { file?: string; destination?: unknown; tty: boolean }): 'pretty' | 'json' {
  if (format === 'pretty' || format === 'json') return format;
  return !to.file && !to.destination && to.tty ? 'pretty' : 'json';
}

/**
 * A destination that turns each (already scrubbed) JSON line into a readable one, synchronously: the
 * line is formatted and written in the same call, so nothing is buffered and lost when the process exits.
 */
function prettyDestination(out: DestinationStream, colorize: boolean): DestinationStream {
  const pretty = prettyFactory({ colorize, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true });
  return {
    write(line: string): void {
      out.write(pretty(line));
    },
  };
}

export function createLogger(opts: LogOptions = {}): Logger {
  const secrets = (opts.secrets ?? []).filter((s) => s.length >= 1);
  const out: DestinationStream =
    opts.destination ?? (opts.file ? createWriteStream(opts.file, { flags: 'a' }) : pino.destination({ fd: 2, sync: true }));
  const tty = opts.tty ?? process.stderr.isTTY === true;
  const format = resolveLogFormat(opts.format, { file: opts.file, destination: opts.destination, tty });
  // Colours only for a terminal: a forced pretty format into a pipe or a test stays plain text.
  const dest = format === 'pretty' ? prettyDestination(out, tty && !opts.file && !opts.destination) : out;
  return pino(
    {
      level: opts.level ?? 'info',
      base: opts.role ? { role: opts.role } : {},
      // Stack and cause chain of every logged error (log.error({ err }, '...') with the Error itself).
      serializers: { err: serializeError },
      redact: { paths: ['password', '*.password', 'Password', '*.Password', 'authorization', '*.authorization', 'token', '*.token'], censor: '***' },
      hooks: {
        streamWrite(line: string): string {
          let out = line;
          for (const s of secrets) out = out.split(s).join('***');
          // Also catch secrets JSON-escaped inside the line.
          for (const s of secrets) {
            const escaped = JSON.stringify(s).slice(1, -1);
            if (escaped !== s) out = out.split(escaped).join('***');
          }
          return out;
        },
      },
    },
    dest,
  );
}

/** A logger that drops everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
