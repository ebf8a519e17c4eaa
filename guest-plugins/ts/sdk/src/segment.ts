/**
 * The per-segment view over a batch's columns. The host sends a batch as columns (one list per field) plus label
 * columns of symbol ids; a {@link Segment} is an index into them (one per batch, moved from segment to segment).
 * StarlingMonkey lifts `s64`/`u64` columns as `BigInt64Array`/`BigUint64Array`, QuickJS as arrays of numbers: a
 * column is converted to numbers once per batch, on first use. Label keys are resolved to their column once per
 * batch, label values through the pass's symbol table, and names are fetched from the host once per batch, on first
 * use.
 */

import { PluginError } from "./errors.ts";
import { hostBatchNames } from "./host.ts";
import { DAY_MS, Tier } from "./types.ts";
import { splitAtUtf8Offsets } from "./utf8.ts";

/** A column as either engine lifts it. */
export type Column = ArrayLike<number | bigint>;

/** The columns of a `segment-batch`, as either engine lifts them. */
export interface RawBatch {
  firstIndex: number | bigint;
  symbols: ArrayLike<string>;
  startMs: Column;
  endMs: Column;
  rows: Column;
  bytes: Column;
  tiers: ArrayLike<number>;
  labels: ArrayLike<{ key: number; values: ArrayLike<number> }>;
}

/**
 * The pass's symbol table, indexed by symbol id: entry 0 is `undefined` (the contract's "absent"), entry `n` the text
 * of symbol `n`. Ids are stable for the whole pass, across batches and across `observe` and `decide`.
 */
export class SymbolTable {
  readonly texts: (string | undefined)[] = [undefined];
  private ids: Map<string, number> | undefined;
  private indexed = 1;

  append(symbols: ArrayLike<string>): void {
    for (let i = 0; i < symbols.length; i++) {
      this.texts.push(symbols[i]);
    }
  }

  /** Number of symbols (the largest valid id). */
  get size(): number {
    return this.texts.length - 1;
  }

  /** The id of `text`, -1 when it is no symbol (yet). The index is built on first use and kept up to date. */
  idOf(text: string): number {
    const ids = (this.ids ??= new Map());
    for (; this.indexed < this.texts.length; this.indexed++) {
      const t = this.texts[this.indexed]!;
      if (!ids.has(t)) {
        ids.set(t, this.indexed);
      }
    }
    return ids.get(text) ?? -1;
  }
}

const NO_COLUMN: ArrayLike<number> = [];

/**
 * A 64-bit column as numbers, made once per batch. QuickJS lifts `list<s64>`/`list<u64>` as arrays of numbers: used
 * as they are. StarlingMonkey lifts them as `BigInt64Array`/`BigUint64Array`: converted in one pass (reading a
 * BigInt element and converting it on every access costs more). Exact up to 2^53, as `Number()` is.
 */
function numbers(col: Column): ArrayLike<number> {
  const n = col.length;
  if (n === 0 || typeof col[0] === "number") {
    // An engine lifts a column one way: numbers throughout.
    return col as ArrayLike<number>;
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = Number(col[i]);
  }
  return out;
}

/** One batch, its columns checked to be consistent; segments index into it. @internal */
export class Batch {
  readonly firstIndex: number;
  readonly length: number;
  /** The 64-bit columns as numbers, converted on first use (read through the methods of the same names). */
  startCol: ArrayLike<number> | undefined;
  endCol: ArrayLike<number> | undefined;
  rowsCol: ArrayLike<number> | undefined;
  bytesCol: ArrayLike<number> | undefined;
  private columns: Map<string, ArrayLike<number>> | undefined;
  /** The last label key looked up, and its column (plugins ask for the same key segment after segment). */
  lastKey: string | undefined;
  lastColumn: ArrayLike<number> = NO_COLUMN;
  private valueIds: Map<string, number> | undefined;
  private lastValue: string | undefined;
  private lastValueId = -1;
  private names: string[] | undefined;
  /** One past the largest valid symbol id (the table does not grow during a batch). */
  readonly symbolEnd: number;

