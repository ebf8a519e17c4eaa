/** A plugin's answer for one segment: an action and an optional human-readable reason. */

import { Action } from "./types.ts";

/** The code of an action of the contract in `verdicts.actions`, -1 for anything else. @internal */
export function codeOf(action: unknown): number {
  return action === "keep" ? 0 : action === "compress" ? 1 : action === "archive" ? 2 : action === "drop" ? 3 : -1;
}

/**
 * What to do with one segment, and why. The reason is shown in plans, reports and the audit trail (the host cuts it
 * at 512 bytes); the SDK sends each distinct text once per batch, so returning the same text for many segments is
 * cheap. Decisions are immutable: the factories may return the same object for the same action and reason.
 */
export class Decision {
  private static readonly KEEP: Decision = new Decision("keep", undefined);
  /** Per action code, the decision made last (most plugins give one reason to many segments in a row). */
  private static readonly recent: (Decision | undefined)[] = [undefined, undefined, undefined, undefined];

  private constructor(
    readonly action: Action,
    /** The reason; `undefined` (or an empty text) for none. */
    readonly reason: string | undefined,
  ) {
    Object.freeze(this);
  }

  /** The decision for an action (of the contract) and a reason, reused when it was the last one made. */
  private static make(action: Action, reason: string | undefined): Decision {
    const code = codeOf(action);
    if (code < 0) {
      return new Decision(action, reason);
    }
    const last = Decision.recent[code];
    if (last !== undefined && last.reason === reason) {
      return last;
    }
    const d = new Decision(action, reason);
    Decision.recent[code] = d;
    return d;
  }

  /** Any action, with an optional reason. */
  static of(action: Action, reason?: string): Decision {
    if (action === "keep" && (reason === undefined || reason === "")) {
      return Decision.KEEP;
    }
    return Decision.make(action, reason);
  }

  /** Leave the segment as it is (a reason is optional). */
  static keep(reason?: string): Decision {
    return reason === undefined || reason === "" ? Decision.KEEP : Decision.make("keep", reason);
  }

  /** Compress a hot segment in place. */
  static compress(reason?: string): Decision {
    return Decision.make("compress", reason);
  }

  /** Move a hot or compressed segment to the archive. */
  static archive(reason?: string): Decision {
    return Decision.make("archive", reason);
  }

  /** Remove the segment from whatever tier it is in. */
  static drop(reason?: string): Decision {
    return Decision.make("drop", reason);
  }

  /** The same action with this reason instead. */
  because(reason: string | undefined): Decision {
    return Decision.of(this.action, reason);
  }
}
