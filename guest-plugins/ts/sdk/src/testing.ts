/**
 * Unit tests for a plugin under `node --test` (via `retention-ts test`): describe a pass in code (its "now",
 * parameters and segments), run a plugin over it, and assert on every segment's decision and reason and on the
 * plugin's log. No `retention` binary, no JSON fixture, no component.
 *
 * ```ts
 * import { Pass, seg } from "retention-sdk/testing";
 *
 * const out = new Pass("2026-03-01T00:00:00Z")
 *   .param("days", 7)
 *   .segment(seg("api/debug-2026-02-20.log").ageDays(9).label("level", "debug"))
 *   .run(dropDebug);
 * assert.equal(out.action("api/debug-2026-02-20.log"), "drop");
 * ```
 *
 * What runs is what runs in the component: `run` calls the SDK's export glue with the contract's `pass-context`
 * and `segment-batch` records, lifted as the chosen engine lifts them (`.engine("starlingmonkey")`, the default:
 * BigInt and typed arrays; `.engine("quickjs")`: numbers and arrays). Around it, this module plays the host's part,
 * as `retention plugin test` does: `info` is checked (name and version of 1 to 128 printable characters); the
 * context has the now, the dataset (default `test`), the pass id `test`, dry run (default true), the parameters
 * sorted by key and the totals per tier; then `begin`, every batch through `observe` if the plugin asked for it,
 * every batch through `decide`. Segments come oldest first (by end time, then name) in batches of `batchSize`
 * (default 4,096, the host's), each label key and value sent once per pass as a symbol; `batch-names` answers for
 * the current batch. The verdicts are checked as the host checks them; reasons are cut at 512 bytes, error messages
 * and log lines at 2 KiB, and the log keeps at most 1,000 lines and 256 KiB.
 *
 * Not simulated: the deadline per call, the memory cap, and engine differences below the SDK (run the built
 * components through `retention plugin test` for those).
 */

import { makePolicy, type Plugin, type RawContext, type RawPolicy } from "./plugin.ts";
import type { RawBatch } from "./segment.ts";
import { type LogLine, MAX_LOG_LINE_BYTES, startCapture, stopCapture } from "./testing-host.ts";
import { UtcDate } from "./time.ts";
import { type Action, DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, Tier } from "./types.ts";
import { truncateUtf8, utf8Length } from "./utf8.ts";

export type { LogLine } from "./testing-host.ts";

/** Segments per `observe` / `decide` call unless `batchSize` says otherwise: the host's default. */
export const DEFAULT_BATCH_SIZE = 4096;
/** The host cuts reason texts to this many bytes. */
const MAX_REASON_BYTES = 512;
/** The longest plugin name or version the host accepts. */
const MAX_INFO_BYTES = 128;

/** How the engine lifts the contract's values: what the SDK must cope with. */
export type Engine = "starlingmonkey" | "quickjs";

type End = { at: number } | { ago: number };
type Start = { atEnd: true } | { at: number } | { before: number };

/** Describes a segment named `name`: hot, ending at the pass's now, 0 bytes, rows unknown, no labels. */
export function seg(name: string): TestSegment {
  return new TestSegment(name);
}

/** A segment of a test {@link Pass}, made by {@link seg}. Every method returns the segment, for chaining. */
export class TestSegment {
  /** @internal */ tierValue: Tier = "hot";
  /** @internal */ end: End = { ago: 0 };
  /** @internal */ start: Start = { atEnd: true };
  /** @internal */ bytesValue = 0;
  /** @internal */ rowsValue: number | undefined;
  /** @internal */ labelsValue: [string, string][] = [];

  constructor(readonly name: string) {}

  /** The tier it is in (default hot). */
  tier(tier: Tier): this {
    if (!Tier.ALL.includes(tier)) {
      throw new Error(`${JSON.stringify(tier)} is not a tier (hot, compressed, archived)`);
    }
    this.tierValue = tier;
    return this;
  }

  /** Its end time, as RFC 3339 (`2026-02-20T12:00:00Z`) or a date (`2026-02-20`, midnight UTC). */
  time(time: string): this {
    this.end = { at: parseTime(time) };
    return this;
  }

