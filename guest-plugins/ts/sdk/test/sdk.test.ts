// The SDK's behaviour through retention-sdk/testing, which drives the SDK's own export glue as the host would.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DAY_MS, Decision, definePlugin, HOUR_MS } from "../src/index.ts";
import { makePolicy } from "../src/plugin.ts";
import { batch, context } from "./plugins.ts";
import { type Engine, Pass, seg } from "../src/testing.ts";
import { compressAll, dropDebug, echo, failing, loud, observer } from "./plugins.ts";

const NOW = "2026-03-01T00:00:00Z";
const ENGINES: Engine[] = ["starlingmonkey", "quickjs"];

function fiveSegments(): Pass {
  return new Pass(NOW)
    .segment(seg("a").ageDays(5).bytes(10).rows(3).label("level", "debug").label("zone", "b"))
    .segment(seg("b").ageDays(4).spanMs(HOUR_MS).bytes(20).label("level", "info"))
    .segment(seg("c").ageDays(3).bytes(30).tier("compressed"))
    .segment(seg("d").ageDays(2).bytes(40).tier("archived").label("zone", "a"))
    .segment(seg("e").ageDays(1).bytes(50).label("zone", "a"));
}

test("a plugin decides every segment and the outcome answers in the order the segments were added", () => {
  const out = new Pass(NOW)
    .param("days", 7)
    .segment(seg("api/info-2026-02-28.log").ageDays(1).label("level", "info"))
    .segment(seg("api/debug-2026-02-20.log").ageDays(9).label("level", "debug").bytes(100))
    .segment(seg("api/debug-2026-02-27.log").time("2026-02-27").label("level", "debug"))
    .run(dropDebug);
  assert.equal(out.action("api/debug-2026-02-20.log"), "drop");
  assert.equal(out.reason("api/debug-2026-02-20.log"), "api/debug-2026-02-20.log is old debug");
  assert.equal(out.action("api/debug-2026-02-27.log"), "keep");
  assert.equal(out.reason("api/info-2026-02-28.log"), undefined);
  assert.deepEqual(
    out.decisions().map((d) => [d.name, d.index]),
    [
      ["api/info-2026-02-28.log", 2],
      ["api/debug-2026-02-20.log", 0],
      ["api/debug-2026-02-27.log", 1],
    ],
  );
  assert.deepEqual(out.namesWith("drop"), ["api/debug-2026-02-20.log"]);
  assert.equal(out.observedFirst, false);
  assert.deepEqual(out.logs, [{ level: "info", message: "3 segments in test" }]);
});

test("non-ASCII names are decoded from the host's UTF-8 byte offsets in every batch and engine", () => {
  const names = ["plain.log", "été/ça.log", "€uro", "😀/emoji-🙂.log", "日本語/ログ.txt", "e\u0301 combining", "z"];
  for (const engine of ENGINES) {
    for (const size of [1, 2, 3, 4096]) {
      const pass = new Pass(NOW).engine(engine).batchSize(size);
      names.forEach((n, i) => pass.segment(seg(n).ageDays(names.length - i)));
      const out = pass.run(echo);
      for (const n of names) {
        assert.ok(out.reason(n)!.startsWith(`${n} #`), `${engine} batch ${size}: ${out.reason(n)}`);
      }
    }
  }
});

test("reasons are deduplicated per batch and a batch without reasons sends none", () => {
  const fixed = definePlugin({
    info: { name: "fixed", version: "1", description: "" },
    begin: () => null,
    decide: (s) => (s.bytes > 1000 ? Decision.archive(`${s.bytes} bytes`) : s.index % 2 === 0 ? Decision.drop("even") : Decision.keep()),
  });
  const p = makePolicy(fixed);
  p.begin(context(6));
  const b = batch(0, 5);
  b.bytes = BigUint64Array.of(1n, 1n, 5000n, 1n, 5000n);
  const v = p.decide(b);
  assert.ok(v.actions instanceof Uint8Array && v.reasons instanceof Uint32Array);
  assert.deepEqual([...v.actions], [3, 0, 2, 0, 2]);
  assert.deepEqual([...v.reasons], [1, 0, 2, 0, 2]);
  assert.deepEqual(v.reasonTexts, ["even", "5000 bytes"]);
  const quiet = p.decide({ ...batch(5, 1), bytes: BigUint64Array.of(1n) });
  assert.deepEqual([...quiet.actions], [0]);
  assert.equal(quiet.reasons.length, 0);
  assert.deepEqual(quiet.reasonTexts, []);
});

