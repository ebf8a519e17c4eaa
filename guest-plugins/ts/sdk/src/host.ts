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
 * per pass. In a component `console.debug/log/info/warn/error` write here too (at debug, info, info, warn, error).
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

/** The `console` methods a component routes to the host's log, and their levels. @internal */
export const CONSOLE_LEVELS: Readonly<Record<"debug" | "log" | "info" | "warn" | "error", LogLevel>> = Object.freeze({
  debug: "debug",
  log: "info",
  info: "info",
  warn: "warn",
  error: "error",
});

function formatValue(v: unknown): string {
  switch (typeof v) {
    case "string":
      return v;
    case "function":
      return `[Function: ${v.name || "(anonymous)"}]`;
    case "object":
      if (v === null) return "null";
      if (v instanceof Error) {
        const stack = typeof v.stack === "string" ? v.stack.trim() : "";
        const head = `${v.name}: ${v.message}`;
        return stack === "" ? head : stack.startsWith(head) ? stack : `${head}\n${stack}`;
      }
      try {
        const json = JSON.stringify(v, (_k, x: unknown) =>
          typeof x === "bigint" ? `${x}n` : ArrayBuffer.isView(x) && !(x instanceof DataView) ? Array.from(x as unknown as ArrayLike<unknown>, (e) => (typeof e === "bigint" ? `${e}n` : e)) : x,
        );
        if (json !== undefined) return json;
      } catch {
        // cyclic or throwing toJSON: fall back to String()
      }
      try {
        return String(v);
      } catch {
        return "[object]";
      }
    case "bigint":
      return `${v}n`;
    default:
      return String(v);
  }
}

/**
 * How `console.log(...)` and friends format their arguments in a component: strings as they are, errors with their
 * stack, other objects as JSON (else `String()`), everything else with `String()`, joined by spaces. @internal
 */
export function formatConsoleArgs(args: readonly unknown[]): string {
  return args.map(formatValue).join(" ");
}

/**
 * Points `target.console`'s `debug`, `log`, `info`, `warn` and `error` at `sink` (creating `console` when there is
 * none, as under QuickJS). @internal
 */
export function installConsole(
  target: { console?: unknown },
  sink: (level: LogLevel, message: string) => void,
): void {
  let c = target.console as Record<string, unknown> | undefined;
  if (typeof c !== "object" || c === null) {
    c = {};
    try {
      target.console = c;
    } catch {
      // a read-only global: define it instead
    }
    if (target.console !== c) {
      Object.defineProperty(target, "console", { value: c, writable: true, configurable: true, enumerable: false });
    }
  }
  for (const [method, level] of Object.entries(CONSOLE_LEVELS)) {
    const f = (...args: unknown[]): void => sink(level, formatConsoleArgs(args));
    try {
      c[method] = f;
    } catch {
      // ignore: a frozen method stays what it was
    }
    if (c[method] !== f) {
      try {
        Object.defineProperty(c, method, { value: f, writable: true, configurable: true, enumerable: true });
      } catch {
        // ignore
      }
    }
  }
}

// In a component (neither engine has `process`), `console` writes to the host's log: StarlingMonkey's does nothing
// with stdio disabled, and QuickJS has none. Under node (`retention-ts test`) `console` stays node's.
if (typeof (globalThis as { process?: unknown }).process === "undefined") {
  installConsole(globalThis as { console?: unknown }, (level, message) => hostLog(level, message));
}
