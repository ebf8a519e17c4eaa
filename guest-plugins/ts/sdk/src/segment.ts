/**
 * The per-segment view over a batch's columns. The host sends a batch as columns (one list per field) plus label
 * columns of symbol ids; a {@link Segment} is an index into them. Numbers are converted when read: StarlingMonkey
 * lifts `s64`/`u64` as BigInt (`BigInt64Array`, `BigUint64Array`), QuickJS as plain numbers, and `Number()` takes
 * both. Label keys are resolved to their column once per batch, label values through the pass's symbol table, and
 * names are fetched from the host once per batch, on first use.
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

/** One batch, its columns checked to be consistent; segments index into it. @internal */
export class Batch {
  readonly firstIndex: number;
  readonly length: number;
  private columns: Map<string, ArrayLike<number>> | undefined;
  private valueIds: Map<string, number> | undefined;
  private names: string[] | undefined;

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
    for (let i = 0; i < n; i++) {
      const t = tiers[i]!;
      if (!(t === 0 || t === 1 || t === 2)) {
        throw new PluginError(
          `malformed batch at index ${this.firstIndex}: tier code ${t} of segment ${this.firstIndex + i} is not a tier`,
        );
      }
    }
  }

  /** The values of label `key`, an empty list when no segment of the batch has that label. */
  column(key: string): ArrayLike<number> {
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
    return columns.get(key) ?? NO_COLUMN;
  }

  /** The symbol id of label value `value`, -1 when it is no symbol of the pass (cached per batch). */
  valueId(value: string): number {
    const ids = (this.valueIds ??= new Map());
    let id = ids.get(value);
    if (id === undefined) {
      id = this.table.idOf(value);
      ids.set(value, id);
    }
    return id;
  }

  /** The text of a symbol id read from a label column: `undefined` for 0 (absent); a bad id fails the call. */
  symbolText(id: number): string | undefined {
    if (id === 0) {
      return undefined;
    }
    const text = this.table.texts[id];
    if (text === undefined) {
      throw new PluginError(
        `malformed batch at index ${this.firstIndex}: a label refers to symbol ${id}, not in the symbol table (${this.table.size} symbols)`,
      );
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
 * `seg.labelSymbol(key)`), not the segment itself.
 */
export class Segment {
  /** @internal */
  constructor(
    private readonly b: Batch,
    private readonly i: number,
  ) {}

  /** Position of the segment in the pass: 0 for the oldest, `ctx.totals.segments - 1` for the newest. */
  get index(): number {
    return this.b.firstIndex + this.i;
  }

  /** How many segments of the pass are newer than this one: 0 for the newest. Handy for "keep the last N". */
  get fromNewest(): number {
    return Math.max(0, this.b.total - this.index - 1);
  }

  /** Start of the segment's time range, in milliseconds since the Unix epoch (UTC). */
  get startMs(): number {
    return Number(this.b.raw.startMs[this.i]);
  }

  /** End of the segment's time range, in milliseconds since the Unix epoch (UTC). Ages are measured from it. */
  get endMs(): number {
    return Number(this.b.raw.endMs[this.i]);
  }

  /** Age in milliseconds: the pass's now minus the segment's end (negative for a segment from the future). */
  get ageMs(): number {
    return this.b.nowMs - Number(this.b.raw.endMs[this.i]);
  }

  /**
   * Age in whole days, rounded down, so `seg.ageDays() >= n` exactly when the segment is at least `n` days old;
   * negative for a segment from the future.
   */
  ageDays(): number {
    return Math.floor(this.ageMs / DAY_MS);
  }

  /** Size in bytes as stored in the current tier (the compressed size for a compressed segment). */
  get bytes(): number {
    return Number(this.b.raw.bytes[this.i]);
  }

  /** Number of rows (records, lines), `undefined` when the store does not know. */
  get rows(): number | undefined {
    const r = Number(this.b.raw.rows[this.i]);
    return r < 0 ? undefined : r;
  }

  /** Where the segment's bytes live now: `"hot"`, `"compressed"` or `"archived"`. */
  get tier(): Tier {
    return Tier.ALL[this.b.raw.tiers[this.i]!]!;
  }

  /** The tier's code (0 hot, 1 compressed, 2 archived). @internal */
  get tierCode(): number {
    return this.b.raw.tiers[this.i]!;
  }

  /**
   * The segment's name (a directory store: the path relative to the root, `/`-separated, without `.zst`). The
   * first use in a batch fetches the batch's names from the host in one call; plugins that never ask never pay.
   */
  get name(): string {
    return this.b.name(this.i);
  }

  /** The value of label `key`, `undefined` when the segment does not have it. */
  label(key: string): string | undefined {
    const col = this.b.column(key);
    return col.length === 0 ? undefined : this.b.symbolText(col[this.i]!);
  }

  /** Whether label `key` is `value`: `seg.labelIs("level", "debug")`. Compares symbol ids, not text. */
  labelIs(key: string, value: string): boolean {
    const col = this.b.column(key);
    return col.length !== 0 && col[this.i] === this.b.valueId(value);
  }

  /**
   * The value of label `key` as its symbol id, 0 when the segment does not have it. Ids are stable for the whole
   * pass (across batches, and across `observe` and `decide`): cheap to store and compare, e.g. to group by label.
   */
  labelSymbol(key: string): number {
    const col = this.b.column(key);
    if (col.length === 0) {
      return 0;
    }
    const id = col[this.i]!;
    this.b.symbolText(id); // checks the id
    return id;
  }

  /** The text of a symbol id from {@link labelSymbol}, `undefined` for 0. */
  symbolText(id: number): string | undefined {
    return this.b.symbolText(id);
  }

  /** All labels of the segment, as `[key, value]` pairs. */
  labels(): [string, string][] {
    const out: [string, string][] = [];
    const labels = this.b.raw.labels;
    for (let c = 0; c < labels.length; c++) {
      const col = labels[c]!;
      const value = this.b.symbolText(col.values[this.i]!);
      if (value !== undefined) {
        out.push([this.b.table.texts[col.key]!, value]);
      }
    }
    return out;
  }
}