test("an action the tier table forbids fails the decide call naming the segment", () => {
  const pass = new Pass(NOW).segment(seg("hot").ageDays(2)).segment(seg("squeezed").ageDays(1).tier("compressed"));
  const err = pass.failure(compressAll);
  assert.equal(err.call, "decide (batch 0)");
  assert.equal(
    err.message,
    'plugin decided `compress` for segment 1 (squeezed) in tier `compressed`, reason "squeeze", which the contract ' +
      "forbids (compress only from hot, archive only from hot or compressed)",
  );
  assert.equal(new Pass(NOW).segment(seg("hot")).run(compressAll).action("hot"), "compress");
});

test("observe-first plugins see every segment with the pass's symbol table before the first decision", () => {
  for (const engine of ENGINES) {
    for (const size of [1, 2, 5, 4096]) {
      const out = fiveSegments().engine(engine).batchSize(size).run(observer);
      assert.ok(out.observedFirst);
      assert.deepEqual(
        ["a", "b", "c", "d", "e"].map((n) => out.reason(n)),
        ["b", "-", "-", "a", "a"].map((zone, i) => `decision ${i + 1} after 5 observed [a b c d e] zone ${zone} same true`),
        `${engine}, batch size ${size}`,
      );
    }
  }
});

test("batches of any size and either engine's values give the same decisions, names, labels and state", () => {
  const whole = fiveSegments().run(echo);
  assert.equal(
    whole.reason("a"),
    "a #0 (newest-4) 1771891200000..1771891200000 age 5d 10B rows 3 hot [level=debug zone=b] zone:b a:false",
  );
  assert.equal(whole.reason("b"), "b #1 (newest-3) 1771974000000..1771977600000 age 4d 20B rows - hot [level=info] zone:- a:false");
  assert.equal(whole.reason("d"), "d #3 (newest-1) 1772150400000..1772150400000 age 2d 40B rows - archived [zone=a] zone:a a:true");
  assert.deepEqual(whole.namesWith("archive"), ["a", "b", "c", "e"]);
  for (const engine of ENGINES) {
    for (const size of [1, 2, 3, 4]) {
      assert.deepEqual(fiveSegments().engine(engine).batchSize(size).run(echo).decisions(), whole.decisions(), `${engine} ${size}`);
    }
  }
});

test("parameter errors name the key, the value and what was expected", () => {
  const err = (p: Pass) => p.failure(dropDebug);
  assert.deepEqual(
    [err(new Pass(NOW).param("dayz", 7)).call, err(new Pass(NOW).param("dayz", 7)).message],
    ["begin", "unknown parameter `dayz` (expected: days)"],
  );
  assert.equal(
    err(new Pass(NOW).param("days", "soon")).message,
    'parameter `days` = "soon": expected a whole number of days (0 or more) or `never`',
  );
  // `never` is an age no segment reaches.
  const never = new Pass(NOW).param("days", "never").segment(seg("x").ageDays(100000).label("level", "debug"));
  assert.equal(never.run(dropDebug).action("x"), "keep");
  assert.equal(err(new Pass(NOW).param("fail_at", "1.5")).message, "unknown parameter `fail_at` (expected: days)");
  assert.equal(new Pass(NOW).param("fail_at", "x").failure(failing).message, 'parameter `fail_at` = "x": expected an integer');
});