  /** Its end time in milliseconds since the Unix epoch. */
  endMs(ms: number): this {
    this.end = { at: ms };
    return this;
  }

  /** Ends `ms` milliseconds before the pass's now (negative: in the future). */
  ageMs(ms: number): this {
    this.end = { ago: ms };
    return this;
  }

  /** Ends exactly `days` days before the pass's now, so that `seg.ageDays()` is `days`. */
  ageDays(days: number): this {
    return this.ageMs(days * DAY_MS);
  }

  /** Its start time, as for {@link time} (default: its end). */
  startAt(time: string): this {
    this.start = { at: parseTime(time) };
    return this;
  }

  /** Its start time in milliseconds since the Unix epoch. */
  startMs(ms: number): this {
    this.start = { at: ms };
    return this;
  }

  /** Starts `ms` milliseconds before its end, wherever the end is. */
  spanMs(ms: number): this {
    this.start = { before: ms };
    return this;
  }

  /** Its size in bytes, as stored in its tier (default 0). */
  bytes(bytes: number): this {
    this.bytesValue = bytes;
    return this;
  }

  /** Its number of rows (default: unknown). */
  rows(rows: number): this {
    this.rowsValue = rows;
    return this;
  }

  /** A label; setting a key again replaces its value. */
  label(key: string, value: string): this {
    const at = this.labelsValue.findIndex(([k]) => k === key);
    if (at >= 0) {
      this.labelsValue[at] = [key, value];
    } else {
      this.labelsValue.push([key, value]);
    }
    return this;
  }
}

/** One segment's decision in a test pass. */
export interface Decided {
  readonly name: string;
  /** The tier it was in. */
  readonly tier: Tier;
  readonly action: Action;
  /** Why, as the host records it (cut at 512 bytes); `undefined` without a reason. */
  readonly reason: string | undefined;
  /** Its position in the pass: 0 for the oldest. */
  readonly index: number;
}

/** A pass that failed: the failing call, named as in the host's errors, and the plugin's message. */
export class Failure extends Error {
  constructor(
    /** `info`, `begin`, `observe (batch 0)`, `decide (batch 2)`, ... */
    readonly call: string,
    message: string,
    readonly logs: readonly LogLine[],
    readonly logsDropped: number,
  ) {
    super(message);
    this.name = "Failure";
  }

  override toString(): string {
    return `${this.call}: ${this.message}`;
  }
}

/** The decisions of a pass that succeeded. */
export class Outcome {
  /** @internal */
  constructor(
    private readonly decided: readonly Decided[],
    /** Whether the plugin observed first. */
    readonly observedFirst: boolean,
    /** The lines the plugin logged (within the host's bounds). */
    readonly logs: readonly LogLine[],
    /** Lines logged beyond the host's bounds: counted, not kept. */
    readonly logsDropped: number,
  ) {}

  /** All decisions, in the order the segments were added to the pass. */
  decisions(): readonly Decided[] {
    return this.decided;
  }

  /** The whole decision about segment `name`. Throws when the pass has no such segment. */
  decision(name: string): Decided {
    const d = this.decided.find((x) => x.name === name);
    if (d === undefined) {
      throw new Error(`no segment named ${JSON.stringify(name)} in this pass`);
    }
    return d;
  }

  /** The action decided for segment `name`. */
  action(name: string): Action {
    return this.decision(name).action;
  }

  /** The reason recorded for segment `name`, `undefined` when there is none. */
  reason(name: string): string | undefined {
    return this.decision(name).reason;
  }

  /** The names of the segments with this action, oldest first. */
  namesWith(action: Action): string[] {
    return this.decided
      .filter((d) => d.action === action)
      .sort((a, b) => a.index - b.index)
      .map((d) => d.name);
  }
}

interface Resolved {
  input: number;
  name: string;
  tier: Tier;
  startMs: number;
  endMs: number;
  bytes: number;
  rows: number | undefined;
  /** Sorted by key, as a fixture's labels reach the host. */
  labels: [string, string][];
}

