/** A plugin's answer for one segment: an action and an optional human-readable reason. */

import { Action } from "./types.ts";

/**
 * What to do with one segment, and why. The reason is shown in plans, reports and the audit trail (the host cuts it
 * at 512 bytes); the SDK sends each distinct text once per batch, so returning the same text for many segments is
 * cheap.
 */
export class Decision {
  private static readonly KEEP: Decision = new Decision("keep", undefined);

  private constructor(
    readonly action: Action,
    /** The reason; `undefined` (or an empty text) for none. */
    readonly reason: string | undefined,
  ) {
    Object.freeze(this);
  }

  /** Any action, with an optional reason. */
  static of(action: Action, reason?: string): Decision {
    if (action === "keep" && (reason === undefined || reason === "")) {
      return Decision.KEEP;
    }
    return new Decision(action, reason);
  }

  /** Leave the segment as it is (a reason is optional). */
  static keep(reason?: string): Decision {
    return reason === undefined || reason === "" ? Decision.KEEP : new Decision("keep", reason);
  }

  /** Compress a hot segment in place. */
  static compress(reason?: string): Decision {
    return new Decision("compress", reason);
  }

  /** Move a hot or compressed segment to the archive. */
  static archive(reason?: string): Decision {
    return new Decision("archive", reason);
  }

  /** Remove the segment from whatever tier it is in. */
  static drop(reason?: string): Decision {
    return new Decision("drop", reason);
  }

  /** The same action with this reason instead. */
  because(reason: string | undefined): Decision {
    return Decision.of(this.action, reason);
  }
}