test("thrown errors become the plugin's error text, and strings and fail() keep their exact message", () => {
  const pass = fiveSegments();
  const m = (how: string) => pass.clone().param("throw", how).failure(failing);
  assert.equal(m("fail").message, "refused: no reason");
  assert.deepEqual(m("fail").logs, [{ level: "warn", message: "about to check" }]);
  assert.equal(m("string").message, "a thrown string");
  const typeError = m("type-error").message;
  assert.match(typeError, /^TypeError: Cannot read properties of null \(reading 'x'\) \(at (Object\.)?begin \(.*plugins\.ts:\d+:\d+\)/);
  assert.equal(m("number").message, "plugin threw a non-Error value: 42");
  assert.equal(m("object").message, 'plugin threw a non-Error value: {"code":7}');
  const decide = pass.clone().param("fail_at", 3).batchSize(2).failure(failing);
  assert.equal(decide.call, "decide (batch 1)");
  assert.match(decide.message, /^RangeError: cannot decide d \(at (Object\.)?decide \(/);
  assert.equal(String(decide).split(":")[0], "decide (batch 1)");
  assert.equal(
    pass.clone().param("bad_at", 0).failure(failing).message,
    "decide returned undefined for segment 0 (a); return Decision.keep(), Decision.compress(reason), " +
      "Decision.archive(reason) or Decision.drop(reason)",
  );
});

test("the context has the now, dataset, dry run, sorted params and the totals per tier", () => {
  const out = fiveSegments().dataset("app-logs").passId("p-7").dryRun(false).param("z", true).param("a", "1").param("z", false).run(echo);
  assert.equal(
    out.logs[0]!.message,
    "pass p-7 dataset app-logs now 1772323200000 dry false params [a=1 z=false] hot 3/80 compressed 1/30 archived 1/40",
  );
  const empty = new Pass(NOW).engine("quickjs").run(echo);
  assert.equal(empty.logs[0]!.message, "pass test dataset test now 1772323200000 dry true params [] hot 0/0 compressed 0/0 archived 0/0");
  assert.equal(empty.decisions().length, 0);
});

test("segments with equal end times come in name order", () => {
  const out = new Pass(NOW)
    .segments(["b", "c", "a"].map((n) => seg(n).time("2026-02-01T10:00:00Z")))
    .segment(seg("z").time("2026-01-31"))
    .run(echo);
  assert.deepEqual(["z", "a", "b", "c"].map((n) => out.decision(n).index), [0, 1, 2, 3]);
});

test("reasons, log lines and error messages are cut like the host's", () => {
  const out = new Pass(NOW).segment(seg("a")).run(loud);
  // On a character boundary: 170 three-byte characters are 510 bytes, one more would be 513.
  assert.equal(out.reason("a"), "€".repeat(170));
  assert.equal(out.logs.length, 1000);
  assert.equal(out.logs[999]!.message, "line 999");
  assert.equal(out.logsDropped, 5);
  assert.equal(new Pass(NOW).param("refuse", "").failure(loud).message.length, 2048);
});

test("a plugin info the host would refuse fails the pass", () => {
  const nameless = definePlugin({ info: { name: "", version: "1", description: "" }, begin: () => 0, decide: () => Decision.keep() });
  const err = new Pass(NOW).failure(nameless);
  assert.deepEqual([err.call, err.message], ["info", 'name must be 1 to 128 printable characters, got ""']);
});

test("two segments with one name are refused", () => {
  assert.throws(() => new Pass(NOW).segment(seg("a")).segment(seg("a").ageDays(1)).run(echo), /segment name "a" appears twice/);
});

test("ages and spans are relative to the pass's now", () => {
  const out = new Pass(100 * DAY_MS + 5)
    .segment(seg("old").ageDays(9).spanMs(DAY_MS))
    .segment(seg("future").ageMs(-HOUR_MS).startMs(7))
    .segment(seg("fixed").endMs(3 * DAY_MS).startAt("1970-01-02"))
    .run(echo);
  assert.ok(out.reason("old")!.includes(`#1 (newest-1) ${90 * DAY_MS + 5}..${91 * DAY_MS + 5} age 9d`));
  assert.ok(out.reason("future")!.includes(`#2 (newest-0) 7..${100 * DAY_MS + 5 + HOUR_MS} age -1d`));
  assert.ok(out.reason("fixed")!.includes(`#0 (newest-2) ${DAY_MS}..${3 * DAY_MS} age 97d`));
});