/**
 * A pass to run a plugin over: the context `begin` gets and the segments `observe` and `decide` get. Every method
 * but `run` and `failure` returns the pass, for chaining; a pass can be run any number of times.
 */
export class Pass {
  private nowValue: number;
  private datasetValue = "test";
  private passIdValue = "test";
  private dryRunValue = true;
  private paramsValue: [string, string][] = [];
  private segmentsValue: TestSegment[] = [];
  private batchSizeValue = DEFAULT_BATCH_SIZE;
  private engineValue: Engine = "starlingmonkey";

  /** A pass whose now is an RFC 3339 time (`2026-03-01T00:00:00Z`), a date (`2026-03-01`) or epoch milliseconds. */
  constructor(now: string | number) {
    this.nowValue = typeof now === "number" ? now : parseTime(now);
  }

  /** The pass's now, in milliseconds since the Unix epoch. */
  get nowMs(): number {
    return this.nowValue;
  }

  /** The dataset's name (default `test`). */
  dataset(name: string): this {
    this.datasetValue = name;
    return this;
  }

  /** The pass's id (default `test`). */
  passId(id: string): this {
    this.passIdValue = id;
    return this;
  }

  /** Whether the host only reports the plan (default true, as in `retention plugin test`). */
  dryRun(dryRun: boolean): this {
    this.dryRunValue = dryRun;
    return this;
  }

  /** A parameter; values reach the plugin as text (`7` and `"7"` are the same). Setting a key again replaces it. */
  param(key: string, value: string | number | boolean): this {
    const v = String(value);
    const at = this.paramsValue.findIndex(([k]) => k === key);
    if (at >= 0) {
      this.paramsValue[at] = [key, v];
    } else {
      this.paramsValue.push([key, v]);
    }
    return this;
  }

  /** Adds a segment; the order does not matter (the plugin sees them oldest first). */
  segment(segment: TestSegment): this {
    this.segmentsValue.push(segment);
    return this;
  }

  /** Adds several segments. */
  segments(segments: Iterable<TestSegment>): this {
    for (const s of segments) {
      this.segmentsValue.push(s);
    }
    return this;
  }

  /** Segments per `observe` and `decide` call (default 4,096). A plugin's decisions must not depend on it. */
  batchSize(size: number): this {
    if (!(Number.isInteger(size) && size >= 1)) {
      throw new Error("a batch holds at least one segment");
    }
    this.batchSizeValue = size;
    return this;
  }

  /** Which engine's lifting of values to imitate (default `starlingmonkey`). */
  engine(engine: Engine): this {
    this.engineValue = engine;
    return this;
  }

  /** A copy of the pass, to vary it without changing this one. */
  clone(): Pass {
    const p = new Pass(this.nowValue);
    Object.assign(p, this, {
      paramsValue: this.paramsValue.map(([k, v]) => [k, v]),
      segmentsValue: [...this.segmentsValue],
    });
    return p;
  }

  /** Runs `plugin` over the pass as the host would. Returns every decision; throws a {@link Failure} otherwise. */
  run(plugin: Plugin<any>): Outcome {
    const capture = startCapture();
    try {
      const [decided, observedFirst] = this.drive(plugin, capture);
      return new Outcome(decided, observedFirst, capture.lines, capture.dropped);
    } catch (e) {
      if (e instanceof CallFailed) {
        throw new Failure(e.call, e.text, capture.lines, capture.dropped);
      }
      throw e;
    } finally {
      stopCapture();
    }
  }

  /** Runs `plugin` and returns the {@link Failure}; throws when the pass succeeds. */
  failure(plugin: Plugin<any>): Failure {
    try {
      this.run(plugin);
    } catch (e) {
      if (e instanceof Failure) {
        return e;
      }
      throw e;
    }
    throw new Error("the pass succeeded, but a failure was expected");
  }

