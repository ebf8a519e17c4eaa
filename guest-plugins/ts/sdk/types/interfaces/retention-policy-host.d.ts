declare module 'retention:policy/host@0.1.0' {
  /**
   * Writes a line to the host's log, tagged with the plugin and the pass. The host keeps a bounded number of lines
   * and bytes per pass; beyond that, lines are counted and dropped.
   */
  export function log(level: LogLevel, message: string): void;
  /**
   * Names of the segments in the batch that the current `observe` or `decide` call is handling (for a directory
   * store: the file's path relative to the dataset root, `/`-separated, without a `.zst` suffix). Fetched on
   * demand so that plugins which do not use names do not pay for them. Outside those calls it returns no names.
   */
  export function batchNames(): SegmentNames;
  /**
   * Severity of a log line.
   * # Variants
   * 
   * ## `"debug"`
   * 
   * Detail for plugin authors.
   * ## `"info"`
   * 
   * Normal operation.
   * ## `"warn"`
   * 
   * Something odd that did not stop the plugin.
   * ## `"error"`
   * 
   * Something failed.
   */
  export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
  /**
   * Names of the segments of one batch, concatenated: name `i` is the UTF-8 text from byte `ends[i - 1]`
   * (0 for the first) up to byte `ends[i]`.
   */
  export interface SegmentNames {
    /**
     * All names, one after another, without separators.
     */
    text: string,
    /**
     * Exclusive end offset of each name within `text`, in bytes.
     */
    ends: Uint32Array,
  }
}
