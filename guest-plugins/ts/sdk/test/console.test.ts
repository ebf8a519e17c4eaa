// The component's `console`: formatting and routing to the host's log (installed only where there is no `process`).
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatConsoleArgs, installConsole, type LogLevel } from "../src/host.ts";

test("console arguments are formatted like node's simple case", () => {
  assert.equal(formatConsoleArgs([]), "");
  assert.equal(formatConsoleArgs(["gfs begin", "prod", 3, 2.5, true, null, undefined]), "gfs begin prod 3 2.5 true null undefined");
  assert.equal(formatConsoleArgs([{ a: 1, b: [1, "x"] }, [1, 2]]), '{"a":1,"b":[1,"x"]} [1,2]');
  assert.equal(formatConsoleArgs([5n, { big: 7n }, new Uint8Array([1, 2])]), '5n {"big":"7n"} [1,2]');
  assert.equal(formatConsoleArgs([function named() {}, () => 1, Symbol("s")]), "[Function: named] [Function: (anonymous)] Symbol(s)");
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.equal(formatConsoleArgs([cyclic]), "[object Object]");
  const e = new TypeError("bad");
  e.stack = "TypeError: bad\n    at f (plugin.js:1:1)";
  assert.equal(formatConsoleArgs(["failed:", e]), "failed: TypeError: bad\n    at f (plugin.js:1:1)");
  const noStack = new RangeError("far");
  noStack.stack = undefined;
  assert.equal(formatConsoleArgs([noStack]), "RangeError: far");
});

test("console methods are routed to the host's log at their levels", () => {
  const lines: [LogLevel, string][] = [];
  const sink = (level: LogLevel, message: string) => void lines.push([level, message]);
  // QuickJS: no console at all.
  const bare: { console?: unknown } = {};
  installConsole(bare, sink);
  const c = bare.console as Record<string, (...a: unknown[]) => void>;
  c.debug!("d", 1);
  c.log!("l", { x: 1 });
  c.info!("i");
  c.warn!("w");
  c.error!("e", "f");
  assert.deepEqual(lines, [["debug", "d 1"], ["info", 'l {"x":1}'], ["info", "i"], ["warn", "w"], ["error", "e f"]]);
  // StarlingMonkey: a console whose methods do nothing; its other methods stay.
  lines.length = 0;
  const table = () => {};
  const existing = { console: { log() {}, table } as Record<string, unknown> };
  installConsole(existing, sink);
  (existing.console.log as (...a: unknown[]) => void)("hello", "world");
  assert.equal(existing.console.table, table);
  assert.deepEqual(lines, [["info", "hello world"]]);
});

test("under node the shim is not installed", () => {
  let written = "";
  const original = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    written += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    console.log("still node's", 1);
  } finally {
    process.stdout.write = original;
  }
  assert.equal(written, "still node's 1\n");
});