  /** The number and bytes of the pass's segments per tier, as `ctx.totals` will give them. */
  totals(): Record<Tier, { segments: number; bytes: number }> {
    const t = { hot: { segments: 0, bytes: 0 }, compressed: { segments: 0, bytes: 0 }, archived: { segments: 0, bytes: 0 } };
    for (const s of this.segmentsValue) {
      t[s.tierValue].segments++;
      t[s.tierValue].bytes += s.bytesValue;
    }
    return t;
  }

  private drive(plugin: Plugin<any>, capture: ReturnType<typeof startCapture>): [Decided[], boolean] {
    const policy = makePolicy(plugin);
    const info = call("info", () => policy.info());
    checkInfo(info);
    const segments = this.oldestFirst();
    const { batches, symbols } = buildBatches(segments, this.batchSizeValue);
    const big = this.engineValue === "starlingmonkey";
    const options = call("begin", () => policy.begin(this.context(big)));
    if (typeof options?.observeFirst !== "boolean") {
      throw new Error(`begin returned ${JSON.stringify(options)}, not pass-options`);
    }
    let callNumber = 0;
    let sent = 0;
    const attach = (b: TestBatch): RawBatch => {
      const out = lift(b, big);
      if (b.maxSymbol > sent) {
        out.symbols = symbols.slice(sent, b.maxSymbol);
        sent = b.maxSymbol;
      }
      return out;
    };
    const namesOf = (part: Resolved[]) => {
      let text = "";
      const ends: number[] = [];
      let bytes = 0;
      for (const s of part) {
        text += s.name;
        bytes += utf8Length(s.name);
        ends.push(bytes);
      }
      return { text, ends: big ? Uint32Array.from(ends) : ends };
    };
    if (options.observeFirst) {
      for (const b of batches) {
        const name = `observe (batch ${callNumber++})`;
        capture.names = namesOf(segments.slice(b.start, b.end));
        try {
          call(name, () => policy.observe(attach(b)));
        } finally {
          capture.names = undefined;
        }
      }
    }
    const decided: Decided[] = new Array(segments.length);
    for (const b of batches) {
      const name = `decide (batch ${callNumber++})`;
      const part = segments.slice(b.start, b.end);
      capture.names = namesOf(part);
      let verdicts: ReturnType<RawPolicy["decide"]>;
      try {
        verdicts = call(name, () => policy.decide(attach(b)));
      } finally {
        capture.names = undefined;
      }
      const checked = checkVerdicts(verdicts, part);
      if (typeof checked === "string") {
        throw new CallFailed(name, checked);
      }
      part.forEach((s, k) => {
        decided[s.input] = Object.freeze({ name: s.name, tier: s.tier, action: checked[k]![0], reason: checked[k]![1], index: b.start + k });
      });
    }
    return [decided, options.observeFirst];
  }

  private context(big: boolean): RawContext {
    const params = [...this.paramsValue].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, value]) => ({ key, value }));
    const t = this.totals();
    const n = (x: number) => (big ? BigInt(x) : x);
    const tt = (x: { segments: number; bytes: number }) => ({ segments: n(x.segments), bytes: n(x.bytes) });
    return {
      passId: this.passIdValue,
      dataset: this.datasetValue,
      nowMs: n(this.nowValue),
      dryRun: this.dryRunValue,
      params,
      totals: { hot: tt(t.hot), compressed: tt(t.compressed), archived: tt(t.archived) },
    };
  }

  private oldestFirst(): Resolved[] {
    const seen = new Set<string>();
    for (const s of this.segmentsValue) {
      if (seen.has(s.name)) {
        throw new Error(`segment name ${JSON.stringify(s.name)} appears twice in the pass`);
      }
      seen.add(s.name);
    }
    const out = this.segmentsValue.map((s, input): Resolved => {
      const endMs = "at" in s.end ? s.end.at : this.nowValue - s.end.ago;
      const startMs = "atEnd" in s.start ? endMs : "at" in s.start ? s.start.at : endMs - s.start.before;
      const labels = [...s.labelsValue].sort(([a], [b]) => compareBytes(a, b));
      return { input, name: s.name, tier: s.tierValue, startMs, endMs, bytes: s.bytesValue, rows: s.rowsValue, labels };
    });
    out.sort((a, b) => a.endMs - b.endMs || compareBytes(a.name, b.name));
    return out;
  }
}

