/**
 * `gfs`: grandfather-father-son retention — keep the newest segment of each of the last N days, ISO weeks, months
 * and years (and the last N segments), drop everything else. The semantics are those of `restic forget` and
 * `borg prune`; this is the TypeScript port of `guest-plugins/examples/gfs` and decides exactly as it does.
 *
 * Parameters (each optional, default 0 = rule off; at least one must be positive):
 * - `keep_last`: keep the newest N segments.
 * - `keep_daily`: for each of the last N days that have a segment, keep the newest segment of that day.
 * - `keep_weekly`: the same per ISO week (Monday to Sunday; week 1 holds the year's first Thursday).
 * - `keep_monthly`: the same per calendar month.
 * - `keep_yearly`: the same per calendar year.
 * - `group_by`: a label name, e.g. `service`: the rules apply to each value of that label separately (segments
 *   without the label form one group of their own).
 *
 * Days, weeks, months and years are UTC calendar periods of each segment's end time. "The last N days" counts only
 * days that have a segment, so a gap in the data does not use up the budget. A segment kept by any rule is kept.
 *
 * Segments arrive oldest first, but which segment is the newest of its day is only known after the whole day was
 * seen, so the plugin observes first: during `observe` it keeps, per group and rule, a window of the newest N
 * periods seen so far with the newest segment of each (memory O(groups x N), not O(segments)); `decide` then keeps
 * exactly those segments.
 */

import { DAY_MS, Decision, definePlugin, exportPlugin, fail, type Segment, UtcDate } from "retention-sdk";

interface Period {
  /** The parameter that sets the rule. */
  readonly param: string;
  /** The bit marking "kept by this rule" (bit 0 is keep_last). */
  readonly bit: number;
  /** A number identifying the period that contains `endMs`; later periods have larger numbers. */
  key(date: UtcDate): number;
  /** The period as people write it: `2026-01-09`, `2026-W02`, `2026-01`, `2026`. */
  label(date: UtcDate): string;
}

/** The period rules, in the order their names appear in reasons. */
const PERIODS: readonly Period[] = [
  { param: "keep_daily", bit: 1 << 1, key: (d) => d.daysSinceEpoch(), label: (d) => d.toString() },
  {
    param: "keep_weekly",
    bit: 1 << 2,
    key: (d) => {
      const w = d.isoWeek();
      return w.year * 100 + w.week;
    },
    label: (d) => d.isoWeek().toString(),
  },
  { param: "keep_monthly", bit: 1 << 3, key: (d) => d.year * 12 + d.month - 1, label: (d) => d.toString().slice(0, -3) },
  { param: "keep_yearly", bit: 1 << 4, key: (d) => d.year, label: (d) => d.toString().slice(0, -6) },
];

const LAST_BIT = 1;
const PARAMS = ["keep_last", ...PERIODS.map((p) => p.param), "group_by"];
/** Rust's `u32`, the type of the Rust plugin's counts. */
const U32 = { min: 0, max: 0xffff_ffff };

/** A queue that keeps at most `limit` items, dropping the oldest (amortised O(1), unlike `Array.shift`). */
class Bounded<T> {
  private items: T[] = [];
  private head = 0;

  constructor(private readonly limit: number) {}

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
    if (this.length > this.limit) {
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
    }
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = this.head; i < this.items.length; i++) {
      yield this.items[i]!;
    }
  }
}

/** The newest `limit` periods of one rule seen so far, each with the index of its newest segment. */
class Window {
  readonly periods: Bounded<[period: number, newest: number]>;
  /** The newest period seen, and its entry in `periods`. */
  private lastPeriod = NaN;
  private lastEntry: [period: number, newest: number] | undefined;

  constructor(
    readonly rule: Period,
    limit: number,
  ) {
    this.periods = new Bounded(limit);
  }

  /**
   * Records a segment; segments come oldest first, so its period is the newest seen or a newer one. The newest
   * period's entry is the group's newest segment until a newer period begins: `newest` sets it before that.
   */
  push(period: number, index: number, newest: number): void {
    if (period === this.lastPeriod) {
      this.lastEntry![1] = index;
    } else {
      if (this.lastEntry !== undefined) {
        this.lastEntry[1] = newest;
      }
      const entry: [number, number] = [period, index];
      this.periods.push(entry);
      this.lastPeriod = period;
      this.lastEntry = entry;
    }
  }

  /** Sets the newest period's entry to the group's newest segment (after the last segment of the pass). */
  finish(newest: number): void {
    if (this.lastEntry !== undefined) {
      this.lastEntry[1] = newest;
    }
  }
}

/** The segments to keep: their indices, ascending, and the bits of the rules that keep each. */
interface Kept {
  index: number[];
  bits: number[];
}

/** The rules' windows for one group of segments. */
interface Group {
  last: Bounded<number>;
  windows: Window[];
  /**
   * The day of the group's newest segment so far, and its index. While segments of the same day follow, only
   * `newest` moves: every rule's newest period is that day's period, and its newest segment is this one.
   */
  day: number;
  newest: number;
}

/** The state of one pass. */
class Gfs {
  /** Per group (the `group_by` label's symbol id, 0 without the label), the windows filled during observe. */
  groups: (Group | undefined)[] = [];
  /** The day (since the epoch) of the last segment observed, and each rule's period of that day. */
  day = NaN;
  readonly keys: number[];
  /** After observe: the segments to keep, ascending by index. */
  private kept: Kept | undefined;
  /** Position in `kept` of the next segment to keep. */
  private cursor = 0;
  /** The index of the next segment to keep (`Infinity` when none is left; -1 before the first decide). */
  nextKept = -1;
  /** The decision for every segment not kept. */
  readonly dropped: Decision;

