// Run with `npm test`: the plugin runs natively, through the SDK's own glue, with a stand-in host.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Pass, seg } from "retention-sdk/testing";
import rule from "../src/plugin.ts";

const NOW = "2026-02-01T00:00:00Z";

test("old segments are dropped, younger ones compressed and audit segments kept", () => {
  const out = new Pass(NOW)
    .param("drop_after_days", 30)
    .segment(seg("old.log").ageDays(31))
    .segment(seg("week.log").ageDays(7))
    .segment(seg("today.log").ageDays(0))
    .segment(seg("audit.log").ageDays(400).label("kind", "audit"))
    .segment(seg("squeezed.log.zst").ageDays(7).tier("compressed"))
    .run(rule);
  assert.equal(out.action("old.log"), "drop");
  assert.equal(out.reason("old.log"), "older than drop_after_days");
  assert.equal(out.action("week.log"), "compress");
  assert.equal(out.action("today.log"), "keep");
  assert.equal(out.action("audit.log"), "compress");
  assert.equal(out.action("squeezed.log.zst"), "keep");
});

test("a missing, unknown or inconsistent parameter fails the pass", () => {
  assert.throws(() => new Pass(NOW).run(rule), { call: "begin", message: "missing required parameter `drop_after_days`" });
  const misspelt = new Pass(NOW).param("drop_after_days", 30).param("drop_after_day", 3).failure(rule);
  assert.equal(misspelt.message, "unknown parameter `drop_after_day` (expected: compress_after_days, drop_after_days)");
  const inverted = new Pass(NOW).param("drop_after_days", 3).param("compress_after_days", 5).failure(rule);
  assert.match(inverted.message, /nothing would ever be compressed/);
});