/** A failing call of the glue, on its way to becoming a {@link Failure}. */
class CallFailed extends Error {
  constructor(
    readonly call: string,
    readonly text: string,
  ) {
    super(`${call}: ${text}`);
  }
}

/** Calls the glue as the host would: a thrown string is the call's `err`; anything else would trap the component. */
function call<T>(name: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (typeof e === "string") {
      throw new CallFailed(name, truncateUtf8(e, MAX_LOG_LINE_BYTES));
    }
    throw new Error(`${name} threw a ${typeof e} rather than a string: in StarlingMonkey that is a trap (an SDK bug)`, { cause: e });
  }
}

/** Compares strings by their UTF-8 bytes (as the host sorts names), which is code point order. */
function compareBytes(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) {
      return d;
    }
  }
  return x.length - y.length;
}

interface TestBatch {
  start: number;
  end: number;
  firstIndex: number;
  startMs: number[];
  endMs: number[];
  rows: number[];
  bytes: number[];
  tiers: number[];
  labels: { key: number; values: number[] }[];
  /** The largest symbol id its labels use. */
  maxSymbol: number;
}

/** Cuts the pass into batches, column by column, giving every label key and value a symbol id in order of first use. */
function buildBatches(segments: Resolved[], size: number): { batches: TestBatch[]; symbols: string[] } {
  const symbols: string[] = [];
  const ids = new Map<string, number>();
  const intern = (text: string): number => {
    let id = ids.get(text);
    if (id === undefined) {
      symbols.push(text);
      id = symbols.length;
      ids.set(text, id);
    }
    return id;
  };
  const labels = segments.map((s) => s.labels.map(([k, v]) => [intern(k), intern(v)] as [number, number]).sort((a, b) => a[0] - b[0] || a[1] - b[1]));
  const batches: TestBatch[] = [];
  for (let start = 0; start < segments.length; start += size) {
    const end = Math.min(start + size, segments.length);
    const part = segments.slice(start, end);
    const columns: { key: number; values: number[] }[] = [];
    let maxSymbol = 0;
    labels.slice(start, end).forEach((segLabels, i) => {
      for (const [key, value] of segLabels) {
        maxSymbol = Math.max(maxSymbol, key, value);
        let col = columns.find((c) => c.key === key);
        if (col === undefined) {
          col = { key, values: new Array(part.length).fill(0) };
          columns.push(col);
        }
        col.values[i] = value;
      }
    });
    batches.push({
      start,
      end,
      firstIndex: start,
      startMs: part.map((s) => s.startMs),
      endMs: part.map((s) => s.endMs),
      rows: part.map((s) => (s.rows === undefined ? -1 : s.rows)),
      bytes: part.map((s) => s.bytes),
      tiers: part.map((s) => Tier.code(s.tier)),
      labels: columns,
      maxSymbol,
    });
  }
  return { batches, symbols };
}

/** A batch as the engine lifts it (fresh arrays every time, as a lifted value is). */
function lift(b: TestBatch, big: boolean): RawBatch {
  if (big) {
    return {
      firstIndex: BigInt(b.firstIndex),
      symbols: [],
      startMs: BigInt64Array.from(b.startMs, BigInt),
      endMs: BigInt64Array.from(b.endMs, BigInt),
      rows: BigInt64Array.from(b.rows, BigInt),
      bytes: BigUint64Array.from(b.bytes, BigInt),
      tiers: Uint8Array.from(b.tiers),
      labels: b.labels.map((c) => ({ key: c.key, values: Uint32Array.from(c.values) })),
    };
  }
  return {
    firstIndex: b.firstIndex,
    symbols: [],
    startMs: [...b.startMs],
    endMs: [...b.endMs],
    rows: [...b.rows],
    bytes: [...b.bytes],
    tiers: Uint8Array.from(b.tiers),
    labels: b.labels.map((c) => ({ key: c.key, values: [...c.values] })),
  };
}