  constructor(
    readonly raw: RawBatch,
    readonly table: SymbolTable,
    readonly nowMs: number,
    readonly total: number,
  ) {
    this.firstIndex = Number(raw.firstIndex);
    const n = raw.endMs.length;
    this.length = n;
    const lens: [string, number][] = [
      ["start-ms", raw.startMs.length],
      ["rows", raw.rows.length],
      ["bytes", raw.bytes.length],
      ["tiers", raw.tiers.length],
    ];
    for (const [field, len] of lens) {
      if (len !== n) {
        throw new PluginError(
          `malformed batch at index ${this.firstIndex}: \`${field}\` has ${len} entries but \`end-ms\` has ${n}`,
        );
      }
    }
    const known = table.size;
    this.symbolEnd = known + 1;
    for (let c = 0; c < raw.labels.length; c++) {
      const col = raw.labels[c]!;
      if (!(col.key >= 1 && col.key <= known)) {
        throw new PluginError(
          `malformed batch at index ${this.firstIndex}: label key symbol ${col.key} is not in the symbol table (${known} symbols)`,
        );
      }
      if (col.values.length !== n) {
        throw new PluginError(
          `malformed batch at index ${this.firstIndex}: label column \`${table.texts[col.key]}\` has ${col.values.length} entries for ${n} segments`,
        );
      }
    }
    const tiers = raw.tiers;
    if (tiers instanceof Uint8Array) {
      // Both engines lift `list<u8>` as bytes: one comparison per segment.
      for (let i = 0; i < n; i++) {
        if (tiers[i]! > 2) {
          this.badTier(i);
        }
      }
    } else {
      for (let i = 0; i < n; i++) {
        const t = tiers[i]!;
        if (!(t === 0 || t === 1 || t === 2)) {
          this.badTier(i);
        }
      }
    }
  }

  private badTier(i: number): never {
    throw new PluginError(
      `malformed batch at index ${this.firstIndex}: tier code ${this.raw.tiers[i]} of segment ${this.firstIndex + i} is not a tier`,
    );
  }

  /** `start-ms` as numbers. */
  startMs(): ArrayLike<number> {
    return (this.startCol ??= numbers(this.raw.startMs));
  }

  /** `end-ms` as numbers. */
  endMs(): ArrayLike<number> {
    return (this.endCol ??= numbers(this.raw.endMs));
  }

  /** `rows` as numbers. */
  rows(): ArrayLike<number> {
    return (this.rowsCol ??= numbers(this.raw.rows));
  }

  /** `bytes` as numbers. */
  bytes(): ArrayLike<number> {
    return (this.bytesCol ??= numbers(this.raw.bytes));
  }

  /** The values of label `key`, an empty list when no segment of the batch has that label. */
  column(key: string): ArrayLike<number> {
    if (key === this.lastKey) {
      return this.lastColumn;
    }
    let columns = this.columns;
    if (columns === undefined) {
      columns = new Map();
      const labels = this.raw.labels;
      for (let c = 0; c < labels.length; c++) {
        const col = labels[c]!;
        columns.set(this.table.texts[col.key]!, col.values);
      }
      this.columns = columns;
    }
    const col = columns.get(key) ?? NO_COLUMN;
    this.lastKey = key;
    this.lastColumn = col;
    return col;
  }

  /** The symbol id of label value `value`, -1 when it is no symbol of the pass (cached per batch). */
  valueId(value: string): number {
    if (value === this.lastValue) {
      return this.lastValueId;
    }
    const ids = (this.valueIds ??= new Map());
    let id = ids.get(value);
    if (id === undefined) {
      id = this.table.idOf(value);
      ids.set(value, id);
    }
    this.lastValue = value;
    this.lastValueId = id;
    return id;
  }

  /** Fails the call for a symbol id read from a label column that is not in the symbol table. */
  badSymbol(id: number): never {
    throw new PluginError(
      `malformed batch at index ${this.firstIndex}: a label refers to symbol ${id}, not in the symbol table (${this.table.size} symbols)`,
    );
  }

  /** The text of a symbol id read from a label column: `undefined` for 0 (absent); a bad id fails the call. */
  symbolText(id: number): string | undefined {
    if (id === 0) {
      return undefined;
    }
    const text = this.table.texts[id];
    if (text === undefined) {
      this.badSymbol(id);
    }
    return text;
  }

  /** The name of segment `i`, fetching the batch's names from the host on first use. */
  name(i: number): string {
    return (this.names ??= this.fetchNames())[i]!;
  }

  /** The names if they were fetched already (for error messages). */
  fetchedName(i: number): string | undefined {
    return this.names?.[i];
  }

  private fetchNames(): string[] {
    const { text, ends } = hostBatchNames();
    if (ends.length !== this.length) {
      throw new PluginError(
        `host returned ${ends.length} segment names for a batch of ${this.length} segments (index ${this.firstIndex})`,
      );
    }
    const names = splitAtUtf8Offsets(text, ends);
    if (!Array.isArray(names)) {
      throw new PluginError(
        `host returned a malformed name for segment ${this.firstIndex + names.bad} (bytes ${names.start}..${names.end} of ${names.length})`,
      );
    }
    return names;
  }
}

