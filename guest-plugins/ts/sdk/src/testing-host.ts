/**
 * A stand-in for the host's imports (`retention:policy/host@0.1.0`) when a plugin runs natively under
 * `retention-ts test`, whose module loader resolves that specifier to this file. During a `Pass.run` it answers
 * like the host: `batch-names` gives the names of the batch being observed or decided (none outside those calls),
 * and `log` keeps lines with the host's bounds. Outside a run, log lines go to stderr.
 */

import { truncateUtf8, utf8Length } from "./utf8.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";

/** Most log lines the host keeps per pass; later ones are counted, not kept. */
export const MAX_LOG_LINES = 1_000;
/** Most bytes of log text the host keeps per pass. */
export const MAX_LOG_BYTES = 256 << 10;
/** Longest log line (and plugin error message) the host keeps; longer ones are cut. */
export const MAX_LOG_LINE_BYTES = 2 << 10;

/** One line of a plugin's log. */
export interface LogLine {
  readonly level: LogLevel;
  readonly message: string;
}

/** What the host holds for the current pass. @internal */
export class Capture {
  readonly lines: LogLine[] = [];
  bytes = 0;
  dropped = 0;
  /** What `batch-names` answers: set only during an `observe` or `decide` call. */
  names: { text: string; ends: ArrayLike<number> } | undefined;

  push(level: LogLevel, message: string): void {
    if (this.lines.length >= MAX_LOG_LINES || this.bytes >= MAX_LOG_BYTES) {
      this.dropped++;
      return;
    }
    const cut = truncateUtf8(message, MAX_LOG_LINE_BYTES);
    this.bytes += utf8Length(cut);
    this.lines.push(Object.freeze({ level, message: cut }));
  }
}

let current: Capture | undefined;

/** Starts capturing for a run. @internal */
export function startCapture(): Capture {
  if (current !== undefined) {
    throw new Error("a testing run started inside another one");
  }
  current = new Capture();
  return current;
}

/** Stops capturing. @internal */
export function stopCapture(): void {
  current = undefined;
}

const LEVELS: readonly string[] = ["debug", "info", "warn", "error"];

/** `host.log`. */
export function log(level: LogLevel, message: string): void {
  if (!LEVELS.includes(level)) {
    throw new TypeError(`log level ${JSON.stringify(level)} is not one of debug, info, warn, error`);
  }
  if (typeof message !== "string") {
    throw new TypeError(`log message must be a string, got ${typeof message}`);
  }
  if (current !== undefined) {
    current.push(level, message);
  } else {
    (globalThis as { console?: { error(...a: unknown[]): void } }).console?.error(`plugin log (${level}): ${message}`);
  }
}

/** `host.batch-names`: the current batch's names, none outside a call (as the host answers). */
export function batchNames(): { text: string; ends: ArrayLike<number> } {
  return current?.names ?? { text: "", ends: [] };
}
