// The documented behaviour of gfs, run through retention-sdk/testing as the host runs it (observe first); ported
// from the Rust example's tests, with the same expectations.
import assert from "node:assert/strict";
import { test } from "node:test";
import { HOUR_MS, UtcDate } from "retention-sdk";
import { type Outcome, Pass, seg, type TestSegment } from "retention-sdk/testing";
import gfs from "../src/plugin.ts";

const NOW = "2026-03-01T00:00:00Z";

/** Each segment's action and reason, oldest first. */
function plan(out: Outcome): [string, string, string][] {
  return [...out.decisions()].sort((a, b) => a.index - b.index).map((d) => [d.name, d.action, d.reason ?? "-"]);
}

/** A segment ending at `time`, named after it. */
function at(time: string): TestSegment {
  return seg(time).time(time);
}

test("keep_daily keeps the newest segment of each of the last n days that have one", () => {
  const pass = new Pass(NOW).param("keep_daily", 3);
  // 2026-01-07 has no segment: it does not use up one of the three days.
  for (const day of ["05", "06", "08", "09"]) {
    for (const hour of ["01", "12", "23"]) {
      pass.segment(at(`2026-01-${day}T${hour}:00:00Z`));
    }
  }
  // Dropping is allowed from every tier, and the rules do not look at tiers.
  pass.segment(at("2026-01-04T00:00:00Z").tier("archived"));
  const out = pass.run(gfs);
  assert.ok(out.observedFirst);
  assert.deepEqual(out.namesWith("keep"), ["2026-01-06T23:00:00Z", "2026-01-08T23:00:00Z", "2026-01-09T23:00:00Z"]);
  assert.equal(out.reason("2026-01-08T23:00:00Z"), "keep_daily 2026-01-08");
  assert.equal(out.namesWith("drop").length, 10);
  assert.equal(out.action("2026-01-04T00:00:00Z"), "drop");
  assert.equal(out.reason("2026-01-09T12:00:00Z"), "not kept by keep_daily 3");
});

test("keep_weekly counts iso weeks which cross the new year", () => {
  const out = new Pass(NOW)
    .param("keep_weekly", 2)
    .segment(at("2025-12-28T10:00:00Z")) // a Sunday: 2025-W52
    .segment(at("2025-12-29T10:00:00Z")) // Monday of 2026-W01
    .segment(at("2026-01-04T10:00:00Z")) // Sunday of 2026-W01
    .segment(at("2026-01-05T10:00:00Z")) // Monday of 2026-W02
    .run(gfs);
  assert.deepEqual(plan(out), [
    ["2025-12-28T10:00:00Z", "drop", "not kept by keep_weekly 2"],
    ["2025-12-29T10:00:00Z", "drop", "not kept by keep_weekly 2"],
    ["2026-01-04T10:00:00Z", "keep", "keep_weekly 2026-W01"],
    ["2026-01-05T10:00:00Z", "keep", "keep_weekly 2026-W02"],
  ]);
});

test("keep_monthly and keep_yearly keep the newest of each calendar period in utc", () => {
  const out = new Pass(NOW)
    .param("keep_monthly", 2)
    .param("keep_yearly", 2)
    .segment(at("2024-06-01T00:00:00Z"))
    .segment(at("2025-11-15T00:00:00Z"))
    .segment(at("2025-11-30T00:00:00Z"))
    // 00:30 on New Year's Day in Paris is still 2025 in UTC.
    .segment(seg("new-year-paris").time("2026-01-01T00:30:00+01:00"))
    .segment(at("2026-01-01T00:00:00Z"))
    .segment(at("2026-02-10T00:00:00Z"))
    .run(gfs);
  const dropped = "not kept by keep_monthly 2, keep_yearly 2";
  assert.deepEqual(plan(out), [
    ["2024-06-01T00:00:00Z", "drop", dropped],
    ["2025-11-15T00:00:00Z", "drop", dropped],
    ["2025-11-30T00:00:00Z", "drop", dropped],
    ["new-year-paris", "keep", "keep_yearly 2025"],
    ["2026-01-01T00:00:00Z", "keep", "keep_monthly 2026-01"],
    ["2026-02-10T00:00:00Z", "keep", "keep_monthly 2026-02, keep_yearly 2026"],
  ]);
});

test("keep_last keeps the newest n and a segment kept by any rule is kept", () => {
  const out = new Pass(NOW)
    .param("keep_last", 3)
    .param("keep_daily", 2)
    .segment(at("2026-01-08T10:00:00Z"))
    .segment(at("2026-01-09T10:00:00Z"))
    .segment(at("2026-01-09T20:00:00Z"))
    .segment(at("2026-01-10T05:00:00Z"))
    .run(gfs);
  assert.deepEqual(plan(out), [
    ["2026-01-08T10:00:00Z", "drop", "not kept by keep_last 3, keep_daily 2"],
    ["2026-01-09T10:00:00Z", "keep", "keep_last 3"],
    ["2026-01-09T20:00:00Z", "keep", "keep_last 3, keep_daily 2026-01-09"],
    ["2026-01-10T05:00:00Z", "keep", "keep_last 3, keep_daily 2026-01-10"],
  ]);
});