  constructor(
    readonly keepLast: number,
    /** The period rules that are on, with their N. */
    readonly rules: readonly [Period, number][],
    readonly groupBy: string | undefined,
    /** The reason for every drop: the same text for the whole pass. */
    readonly dropReason: string,
  ) {
    this.keys = rules.map(() => 0);
    this.dropped = Decision.drop(dropReason);
  }

  /** The group of a symbol id, made on first use. */
  group(id: number): Group {
    const windows = this.rules.map(([p, n]) => new Window(p, n));
    const group: Group = { last: new Bounded(this.keepLast), windows, day: NaN, newest: -1 };
    this.groups[id] = group;
    return group;
  }

  /** The first segment of a day in its group: records it in every window (the periods are worked out once a day). */
  newDay(group: Group, day: number, index: number): void {
    const keys = this.keys;
    if (day !== this.day) {
      this.day = day;
      const date = UtcDate.fromDays(day);
      for (let r = 0; r < keys.length; r++) {
        keys[r] = this.rules[r]![0].key(date);
      }
    }
    const windows = group.windows;
    for (let r = 0; r < windows.length; r++) {
      windows[r]!.push(keys[r]!, index, group.newest);
    }
    group.day = day;
  }

  /** Decides a segment at or after `nextKept`: the kept one, or a dropped one after the last kept. */
  decideAt(seg: Segment): Decision {
    // The first decide: observe has seen every segment.
    const kept = (this.kept ??= this.collectKept());
    const index = seg.index;
    const at = kept.index;
    let cursor = this.cursor;
    while (cursor < at.length && at[cursor]! < index) {
      cursor++;
    }
    this.cursor = cursor;
    if (at[cursor] !== index) {
      this.nextKept = at[cursor] ?? Infinity;
      return this.dropped;
    }
    this.nextKept = at[cursor + 1] ?? Infinity;
    const bits = kept.bits[cursor]!;
    const date = UtcDate.fromUnixMs(seg.endMs);
    const why: string[] = [];
    if (bits & LAST_BIT) {
      why.push(`keep_last ${this.keepLast}`);
    }
    for (const [period] of this.rules) {
      if (bits & period.bit) {
        why.push(`${period.param} ${period.label(date)}`);
      }
    }
    return Decision.keep(why.join(", "));
  }

  /**
   * Gathers the segments every window kept into one sorted list (a segment may be kept by several rules). Each
   * entry is packed into one number, `index * 32 + bits`, so that the list is a flat array of doubles: with
   * `keep_last` near the number of segments it holds every segment, and pairs as small arrays would weigh several
   * times more (the memory cap is 64 MiB by default, and the engine takes a share of it).
   */
  private collectKept(): Kept {
    const all: number[] = [];
    for (const g of this.groups) {
      if (g === undefined) {
        continue;
      }
      for (const i of g.last) {
        all.push(i * 32 + LAST_BIT);
      }
      for (const w of g.windows) {
        w.finish(g.newest);
        for (const [, i] of w.periods) {
          all.push(i * 32 + w.rule.bit);
        }
      }
    }
    this.groups = [];
    const sorted = Float64Array.from(all).sort();
    const index: number[] = [];
    const bits: number[] = [];
    for (const packed of sorted) {
      const i = Math.floor(packed / 32);
      const b = packed - i * 32;
      if (index.length > 0 && index[index.length - 1] === i) {
        bits[bits.length - 1]! |= b;
      } else {
        index.push(i);
        bits.push(b);
      }
    }
    return { index, bits };
  }
}

const gfs = definePlugin({
  info: {
    name: "gfs",
    version: "0.1.0",
    description: "Keeps the newest segment of each of the last N days, weeks, months and years; drops the rest.",
  },

  begin(ctx) {
    ctx.checkParams(PARAMS);
    const keepLast = ctx.paramInt("keep_last", 0, U32);
    const rules: [Period, number][] = [];
    for (const p of PERIODS) {
      const n = ctx.paramInt(p.param, 0, U32);
      if (n > 0) {
        rules.push([p, n]);
      }
    }
    if (keepLast === 0 && rules.length === 0) {
      fail(
        "no keep rule set: set at least one of keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly " +
          "(refusing to drop every segment)",
      );
    }
    const groupBy = ctx.param("group_by")?.trim() || undefined;
    const listed = [...(keepLast > 0 ? [`keep_last ${keepLast}`] : []), ...rules.map(([p, n]) => `${p.param} ${n}`)];
    let dropReason = `not kept by ${listed.join(", ")}`;
    if (groupBy !== undefined) {
      dropReason += ` (per ${groupBy})`;
    }
    return new Gfs(keepLast, rules, groupBy, dropReason);
  },

  // The per-segment work is kept to a few steps (JavaScript engines in components interpret): most segments are
  // in the same day as the previous one of their group, and most are dropped.
  observe(seg, state) {
    const groupId = state.groupBy === undefined ? 0 : seg.labelSymbol(state.groupBy);
    const group = state.groups[groupId] ?? state.group(groupId);
    const index = seg.index;
    if (state.keepLast > 0) {
      group.last.push(index);
    }
    const day = Math.floor(seg.endMs / DAY_MS);
    if (day !== group.day) {
      state.newDay(group, day, index);
    }
    group.newest = index;
  },
  decide: (seg, state) => (seg.index < state.nextKept ? state.dropped : state.decideAt(seg)),
});

export default gfs;
export const policy = exportPlugin(gfs);
