/**
 * The contract's value types, as the SDK hands them to plugins: tiers and actions as their WIT case names
 * (`"hot"`, `"drop"`, ...), totals as plain numbers, and the time constants.
 */

/** Milliseconds in a second, minute, hour and day. */
export const SECOND_MS = 1_000;
export const MINUTE_MS = 60 * SECOND_MS;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;

/** Where a segment's bytes live now. Tiers are ordered: hot, then compressed, then archived. */
export type Tier = "hot" | "compressed" | "archived";

/** The tiers by name, and helpers. */
export const Tier = {
  Hot: "hot",
  Compressed: "compressed",
  Archived: "archived",
  /** Every tier, in order (a tier's position is its code in `segment-batch.tiers`). */
  ALL: ["hot", "compressed", "archived"] as readonly Tier[],
  /** The tier of a code in `segment-batch.tiers`, `undefined` for an unknown code. */
  fromCode(code: number): Tier | undefined {
    return TIERS[code];
  },
  /** The code of a tier in `segment-batch.tiers`. */
  code(tier: Tier): number {
    return TIER_CODES[tier];
  },
  /** Whether the tier is on the dataset's own storage (hot or compressed) rather than in the archive. */
  isLocal(tier: Tier): boolean {
    return tier !== "archived";
  },
} as const;

/** What the plugin wants done with one segment. */
export type Action = "keep" | "compress" | "archive" | "drop";

/** The actions by name, and the contract's tier table. */
export const Action = {
  Keep: "keep",
  Compress: "compress",
  Archive: "archive",
  Drop: "drop",
  /** Every action, in order (an action's position is its code in `verdicts.actions`). */
  ALL: ["keep", "compress", "archive", "drop"] as readonly Action[],
  /** The code of an action in `verdicts.actions`, `undefined` for something that is not an action. */
  code(action: Action): number {
    return ACTION_CODES[action];
  },
  /** The action of a code in `verdicts.actions`, `undefined` for an unknown code. */
  fromCode(code: number): Action | undefined {
    return ACTIONS[code];
  },
  /**
   * The contract's tier table: `keep` and `drop` are allowed from any tier, `compress` only from hot, `archive`
   * from hot or compressed. A decision outside the table fails the pass.
   */
  allowedFrom(action: Action, tier: Tier): boolean {
    switch (action) {
      case "keep":
      case "drop":
        return true;
      case "compress":
        return tier === "hot";
      case "archive":
        return tier !== "archived";
    }
  },
} as const;

const TIERS: readonly Tier[] = Tier.ALL;
const ACTIONS: readonly Action[] = Action.ALL;
const TIER_CODES: Record<Tier, number> = { hot: 0, compressed: 1, archived: 2 };
const ACTION_CODES: Record<Action, number> = { keep: 0, compress: 1, archive: 2, drop: 3 };

/** Number and total size of a dataset's segments in one tier. */
export interface TierTotals {
  readonly segments: number;
  /** Sum of their sizes in bytes, as stored (the compressed size for compressed segments). */
  readonly bytes: number;
}

/** The dataset's totals at the start of the pass, per tier. */
export class DatasetTotals {
  constructor(
    readonly hot: TierTotals,
    readonly compressed: TierTotals,
    readonly archived: TierTotals,
  ) {}

  /** The totals of one tier. */
  tier(tier: Tier): TierTotals {
    return this[tier];
  }

  /** Number of segments in the pass (all tiers); the last segment's index is this minus one. */
  get segments(): number {
    return this.hot.segments + this.compressed.segments + this.archived.segments;
  }

  /** Bytes in all tiers, as stored. */
  get bytes(): number {
    return this.hot.bytes + this.compressed.bytes + this.archived.bytes;
  }

  /** Bytes on the dataset's own storage: hot plus compressed (what a disk budget usually means). */
  get localBytes(): number {
    return this.hot.bytes + this.compressed.bytes;
  }

  /** Segments on the dataset's own storage: hot plus compressed. */
  get localSegments(): number {
    return this.hot.segments + this.compressed.segments;
  }
}