/**
 * One segment of the pass: a file, a time chunk of a table, an archived object. A view into the current batch,
 * valid during the `observe` or `decide` call that received it: keep its values (`seg.index`, `seg.endMs`,
 * `seg.labelSymbol(key)`), not the segment itself (the SDK moves the same view on to the next segment).
 */
export class Segment {
  /** @internal The batch. */
  _b: Batch;
  /** @internal The position in the batch (the glue moves `_i` and `index` together). */
  _i: number;
  /** Position of the segment in the pass: 0 for the oldest, `ctx.totals.segments - 1` for the newest. */
  readonly index: number;

  /** @internal */
  constructor(b: Batch, i: number) {
    this._b = b;
    this._i = i;
    this.index = b.firstIndex + i;
  }

  /** How many segments of the pass are newer than this one: 0 for the newest. Handy for "keep the last N". */
  get fromNewest(): number {
    return Math.max(0, this._b.total - this.index - 1);
  }

  /** Start of the segment's time range, in milliseconds since the Unix epoch (UTC). */
  get startMs(): number {
    const b = this._b;
    return (b.startCol ?? b.startMs())[this._i]!;
  }

  /** End of the segment's time range, in milliseconds since the Unix epoch (UTC). Ages are measured from it. */
  get endMs(): number {
    const b = this._b;
    return (b.endCol ?? b.endMs())[this._i]!;
  }

  /** Age in milliseconds: the pass's now minus the segment's end (negative for a segment from the future). */
  get ageMs(): number {
    const b = this._b;
    return b.nowMs - (b.endCol ?? b.endMs())[this._i]!;
  }

  /**
   * Age in whole days, rounded down, so `seg.ageDays() >= n` exactly when the segment is at least `n` days old;
   * negative for a segment from the future.
   */
  ageDays(): number {
    const b = this._b;
    return Math.floor((b.nowMs - (b.endCol ?? b.endMs())[this._i]!) / DAY_MS);
  }

  /** Size in bytes as stored in the current tier (the compressed size for a compressed segment). */
  get bytes(): number {
    const b = this._b;
    return (b.bytesCol ?? b.bytes())[this._i]!;
  }

  /** Number of rows (records, lines), `undefined` when the store does not know. */
  get rows(): number | undefined {
    const b = this._b;
    const r = (b.rowsCol ?? b.rows())[this._i]!;
    return r < 0 ? undefined : r;
  }

  /** Where the segment's bytes live now: `"hot"`, `"compressed"` or `"archived"`. */
  get tier(): Tier {
    return Tier.ALL[this._b.raw.tiers[this._i]!]!;
  }

  /** The tier's code (0 hot, 1 compressed, 2 archived). @internal */
  get tierCode(): number {
    return this._b.raw.tiers[this._i]!;
  }

  /**
   * The segment's name (a directory store: the path relative to the root, `/`-separated, without `.zst`). The
   * first use in a batch fetches the batch's names from the host in one call; plugins that never ask never pay.
   */
  get name(): string {
    return this._b.name(this._i);
  }

  /** The value of label `key`, `undefined` when the segment does not have it. */
  label(key: string): string | undefined {
    const b = this._b;
    const col = key === b.lastKey ? b.lastColumn : b.column(key);
    return col.length === 0 ? undefined : b.symbolText(col[this._i]!);
  }

  /** Whether label `key` is `value`: `seg.labelIs("level", "debug")`. Compares symbol ids, not text. */
  labelIs(key: string, value: string): boolean {
    const b = this._b;
    const col = key === b.lastKey ? b.lastColumn : b.column(key);
    return col.length !== 0 && col[this._i] === b.valueId(value);
  }

  /**
   * The value of label `key` as its symbol id, 0 when the segment does not have it. Ids are stable for the whole
   * pass (across batches, and across `observe` and `decide`): cheap to store and compare, e.g. to group by label.
   */
  labelSymbol(key: string): number {
    const b = this._b;
    const col = key === b.lastKey ? b.lastColumn : b.column(key);
    if (col.length === 0) {
      return 0;
    }
    const id = col[this._i]!;
    if (!(id < b.symbolEnd)) {
      b.badSymbol(id);
    }
    return id;
  }

  /** The text of a symbol id from {@link labelSymbol}, `undefined` for 0. */
  symbolText(id: number): string | undefined {
    return this._b.symbolText(id);
  }

  /** All labels of the segment, as `[key, value]` pairs. */
  labels(): [string, string][] {
    const out: [string, string][] = [];
    const b = this._b;
    const labels = b.raw.labels;
    for (let c = 0; c < labels.length; c++) {
      const col = labels[c]!;
      const value = b.symbolText(col.values[this._i]!);
      if (value !== undefined) {
        out.push([b.table.texts[col.key]!, value]);
      }
    }
    return out;
  }
}
