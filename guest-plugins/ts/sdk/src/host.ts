/**
 * The host's imports (`retention:policy/host@0.1.0`), and logging. In a component the specifier is the WIT
 * interface, wired by the componentizer; under `retention-ts test` it resolves to the testing module's stand-in.
 */

/// <reference path="../types/plugin.d.ts" />
import { batchNames, log as hostLog } from "retention:policy/host@0.1.0";

/** Severity of a log line. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** `host.batch-names`, for the SDK. @internal */
export const hostBatchNames: () => { text: string; ends: ArrayLike<number> } = batchNames;

/**
 * Writes to the host's log, tagged with the plugin and the pass; the host keeps a bounded number of lines and bytes
 * per pass. Plugins have no stdout or stderr: never use `console`, use this.
 */
export const log = {
  debug(message: string): void {
    hostLog("debug", String(message));
  },
  info(message: string): void {
    hostLog("info", String(message));
  },
  warn(message: string): void {
    hostLog("warn", String(message));
  },
  error(message: string): void {
    hostLog("error", String(message));
  },
  /** A line at any level. */
  at(level: LogLevel, message: string): void {
    hostLog(level, String(message));
  },
};
