// Calendar arithmetic, sizes, times and parameter helpers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Action, Context, DatasetTotals, formatByteSize, parseByteSize, Tier, UtcDate } from "../src/index.ts";
import { parseTime } from "../src/testing.ts";

const DAY = 86_400_000;

test("days round trip through dates across centuries", () => {
  for (let days = -800_000; days < 800_000; days += 37) {
    const d = UtcDate.fromDays(days);
    assert.equal(d.daysSinceEpoch(), days, d.toString());
    assert.deepEqual(UtcDate.of(d.year, d.month, d.day), d);
  }
});

test("known dates have known weekdays and iso weeks", () => {
  const d = (y: number, m: number, day: number) => UtcDate.of(y, m, day)!;
  assert.equal(UtcDate.fromUnixMs(0).toString(), "1970-01-01");
  assert.equal(UtcDate.fromUnixMs(-1).toString(), "1969-12-31");
  assert.equal(d(1970, 1, 1).weekday(), 4);
  assert.equal(d(2026, 1, 10).weekday(), 6);
  assert.equal(d(2025, 12, 29).isoWeek().toString(), "2026-W01");
  assert.equal(d(2025, 12, 28).isoWeek().toString(), "2025-W52");
  assert.equal(d(2026, 1, 10).isoWeek().toString(), "2026-W02");
  assert.equal(d(2021, 1, 3).isoWeek().toString(), "2020-W53");
  assert.equal(d(2000, 2, 29).startMs(), 951_782_400_000);
  assert.equal(UtcDate.of(2100, 2, 29), undefined);
});

test("sizes parse with decimal and binary units and print in binary units", () => {
  assert.equal(parseByteSize("1048576"), 1_048_576);
  assert.equal(parseByteSize("10GiB"), 10 * 2 ** 30);
  assert.equal(parseByteSize(" 10 gib "), 10 * 2 ** 30);
  assert.equal(parseByteSize("1.5KiB"), 1536);
  assert.equal(parseByteSize("2kB"), 2000);
  assert.equal(parseByteSize("0.5MB"), 500_000);
  assert.throws(() => parseByteSize("16EiB"), /too large/);
  assert.throws(() => parseByteSize("10G"), /ambiguous unit "G": write GB \(powers of 1000\) or GiB/);
  assert.throws(() => parseByteSize("10XB"), /unknown unit/);
  assert.throws(() => parseByteSize(""), /expected a number of bytes/);
  assert.throws(() => parseByteSize("1.2.3MB"), /malformed number "1.2.3"/);
  assert.throws(() => parseByteSize("GiB"), /expected a number of bytes/);
  assert.equal(formatByteSize(512), "512 B");
  assert.equal(formatByteSize(10 * 2 ** 30), "10 GiB");
  assert.equal(formatByteSize(1536), "1.5 KiB");
  assert.equal(formatByteSize(1450), "1.42 KiB");
  assert.equal(formatByteSize(1034), "1.01 KiB");
});

test("times parse as rfc 3339 with fractions and offsets or as dates", () => {
  const day = 1_772_323_200_000;
  assert.equal(parseTime("2026-03-01"), day);
  assert.equal(parseTime("2026-03-01T00:00:00Z"), day);
  assert.equal(parseTime("2026-03-01t00:00:00z"), day);
  assert.equal(parseTime("2026-03-01 00:00:00Z"), day);
  assert.equal(parseTime("2026-03-01T01:02:03.5Z"), day + 3_600_000 + 120_000 + 3_500);
  assert.equal(parseTime("2026-03-01T00:00:00.123456789Z"), day + 123);
  assert.equal(parseTime("2026-03-01T01:00:00+01:00"), day);
  assert.equal(parseTime("2026-02-28T23:30:00-00:30"), day);
  assert.equal(parseTime("1969-12-31T23:59:59Z"), -1000);
  for (const bad of ["", "2026-3-01", "2026-02-30", "2026-03-01T24:00:00Z", "2026-03-01T00:60:00Z", "2026-03-01T00:00:00",
    "2026-03-01T00:00:00.Z", "2026-03-01T00:00:00+0100", "2026-03-01T00:00:00+01:60", "2026-03-01X00:00:00Z", "+2026-03-01",
    "2026-03-01T00:00:00Z "]) {
    assert.throws(() => parseTime(bad), /is not an RFC 3339 time/, bad);
  }
});

