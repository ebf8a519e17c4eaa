// The export glue on its own, called as the host calls a component's exports: the contract's call order, the
// symbol table, malformed input, and what leaves the glue when something fails (always a string).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Decision, definePlugin } from "../src/index.ts";
import { makePolicy } from "../src/plugin.ts";
import { startCapture, stopCapture } from "../src/testing-host.ts";
import { splitAtUtf8Offsets, truncateUtf8, utf8Length } from "../src/utf8.ts";
import { batch, context } from "./plugins.ts";

const byLevel = definePlugin({
  info: { name: "by-level", version: "1", description: "" },
  observeFirst: (s: { observe: boolean }) => s.observe,
  begin: (ctx) => ({ observe: ctx.paramBool("observe", false) }),
  observe() {},
  decide: (seg) => (seg.label("level") === "debug" ? Decision.drop(`debug ${seg.labelIs("level", "debug")}`) : Decision.keep()),
});

/** Calls `f` and returns what it threw, which must be a string (anything else would trap StarlingMonkey). */
function thrown(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.equal(typeof e, "string", `threw ${String(e)}`);
    return e as string;
  }
  assert.fail("did not throw");
}

test("calls out of the contract's order fail with a message", () => {
  const p = makePolicy(byLevel);
  assert.equal(thrown(() => p.decide(batch(0, 1))), "decide was called before begin");
  assert.equal(thrown(() => p.observe(batch(0, 1))), "observe was called before begin");
  assert.deepEqual(p.begin(context(1)), { observeFirst: false });
  assert.match(thrown(() => p.begin(context(1))), /begin was called twice/);
  assert.match(thrown(() => p.observe(batch(0, 1))), /did not ask for observe-first/);
  assert.match(thrown(() => p.decide(batch(7, 1))), /starting at segment 7 but expected segment 0/);

  const o = makePolicy(byLevel);
  assert.deepEqual(o.begin(context(3, [{ key: "observe", value: "true" }])), { observeFirst: true });
  o.observe(batch(0, 2));
  o.observe(batch(2, 1));
  o.decide(batch(0, 2));
  assert.match(thrown(() => o.observe(batch(2, 1))), /after decide/);
});

test("the symbol table is carried from observe into decide and each symbol is sent once", () => {
  const o = makePolicy(byLevel);
  o.begin(context(2, [{ key: "observe", value: "true" }]));
  const first = { ...batch(0, 2), symbols: ["level", "debug", "info"], labels: [{ key: 1, values: Uint32Array.of(2, 3) }] };
  o.observe(first);
  // decide gets the same batch without symbols: the ids still resolve.
  const again = { ...batch(0, 2), labels: [{ key: 1, values: Uint32Array.of(2, 3) }] };
  const v = o.decide(again);
  assert.deepEqual([...v.actions], [3, 0]);
  assert.deepEqual(v.reasonTexts, ["debug true"]);
});

test("malformed batches fail with a message instead of trapping", () => {
  const fresh = () => {
    const p = makePolicy(byLevel);
    p.begin(context(2));
    return p;
  };
  const short = batch(0, 2);
  short.bytes = new BigUint64Array(1);
  assert.equal(thrown(() => fresh().decide(short)), "malformed batch at index 0: `bytes` has 1 entries but `end-ms` has 2");
  const badKey = { ...batch(0, 2), labels: [{ key: 4, values: Uint32Array.of(0, 0) }] };
  assert.equal(thrown(() => fresh().decide(badKey)), "malformed batch at index 0: label key symbol 4 is not in the symbol table (0 symbols)");
  const badValue = { ...batch(0, 2), symbols: ["level"], labels: [{ key: 1, values: Uint32Array.of(0, 99) }] };
  assert.equal(
    thrown(() => fresh().decide(badValue)),
    "malformed batch at index 0: a label refers to symbol 99, not in the symbol table (1 symbols)",
  );
  const badTier = { ...batch(0, 2), tiers: Uint8Array.of(0, 7) };
  assert.equal(thrown(() => fresh().decide(badTier)), "malformed batch at index 0: tier code 7 of segment 1 is not a tier");
});

test("names the host sends with bad offsets or counts fail the call", () => {
  const named = definePlugin({ info: { name: "named", version: "1", description: "" }, begin: () => 0, decide: (s) => Decision.keep(s.name) });
  const capture = startCapture();
  try {
    const p = makePolicy(named);
    p.begin(context(2));
    capture.names = { text: "é", ends: Uint32Array.of(1, 2) };
    assert.equal(thrown(() => p.decide(batch(0, 2))), "host returned a malformed name for segment 0 (bytes 0..1 of 2)");
    capture.names = { text: "ab", ends: Uint32Array.of(2) };
    assert.equal(thrown(() => makeBegun(named).decide(batch(0, 2))), "host returned 1 segment names for a batch of 2 segments (index 0)");
  } finally {
    stopCapture();
  }
  // Outside a call (here: no capture at all) the host answers no names.
  assert.equal(thrown(() => makeBegun(named).decide(batch(0, 1))), "host returned 0 segment names for a batch of 1 segments (index 0)");
});

function makeBegun<S>(plugin: Parameters<typeof makePolicy<S>>[0]) {
  const p = makePolicy(plugin);
  p.begin(context(2));
  return p;
}

