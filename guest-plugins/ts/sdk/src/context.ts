/**
 * The pass context handed to a plugin's `begin`: the pass's "now", the dataset, its totals and the parameters
 * configured for it, with typed parameter helpers whose errors name the parameter and the value.
 */

import { PluginError } from "./errors.ts";
import { DatasetTotals } from "./types.ts";
import { parseByteSize } from "./units.ts";

/** One configured parameter. Values are always text: the config's numbers and booleans arrive as strings. */
export interface Param {
  readonly key: string;
  readonly value: string;
}

/** Bounds for {@link Context.paramInt}. */
export interface IntLimits {
  /** Smallest accepted value (default: none). */
  min?: number;
  /** Largest accepted value (default: none). */
  max?: number;
}

/** Options of {@link Context.checkParams}. */
export interface CheckParamsOptions {
  /** Also accept every key that starts with this (or one of these) prefixes, e.g. `override.`. */
  prefix?: string | readonly string[];
  /** Also accept every key for which this returns true. */
  also?: (key: string) => boolean;
}

/** What a plugin learns about a pass before the first segment. */
export class Context {
  /** Unique identifier of the pass (also in the host's reports and logs). */
  readonly passId: string;
  /** Name of the dataset being decided. */
  readonly dataset: string;
  /**
   * The pass's "now", in milliseconds since the Unix epoch (UTC). Plugins have no clock: deciding against this
   * value keeps decisions reproducible (`retention plugin test --now`).
   */
  readonly nowMs: number;
  /** True when the host will only report the plan. Decide exactly as in a real pass. */
  readonly dryRun: boolean;
  /** All parameters, sorted by key. */
  readonly params: readonly Param[];
  /** The dataset's segment counts and sizes per tier at the start of the pass. */
  readonly totals: DatasetTotals;

  /** @internal Made by the SDK from the host's `pass-context`. */
  constructor(fields: {
    passId: string;
    dataset: string;
    nowMs: number;
    dryRun: boolean;
    params: readonly Param[];
    totals: DatasetTotals;
  }) {
    this.passId = fields.passId;
    this.dataset = fields.dataset;
    this.nowMs = fields.nowMs;
    this.dryRun = fields.dryRun;
    this.params = fields.params;
    this.totals = fields.totals;
  }

  /** The raw value of a parameter, `undefined` when it is not set. */
  param(key: string): string | undefined {
    for (const p of this.params) {
      if (p.key === key) {
        return p.value;
      }
    }
    return undefined;
  }

  /** A text parameter: its value, else `defaultValue`; without a default a missing parameter fails the pass. */
  paramStr(key: string, defaultValue?: string): string {
    const raw = this.param(key);
    if (raw !== undefined) {
      return raw;
    }
    return defaultValue ?? missing(key);
  }

  /**
   * An integer parameter (`7`, ` 12 `, `-3`), else `defaultValue`; without a default a missing parameter fails the
   * pass. A value that is set but is not an integer within `limits` fails the pass, naming the key and the value:
   * ``parameter `keep_daily` = "-1": expected an integer >= 0``.
   */
  paramInt(key: string, defaultValue?: number, limits: IntLimits = {}): number {
    const raw = this.param(key);
    if (raw === undefined) {
      return defaultValue ?? missing(key);
    }
    const { min, max } = limits;
    const expected =
      min !== undefined && max !== undefined
        ? `an integer from ${min} to ${max}`
        : min !== undefined
          ? `an integer >= ${min}`
          : max !== undefined
            ? `an integer <= ${max}`
            : "an integer";
    const text = raw.trim();
    const n = /^[+-]?[0-9]+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n)) {
      return bad(key, raw, expected);
    }
    if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
      return bad(key, raw, expected);
    }
    return n;
  }

  /**
   * A number of whole days (`7`), or `never`, which gives `Infinity` (an age no segment reaches, so
   * `seg.ageDays() >= days` is simply false); else `defaultValue` (a number or `Infinity`); without a default a
   * missing parameter fails the pass.
   */
  paramDays(key: string, defaultValue?: number): number {
    const raw = this.param(key);
    if (raw === undefined) {
      return defaultValue ?? missing(key);
    }
    const text = raw.trim();
    if (text.toLowerCase() === "never") {
      return Infinity;
    }
    const n = /^\+?[0-9]+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n)) {
      return bad(key, raw, "a whole number of days (0 or more) or `never`");
    }
    return n;
  }

  /** A boolean parameter, `true` or `false`, else `defaultValue`; without a default a missing one fails the pass. */
  paramBool(key: string, defaultValue?: boolean): boolean {
    const raw = this.param(key);
    if (raw === undefined) {
      return defaultValue ?? missing(key);
    }
    switch (raw.trim()) {
      case "true":
        return true;
      case "false":
        return false;
      default:
        return bad(key, raw, "`true` or `false`");
    }
  }

  /**
   * A size in bytes (`10GiB`, `500 MB`, `1048576`; single-letter units such as `G` are refused as ambiguous),
   * else `defaultValue`; without a default a missing parameter fails the pass.
   */
  paramBytes(key: string, defaultValue?: number): number {
    const raw = this.param(key);
    if (raw === undefined) {
      return defaultValue ?? missing(key);
    }
    try {
      return parseByteSize(raw);
    } catch (e) {
      return bad(key, raw, `a size: ${(e as Error).message}`);
    }
  }

  /**
   * Fails the pass when a parameter is not in `known` (nor accepted by `options`): a misspelt key otherwise
   * silently means "use the default", which for a retention rule can mean keeping or deleting the wrong data.
   * The message lists what is expected: ``unknown parameter `dayz` (expected: days)``.
   */
  checkParams(known: readonly string[], options: CheckParamsOptions = {}): void {
    const prefixes = options.prefix === undefined ? [] : typeof options.prefix === "string" ? [options.prefix] : options.prefix;
    for (const { key } of this.params) {
      if (known.includes(key) || prefixes.some((p) => key.startsWith(p)) || options.also?.(key) === true) {
        continue;
      }
      const expected = [...known, ...prefixes.map((p) => `${p}*`)];
      throw new PluginError(`unknown parameter \`${key}\` (expected: ${expected.length > 0 ? expected.join(", ") : "none"})`);
    }
  }
}

function missing(key: string): never {
  throw new PluginError(`missing required parameter \`${key}\``);
}

function bad(key: string, raw: string, expected: string): never {
  throw new PluginError(`parameter \`${key}\` = ${JSON.stringify(raw)}: expected ${expected}`);
}
