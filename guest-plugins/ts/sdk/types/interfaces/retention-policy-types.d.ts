declare module 'retention:policy/types@0.1.0' {
  /**
   * Where a segment's bytes live now. Tiers are ordered: hot, then compressed, then archived. In batches a tier
   * travels as the index of its case (`segment-batch.tiers`).
   * # Variants
   * 
   * ## `"hot"`
   * 
   * The plain data, as written by its producer (for a directory store: the file itself).
   * ## `"compressed"`
   * 
   * Compressed beside the hot location (for a directory store: `<file>.zst`).
   * ## `"archived"`
   * 
   * Moved to the dataset's archive destination (an object store).
   */
  export type Tier = 'hot' | 'compressed' | 'archived';
  /**
   * What the plugin wants done with one segment. In verdicts an action travels as the index of its case
   * (`verdicts.actions`).
   * 
   * Allowed per tier: `keep` and `drop` always; `compress` only from `hot`; `archive` from `hot` or `compressed`.
   * Anything else is invalid output and fails the whole plan of the pass (nothing is applied).
   * # Variants
   * 
   * ## `"keep"`
   * 
   * Leave the segment as it is.
   * ## `"compress"`
   * 
   * Compress a hot segment in place.
   * ## `"archive"`
   * 
   * Move a hot or compressed segment to the archive.
   * ## `"drop"`
   * 
   * Remove the segment from whatever tier it is in.
   */
  export type Action = 'keep' | 'compress' | 'archive' | 'drop';
  /**
   * Describes a plugin. Shown by `retention plugin check` and recorded with every pass.
   */
  export interface PluginInfo {
    /**
     * Short identifier, e.g. `age-tiering`.
     */
    name: string,
    /**
     * The plugin's own version, e.g. `1.2.0` (semantic versioning recommended).
     */
    version: string,
    /**
     * One sentence saying what the plugin decides.
     */
    description: string,
  }
  /**
   * Number and total size of the segments of a dataset in one tier.
   */
  export interface TierTotals {
    /**
     * Number of segments.
     */
    segments: bigint,
    /**
     * Sum of their sizes in bytes (as stored: compressed size for compressed segments).
     */
    bytes: bigint,
  }
  /**
   * The dataset's totals at the start of the pass, per tier.
   */
  export interface DatasetTotals {
    /**
     * Segments in the hot tier.
     */
    hot: TierTotals,
    /**
     * Segments in the compressed tier.
     */
    compressed: TierTotals,
    /**
     * Segments in the archived tier.
     */
    archived: TierTotals,
  }
  /**
   * One parameter from the host's configuration of the dataset (`params` in the config file). One plugin binary
   * serves many datasets with different thresholds through these.
   */
  export interface Param {
    /**
     * Parameter name, e.g. `drop_after_days`.
     */
    key: string,
    /**
     * Its value, always a string: the plugin parses it and fails `begin` with a clear message if it is bad.
     */
    value: string,
  }
  /**
   * Everything the plugin learns about a pass before the first segment.
   */
  export interface PassContext {
    /**
     * Unique identifier of this pass (also in the host's reports and logs).
     */
    passId: string,
    /**
     * Name of the dataset being decided.
     */
    dataset: string,
    /**
     * The pass's notion of "now", in milliseconds since the Unix epoch (UTC). Use it instead of a clock, so
     * that a plugin's decisions are reproducible (`retention plugin test --now`).
     */
    nowMs: bigint,
    /**
     * True when the host will only report the plan. Plugins should decide exactly as in a real pass.
     */
    dryRun: boolean,
    /**
     * Parameters from the host's configuration of the dataset, sorted by key.
     */
    params: Array<Param>,
    /**
     * Totals of the dataset before the first batch; with these a plugin can keep the last N segments or keep the
     * dataset under a size budget while segments stream past oldest first.
     */
    totals: DatasetTotals,
  }
  /**
   * The plugin's answer to `begin`.
   */
  export interface PassOptions {
    /**
     * When true, the host first streams every segment of the pass through `observe`, then the same segments
     * again, in the same batches and order, through `decide`. Use it for rules that need to see the newest
     * segments before deciding on older ones (keep the newest per day, per label, ...). It doubles the
     * boundary cost, so leave it false when a single oldest-first stream is enough.
     */
    observeFirst: boolean,
  }
  /**
   * The value of one label key for every segment of a batch.
   */
  export interface LabelColumn {
    /**
     * Symbol id of the label key (see `segment-batch.symbols`).
     */
    key: number,
    /**
     * Per segment of the batch, the symbol id of this label's value, or 0 when the segment has no such label.
     */
    values: Uint32Array,
  }
  /**
   * A batch of segments, column by column: element `i` of every list describes segment `i` of the batch. Segments
   * of a pass arrive oldest first (by end time, then by name), in batches of at most the host's configured size.
   * One instance sees all batches of one pass, and a fresh instance serves every pass.
   */
  export interface SegmentBatch {
    /**
     * Index within the pass of the batch's first segment (0 for the first batch). Segment `i` of this batch is
     * segment `first-index + i` of the pass, whose last index is `totals` segments minus one.
     */
    firstIndex: bigint,
    /**
     * Strings to append to the pass's symbol table. The table starts empty at `begin`; the first symbol ever sent
     * has id 1, the next id 2, and so on across batches (and across `observe` and `decide`). Id 0 means
     * "absent". A symbol is sent once per pass, never again; the host may send it before any segment uses it.
     */
    symbols: Array<string>,
    /**
     * Start of each segment's time range, in milliseconds since the Unix epoch. Equal to `end-ms` when the store
     * knows a single time (e.g. a file's modification time).
     */
    startMs: BigInt64Array,
    /**
     * End of each segment's time range, in milliseconds since the Unix epoch. The age of a segment is
     * `now-ms - end-ms`.
     */
    endMs: BigInt64Array,
    /**
     * Number of rows (records, lines) in each segment, or -1 when the store does not know.
     */
    rows: BigInt64Array,
    /**
     * Size of each segment in bytes, as stored in its current tier.
     */
    bytes: BigUint64Array,
    /**
     * Current tier of each segment, as the index of its `tier` case: 0 hot, 1 compressed, 2 archived. (Bytes
     * rather than `list<tier>` so that the column crosses the boundary as one copy.)
     */
    tiers: Uint8Array,
    /**
     * One column per label key present in the batch. Segments of a directory store get their labels from the
     * named captures of the dataset's `labels` regex over the file's relative path.
     */
    labels: Array<LabelColumn>,
  }
  /**
   * The plugin's decisions for one batch.
   */
  export interface Verdicts {
    /**
     * One action per segment of the batch, in batch order, as the index of its `action` case: 0 keep,
     * 1 compress, 2 archive, 3 drop. A different length, or another value, is invalid output. (Bytes rather than
     * `list<action>` so that the column crosses the boundary as one copy.)
     */
    actions: Uint8Array,
    /**
     * Either empty (no reasons), or one entry per segment: 0 for no reason, `n` for `reason-texts[n - 1]`.
     */
    reasons: Uint32Array,
    /**
     * Distinct reason texts, referenced from `reasons`. The host shows them in plans, reports and the audit
     * trail, truncated to 512 bytes; at most one text per segment of the batch.
     */
    reasonTexts: Array<string>,
  }
}