test("UTF-8 offsets split names on character boundaries, and texts are cut on them", () => {
  const parts = ["a", "é", "€", "😀", "", "日本"];
  const text = parts.join("");
  let at = 0;
  const ends = parts.map((p) => (at += utf8Length(p)));
  assert.deepEqual(ends, [1, 3, 6, 10, 10, 16]);
  assert.deepEqual(splitAtUtf8Offsets(text, ends), parts);
  assert.deepEqual(splitAtUtf8Offsets(text, ends.map(BigInt)), parts);
  assert.deepEqual(splitAtUtf8Offsets("abc", [1, 3]), ["a", "bc"]);
  assert.deepEqual(splitAtUtf8Offsets(text, [1, 8, 16]), { bad: 1, start: 1, end: 8, length: 16 });
  assert.deepEqual(splitAtUtf8Offsets("abc", [2, 1]), { bad: 1, start: 2, end: 1, length: 3 });
  assert.deepEqual(splitAtUtf8Offsets("abc", [4]), { bad: 0, start: 0, end: 4, length: 3 });
  assert.equal(truncateUtf8("a😀b", 4), "a");
  assert.equal(truncateUtf8("a😀b", 5), "a😀");
  assert.equal(truncateUtf8("€".repeat(1000), 2048), "€".repeat(682));
});

test("a decision object returned for many segments is checked and counted like fresh ones", () => {
  const drop = Decision.drop("old");
  const mixed = definePlugin({
    info: { name: "mixed", version: "1", description: "" },
    begin: () => null,
    // The same objects again and again, interleaved, a keep with a reason made afresh, then something else.
    decide: (seg) =>
      seg.index === 5 ? (undefined as unknown as Decision) : seg.index % 3 === 2 ? Decision.keep(`k${seg.index % 2}`) : drop,
  });
  const p = makePolicy(mixed);
  p.begin(context(6));
  const v = p.decide(batch(0, 5));
  assert.deepEqual([...v.actions], [3, 3, 0, 3, 3]);
  assert.deepEqual([...v.reasons], [1, 1, 2, 1, 1]);
  assert.deepEqual(v.reasonTexts, ["old", "k0"]);
  assert.match(thrown(() => p.decide(batch(5, 1))), /^decide returned undefined for segment 5/);
  // The factories may return the same object for the same action and reason; it never changes.
  assert.equal(Decision.drop("old").reason, "old");
  assert.ok(Object.isFrozen(Decision.drop("x")));
  // A plugin whose very first answer is not a decision fails too (nothing is taken for the "last" decision).
  const none = definePlugin({ info: { name: "none", version: "1", description: "" }, begin: () => null, decide: () => undefined as unknown as Decision });
  assert.match(thrown(() => makeBegun(none).decide(batch(0, 1))), /^decide returned undefined for segment 0/);
});

test("64-bit columns read the same from BigInt typed arrays and from arrays of numbers", () => {
  const seen: number[][] = [];
  const echo = definePlugin({
    info: { name: "cols", version: "1", description: "" },
    begin: () => null,
    decide(seg) {
      seen.push([seg.index, seg.startMs, seg.endMs, seg.ageMs, seg.bytes, seg.rows ?? -1]);
      return Decision.keep();
    },
  });
  const values = [-(2 ** 53) + 1, -1, 0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
  const big = {
    ...batch(0, values.length),
    startMs: BigInt64Array.from(values, BigInt),
    endMs: BigInt64Array.from(values, BigInt),
    rows: BigInt64Array.from(values, BigInt),
    bytes: BigUint64Array.from(values, (v) => BigInt(Math.abs(v))),
  };
  const plain = { ...big, firstIndex: 0, startMs: values, endMs: values, rows: values, bytes: values.map(Math.abs) };
  const p1 = makePolicy(echo);
  p1.begin(context(values.length));
  p1.decide(big);
  const fromBig = seen.splice(0);
  const p2 = makePolicy(echo);
  p2.begin(context(values.length));
  p2.decide(plain);
  assert.deepEqual(seen, fromBig);
  assert.deepEqual(fromBig.map((r) => r[2]), values);
  assert.deepEqual(fromBig.map((r) => r[4]), values.map(Math.abs));
});

test("labelSymbol checks the ids it returns, and a label key is looked up again after another", () => {
  const grouped = definePlugin({
    info: { name: "grouped", version: "1", description: "" },
    begin: () => null,
    decide: (seg) => Decision.keep(`${seg.labelSymbol("level")} ${seg.labelSymbol("zone")} ${seg.label("level")} ${seg.labelIs("level", "debug")}`),
  });
  const b = { ...batch(0, 2), symbols: ["level", "debug", "info"], labels: [{ key: 1, values: Uint32Array.of(2, 3) }] };
  assert.deepEqual(makeBegun(grouped).decide(b).reasonTexts, ["2 0 debug true", "3 0 info false"]);
  const bad = { ...batch(0, 2), symbols: ["level"], labels: [{ key: 1, values: Uint32Array.of(0, 99) }] };
  assert.equal(
    thrown(() => makeBegun(grouped).decide(bad)),
    "malformed batch at index 0: a label refers to symbol 99, not in the symbol table (1 symbols)",
  );
});