test("group_by applies the rules to each label value and to the unlabelled segments as one group", () => {
  const out = new Pass(NOW)
    .param("keep_last", 1)
    .param("group_by", "service")
    .segment(seg("api-old").ageDays(6).label("service", "api"))
    .segment(seg("db-old").ageDays(5).label("service", "db"))
    .segment(seg("bare-old").ageDays(4))
    .segment(seg("api-new").ageDays(3).label("service", "api"))
    .segment(seg("bare-new").ageDays(2).label("level", "info"))
    .segment(seg("db-new").ageDays(1).label("service", "db"))
    .run(gfs);
  assert.deepEqual(out.namesWith("keep"), ["api-new", "bare-new", "db-new"]);
  assert.equal(out.reason("db-new"), "keep_last 1");
  assert.deepEqual(out.namesWith("drop"), ["api-old", "db-old", "bare-old"]);
  assert.equal(out.reason("bare-old"), "not kept by keep_last 1 (per service)");
});

test("no rule or an unknown or malformed parameter fails the pass", () => {
  const noRule =
    "no keep rule set: set at least one of keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly " +
    "(refusing to drop every segment)";
  const pass = new Pass(NOW).segment(seg("a"));
  assert.equal(pass.failure(gfs).message, noRule);
  assert.throws(() => pass.clone().param("keep_daily", 0).param("group_by", "service").run(gfs), {
    call: "begin",
    message: noRule,
  });
  assert.equal(
    pass.clone().param("keep_hourly", 24).failure(gfs).message,
    "unknown parameter `keep_hourly` (expected: keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, group_by)",
  );
  const err = pass.clone().param("keep_daily", "-1").failure(gfs);
  assert.equal(err.message, 'parameter `keep_daily` = "-1": expected an integer from 0 to 4294967295');
});

test("decisions do not depend on the batch size or the engine", () => {
  const pass = new Pass(NOW)
    .param("keep_last", 3)
    .param("keep_daily", 7)
    .param("keep_weekly", 4)
    .param("keep_monthly", 2)
    .param("group_by", "service")
    .segments(
      Array.from({ length: 150 }, (_, i) =>
        seg(`s${i}`)
          .ageMs(i * 10 * HOUR_MS)
          .label("service", ["api", "db", "web"][i % 3]!),
      ),
    );
  const whole = pass.run(gfs);
  const kept = whole.namesWith("keep").length;
  assert.ok(kept > 3 * 7 && kept < 150, `${kept} kept`);
  for (const size of [1, 8, 149]) {
    assert.deepEqual(pass.clone().batchSize(size).run(gfs).decisions(), whole.decisions(), `batch size ${size}`);
  }
  assert.deepEqual(pass.clone().engine("quickjs").batchSize(8).run(gfs).decisions(), whole.decisions(), "quickjs values");
});

test("decisions match a brute-force model on irregular data (gaps, bursts, groups, unlabelled segments)", () => {
  // A small deterministic generator: days with no segment, days with many, segments out of group order.
  let x = 12345;
  const rand = (n: number) => {
    x = (x * 48271) % 2147483647;
    return x % n;
  };
  const start = Date.UTC(2023, 11, 20);
  const segs: { name: string; endMs: number; service: string | undefined }[] = [];
  for (let day = 0; day < 500; day++) {
    const count = rand(4) === 0 ? 0 : rand(6);
    for (let k = 0; k < count; k++) {
      const service = [undefined, "api", "db", "web"][rand(4)];
      segs.push({ name: `s${segs.length}`, endMs: start + day * 86_400_000 + rand(86_400) * 1000, service });
    }
  }
  const params = { keep_last: 5, keep_daily: 9, keep_weekly: 6, keep_monthly: 4, keep_yearly: 2 };
  const pass = new Pass("2026-01-01T00:00:00Z").param("group_by", "service");
  for (const [k, v] of Object.entries(params)) {
    pass.param(k, v);
  }
  pass.segments(segs.map((s) => (s.service === undefined ? seg(s.name).endMs(s.endMs) : seg(s.name).endMs(s.endMs).label("service", s.service))));
  const out = pass.batchSize(7).run(gfs);

  // The model: per group, the pass order (end time, then name), then per rule the newest segment of each of the
  // newest N periods.
  const ordered = [...segs].sort((a, b) => a.endMs - b.endMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const date = (ms: number) => UtcDate.fromUnixMs(ms);
  const rules: [string, number, (ms: number) => string][] = [
    ["keep_daily", params.keep_daily, (ms) => date(ms).toString()],
    ["keep_weekly", params.keep_weekly, (ms) => date(ms).isoWeek().toString()],
    ["keep_monthly", params.keep_monthly, (ms) => date(ms).toString().slice(0, 7)],
    ["keep_yearly", params.keep_yearly, (ms) => date(ms).toString().slice(0, 4)],
  ];
  const why = new Map<string, string[]>();
  const add = (name: string, text: string) => why.set(name, [...(why.get(name) ?? []), text]);
  for (const service of [undefined, "api", "db", "web"]) {
    const group = ordered.filter((s) => s.service === service);
    for (const s of group.slice(-params.keep_last)) {
      add(s.name, `keep_last ${params.keep_last}`);
    }
    for (const [param, n, label] of rules) {
      const newest = new Map<string, string>(); // period -> newest segment's name (labels sort like periods)
      for (const s of group) {
        newest.set(label(s.endMs), s.name);
      }
      const periods = [...newest.keys()].sort().slice(-n);
      for (const p of periods) {
        add(newest.get(p)!, `${param} ${p}`);
      }
    }
  }
  const drop = "not kept by keep_last 5, keep_daily 9, keep_weekly 6, keep_monthly 4, keep_yearly 2 (per service)";
  for (const d of out.decisions()) {
    const reasons = why.get(d.name);
    assert.deepEqual([d.action, d.reason], reasons === undefined ? ["drop", drop] : ["keep", reasons.join(", ")], d.name);
  }
  assert.ok(why.size > 40, `${why.size} kept`);
});