/** The host's check of `info`. */
function checkInfo(info: { name: unknown; version: unknown }): void {
  for (const what of ["name", "version"] as const) {
    const v = info[what];
    // eslint-disable-next-line no-control-regex
    if (typeof v !== "string" || v === "" || utf8Length(v) > MAX_INFO_BYTES || /[\u0000-\u001f\u007f-\u009f]/.test(v)) {
      throw new CallFailed("info", `${what} must be 1 to ${MAX_INFO_BYTES} printable characters, got ${JSON.stringify(v)}`);
    }
  }
}

/** The host's check of one batch's verdicts, with the host's messages; each segment's action and cut reason. */
function checkVerdicts(v: ReturnType<RawPolicy["decide"]>, part: Resolved[]): [Action, string | undefined][] | string {
  const n = part.length;
  if (v.actions.length !== n) {
    return `returned ${v.actions.length} actions for a batch of ${n} segments (one per segment expected)`;
  }
  if (v.reasons.length !== 0 && v.reasons.length !== n) {
    return `returned ${v.reasons.length} reasons for a batch of ${n} segments (none, or one per segment expected)`;
  }
  if (v.reasonTexts.length > n) {
    return `returned ${v.reasonTexts.length} reason texts for a batch of ${n} segments (at most one per segment)`;
  }
  const out: [Action, string | undefined][] = [];
  for (let i = 0; i < n; i++) {
    const s = part[i]!;
    const code = v.actions[i]!;
    const action = (["keep", "compress", "archive", "drop"] as const)[code];
    if (action === undefined) {
      return `returned action code ${code} for segment ${JSON.stringify(s.name)}, which is not an action (0 keep, 1 compress, 2 archive, 3 drop)`;
    }
    const allowed = action === "keep" || action === "drop" || (action === "compress" ? s.tier === "hot" : s.tier !== "archived");
    if (!allowed) {
      return `decided ${action} for ${s.tier} segment ${JSON.stringify(s.name)}, which the contract does not allow (compress only from hot, archive only from hot or compressed)`;
    }
    const r = v.reasons.length === 0 ? 0 : v.reasons[i]!;
    let reason: string | undefined;
    if (r !== 0) {
      const text = v.reasonTexts[r - 1];
      if (text === undefined) {
        return `reason ${r} of segment ${JSON.stringify(s.name)} points past the ${v.reasonTexts.length} reason texts`;
      }
      reason = truncateUtf8(text, MAX_REASON_BYTES);
    }
    out.push([action, reason]);
  }
  return out;
}

/**
 * Parses `YYYY-MM-DD` (midnight UTC) or RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (`T` or a space,
 * `Z` in either case) into milliseconds since the Unix epoch; fractions below a millisecond are dropped.
 */
export function parseTime(text: string): number {
  const bad = () => new Error(`${JSON.stringify(text)} is not an RFC 3339 time (e.g. 2026-03-01T00:00:00Z) or a date (2026-03-01)`);
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2}))?$/.exec(text);
  if (m === null) {
    throw bad();
  }
  const date = UtcDate.of(Number(m[1]), Number(m[2]), Number(m[3]));
  if (date === undefined) {
    throw bad();
  }
  if (m[4] === undefined) {
    return date.startMs();
  }
  const [hour, minute, second] = [Number(m[4]), Number(m[5]), Number(m[6])];
  if (hour > 23 || minute > 59 || second > 59) {
    throw bad();
  }
  const millis = m[7] === undefined ? 0 : Number((m[7] + "00").slice(0, 3));
  let offset = 0;
  const zone = m[8]!;
  if (zone !== "Z" && zone !== "z") {
    const h = Number(zone.slice(1, 3));
    const mm = Number(zone.slice(4, 6));
    if (h > 23 || mm > 59) {
      throw bad();
    }
    offset = (zone[0] === "-" ? -1 : 1) * (h * HOUR_MS + mm * MINUTE_MS);
  }
  return date.startMs() + hour * HOUR_MS + minute * MINUTE_MS + second * SECOND_MS + millis - offset;
}