function ctx(params: Record<string, string>): Context {
  const z = { segments: 0, bytes: 0 };
  return new Context({
    passId: "p",
    dataset: "d",
    nowMs: 0,
    dryRun: true,
    params: Object.entries(params).map(([key, value]) => ({ key, value })),
    totals: new DatasetTotals({ segments: 2, bytes: 10 }, { segments: 1, bytes: 5 }, z),
  });
}

test("typed parameters parse their values, apply defaults and name the key and value when they are bad", () => {
  const c = ctx({ n: " 12 ", neg: "-3", days: "never", d: "30", b: "true", size: "1.5 KiB", s: "text", bad: "x" });
  assert.equal(c.paramInt("n"), 12);
  assert.equal(c.paramInt("neg"), -3);
  assert.equal(c.paramInt("absent", 5), 5);
  assert.throws(() => c.paramInt("absent"), { message: "missing required parameter `absent`" });
  assert.throws(() => c.paramInt("neg", 0, { min: 0 }), { message: 'parameter `neg` = "-3": expected an integer >= 0' });
  assert.throws(() => c.paramInt("n", 0, { max: 10 }), { message: 'parameter `n` = " 12 ": expected an integer <= 10' });
  assert.throws(() => c.paramInt("bad"), { message: 'parameter `bad` = "x": expected an integer' });
  assert.equal(c.paramDays("days"), Infinity);
  assert.equal(c.paramDays("d"), 30);
  assert.equal(c.paramDays("absent", 7), 7);
  assert.throws(() => c.paramDays("neg"), { message: 'parameter `neg` = "-3": expected a whole number of days (0 or more) or `never`' });
  assert.equal(c.paramBool("b"), true);
  assert.equal(c.paramBool("absent", false), false);
  assert.throws(() => c.paramBool("s"), { message: 'parameter `s` = "text": expected `true` or `false`' });
  assert.equal(c.paramBytes("size"), 1536);
  assert.throws(() => c.paramBytes("n2", undefined), { message: "missing required parameter `n2`" });
  assert.throws(() => ctx({ bad: "10XB" }).paramBytes("bad"), { message: 'parameter `bad` = "10XB": expected a size: unknown unit "XB" (expected B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, ...)' });
  assert.equal(c.paramStr("s"), "text");
  assert.equal(c.param("absent"), undefined);
  assert.equal(c.totals.segments, 3);
  assert.equal(c.totals.localBytes, 15);
});

test("checking parameters refuses unknown keys and lists what is expected", () => {
  const c = ctx({ days: "1", "override.level.debug.days": "2" });
  assert.throws(() => c.checkParams(["days"]), { message: "unknown parameter `override.level.debug.days` (expected: days)" });
  c.checkParams(["days"], { prefix: "override." });
  c.checkParams(["days"], { also: (k) => k.endsWith(".days") });
  assert.throws(() => ctx({ x: "1" }).checkParams(["days"], { prefix: ["override.", "limit."] }), {
    message: "unknown parameter `x` (expected: days, override.*, limit.*)",
  });
  assert.throws(() => ctx({ x: "1" }).checkParams([]), { message: "unknown parameter `x` (expected: none)" });
});

test("the tier table allows compress only from hot and archive from hot or compressed", () => {
  const table = Action.ALL.map((a) => Tier.ALL.map((t) => (Action.allowedFrom(a, t) ? 1 : 0)).join("")).join(" ");
  assert.equal(table, "111 100 110 111");
  assert.equal(Tier.fromCode(1), "compressed");
  assert.equal(Action.code("drop"), 3);
  assert.equal(DAY, 24 * 3600 * 1000);
});
