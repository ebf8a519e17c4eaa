/**
 * Defining a plugin, and the glue that exports it as the component's `policy` interface: it keeps the pass's state
 * between calls, checks that the host calls in the contract's order, keeps the symbol table, builds the verdicts
 * column by column, enforces the tier table, and turns anything thrown into the plugin's error text.
 */

import type * as PolicyExports from "retention:policy/policy@0.1.0";
import { Context, type Param } from "./context.ts";
import { codeOf, Decision } from "./decision.ts";
import { errorText, PluginError } from "./errors.ts";
import { Batch, type RawBatch, Segment, SymbolTable } from "./segment.ts";
import { Action, DatasetTotals, Tier, type TierTotals } from "./types.ts";

/** Describes a plugin: shown by `retention plugin check` and recorded with every pass. */
export interface PluginInfo {
  /** Short identifier, e.g. `age-tiering` (1 to 128 printable characters). */
  readonly name: string;
  /** The plugin's own version, e.g. `1.2.0` (1 to 128 printable characters). */
  readonly version: string;
  /** One sentence saying what the plugin decides. */
  readonly description: string;
}

/**
 * A retention policy. `begin` makes the pass's state from the context; `observe` (optional) and `decide` see every
 * segment of the pass, oldest first (by end time, then name), with that state. The host makes a fresh instance for
 * every pass, so nothing survives from one pass to the next.
 *
 * Throwing fails the pass (nothing is applied): `fail(message)` or a thrown string for expected failures (shown as
 * they are), any other error shows its name, message and where it was thrown.
 */
export interface PluginSpec<S> {
  readonly info: PluginInfo;
  /** Starts a pass: read and validate parameters, return what `observe` and `decide` need. */
  begin(ctx: Context): S;
  /**
   * Whether every pass first streams all segments through `observe` before deciding (default: whether `observe` is
   * defined). It doubles the boundary cost: use it only when a decision depends on newer segments. A function
   * decides per pass, from the state `begin` made.
   */
  readonly observeFirst?: boolean | ((state: S) => boolean);
  /** Sees every segment, oldest first, before the first decision (only when observing first). */
  observe?(seg: Segment, state: S): void;
  /**
   * Decides the fate of one segment. The action must be allowed from the segment's tier
   * ({@link Action.allowedFrom}); otherwise the pass fails with a message naming the segment.
   */
  decide(seg: Segment, state: S): Decision;
}

/** A plugin made by {@link definePlugin}. */
export type Plugin<S = unknown> = Readonly<PluginSpec<S>>;

/** Defines a plugin; the state's type is inferred from what `begin` returns. */
export function definePlugin<S>(spec: PluginSpec<S>): Plugin<S> {
  if (typeof spec !== "object" || spec === null) {
    throw new TypeError("definePlugin expects an object with info, begin and decide");
  }
  for (const f of ["name", "version", "description"] as const) {
    if (typeof spec.info?.[f] !== "string") {
      throw new TypeError(`definePlugin: info.${f} must be a string`);
    }
  }
  if (typeof spec.begin !== "function" || typeof spec.decide !== "function") {
    throw new TypeError("definePlugin: begin and decide must be functions");
  }
  return Object.freeze({ ...spec });
}

/** The component's `policy` export, as the generated bindings describe it. */
export type Policy = typeof PolicyExports;

/**
 * The component's `policy` export for a plugin: `export const policy = exportPlugin(myPlugin);` in the module the
 * build bundles. One instance of the component serves one pass; `retention-sdk/testing` makes a fresh one per run.
 */
export function exportPlugin<S>(plugin: Plugin<S>): Policy {
  return makePolicy(plugin);
}

/** What the host passes to `begin`, as either engine lifts it. @internal */
export interface RawContext {
  passId: string;
  dataset: string;
  nowMs: number | bigint;
  dryRun: boolean;
  params: ArrayLike<Param>;
  totals: Record<Tier, { segments: number | bigint; bytes: number | bigint }>;
}

/** What `decide` returns. @internal */
export interface RawVerdicts {
  actions: Uint8Array;
  reasons: Uint32Array;
  reasonTexts: string[];
}

/** The export glue, typed for either engine's values. @internal */
export interface RawPolicy {
  info(): PluginInfo;
  begin(context: RawContext): { observeFirst: boolean };
  observe(batch: RawBatch): void;
  decide(batch: RawBatch): RawVerdicts;
}

/** A value no plugin returns: what the last decision is before the first. */
const NOT_YET: unknown = Object.freeze({});

/** Bit `tier * 4 + action` is set when the contract allows that action from that tier. */
const ALLOWED: number = (() => {
  let bits = 0;
  for (const a of Action.ALL) {
    for (const t of Tier.ALL) {
      if (Action.allowedFrom(a, t)) {
        bits |= 1 << (Tier.code(t) * 4 + Action.code(a));
      }
    }
  }
  return bits;
})();

interface PassState<S> {
  state: S;
  nowMs: number;
  total: number;
  observeFirst: boolean;
  deciding: boolean;
  /** Index of the segment the next batch must start with. */
  nextIndex: number;
  symbols: SymbolTable;
}

/** The glue for one instance (one pass). @internal */
export function makePolicy<S>(plugin: Plugin<S>): RawPolicy {
  let pass: PassState<S> | undefined;

  function open(batch: RawBatch, call: string, p: PassState<S>): Batch {
    // Symbols first: a batch's own symbols may be what its label columns refer to.
    p.symbols.append(batch.symbols);
    const first = Number(batch.firstIndex);
    if (first !== p.nextIndex) {
      throw new PluginError(
        `${call} received a batch starting at segment ${first} but expected segment ${p.nextIndex} (batches must arrive in order)`,
      );
    }
    const b = new Batch(batch, p.symbols, p.nowMs, p.total);
    p.nextIndex += b.length;
    return b;
  }

  return {
    info(): PluginInfo {
      const { name, version, description } = plugin.info;
      return { name, version, description };
    },

    begin(context: RawContext): { observeFirst: boolean } {
      try {
        if (pass !== undefined) {
          throw new PluginError("begin was called twice on one instance (the host must use a fresh instance per pass)");
        }
        const totals = new DatasetTotals(tierTotals(context.totals.hot), tierTotals(context.totals.compressed), tierTotals(context.totals.archived));
        const params: Param[] = [];
        for (let i = 0; i < context.params.length; i++) {
          const p = context.params[i]!;
          params.push(Object.freeze({ key: p.key, value: p.value }));
        }
        const ctx = new Context({
          passId: context.passId,
          dataset: context.dataset,
          nowMs: Number(context.nowMs),
          dryRun: context.dryRun,
          params: Object.freeze(params),
          totals,
        });
        const state = plugin.begin(ctx);
        if (typeof (state as { then?: unknown } | null)?.then === "function") {
          throw new PluginError("begin returned a Promise: plugins are synchronous (make begin, observe and decide plain functions)");
        }
        const of = plugin.observeFirst;
        const observeFirst = of === undefined ? typeof plugin.observe === "function" : typeof of === "function" ? of(state) === true : of === true;
        if (observeFirst && typeof plugin.observe !== "function") {
          throw new PluginError("the plugin asks to observe first but has no observe function");
        }
        pass = {
          state,
          nowMs: ctx.nowMs,
          total: totals.segments,
          observeFirst,
          deciding: !observeFirst,
          nextIndex: 0,
          symbols: new SymbolTable(),
        };
        return { observeFirst };
      } catch (e) {
        throw errorText(e);
      }
    },

    observe(batch: RawBatch): void {
      try {
        const p = pass;
        if (p === undefined) {
          throw new PluginError("observe was called before begin");
        }
        if (!p.observeFirst) {
          throw new PluginError("observe was called although begin did not ask for observe-first");
        }
        if (p.deciding) {
          throw new PluginError("observe was called after decide (all observe calls must come first)");
        }
        const b = open(batch, "observe", p);
        const observe = plugin.observe!;
        const state = p.state;
        // One segment per batch, moved from segment to segment (the batch does not refer to it: no cycle for QuickJS's
        // reference counting to leave to its cycle collector).
        const seg = new Segment(b, 0);
        const first = b.firstIndex;
        for (let i = 0, n = b.length; i < n; i++) {
          seg._i = i;
          (seg as { index: number }).index = first + i;
          observe(seg, state);
        }
      } catch (e) {
        throw errorText(e);
      }
    },

    decide(batch: RawBatch): RawVerdicts {
      try {
        const p = pass;
        if (p === undefined) {
          throw new PluginError("decide was called before begin");
        }
        if (!p.deciding) {
          // The first decide ends the observe phase; indices start again at 0.
          p.deciding = true;
          p.nextIndex = 0;
        }
        const b = open(batch, "decide", p);
        const n = b.length;
        const actions = new Uint8Array(n);
        const reasons = new Uint32Array(n);
        const reasonTexts: string[] = [];
        const ids = new Map<string, number>();
        const decide = plugin.decide;
        const state = p.state;
        const tiers = b.raw.tiers;
        const seg = new Segment(b, 0);
        let anyReason = false;
        // The last decision seen, its code and its reason's id: plugins return the same decision many times in a row.
        let last: unknown = NOT_YET;
        let lastCode = 0;
        let lastId = 0;
        const first = b.firstIndex;
        for (let i = 0; i < n; i++) {
          seg._i = i;
          (seg as { index: number }).index = first + i;
          const d = decide(seg, state);
          if (d !== last) {
            const code = d instanceof Decision ? codeOf(d.action) : -1;
            if (code < 0) {
              throw new PluginError(notADecision(d, seg, b));
            }
            let id = 0;
            const r = d.reason;
            if (r !== undefined && r !== "") {
              const known = ids.get(r);
              if (known === undefined) {
                reasonTexts.push(String(r));
                id = reasonTexts.length;
                ids.set(r, id);
              } else {
                id = known;
              }
            }
            last = d;
            lastCode = code;
            lastId = id;
          }
          if (((ALLOWED >> (tiers[i]! * 4 + lastCode)) & 1) === 0) {
            throw new PluginError(forbidden(d, seg, b));
          }
          actions[i] = lastCode;
          if (lastId !== 0) {
            reasons[i] = lastId;
            anyReason = true;
          }
        }
        return { actions, reasons: anyReason ? reasons : new Uint32Array(0), reasonTexts };
      } catch (e) {
        throw errorText(e);
      }
    },
  };
}

function tierTotals(t: { segments: number | bigint; bytes: number | bigint }): TierTotals {
  return Object.freeze({ segments: Number(t.segments), bytes: Number(t.bytes) });
}

/** The segment's name for an error message, fetched if need be (a failure to fetch it is not the error to report). */
function nameOf(seg: Segment, b: Batch, i: number): string {
  try {
    return ` (${b.fetchedName(i) ?? seg.name})`;
  } catch {
    return "";
  }
}

function forbidden(d: Decision, seg: Segment, b: Batch): string {
  const why = d.reason !== undefined && d.reason !== "" ? `, reason ${JSON.stringify(d.reason)}` : "";
  return (
    `plugin decided \`${d.action}\` for segment ${seg.index}${nameOf(seg, b, seg.index - b.firstIndex)} in tier \`${seg.tier}\`${why}, ` +
    "which the contract forbids (compress only from hot, archive only from hot or compressed)"
  );
}

function notADecision(d: unknown, seg: Segment, b: Batch): string {
  const what = d === undefined ? "undefined" : d === null ? "null" : typeof d === "object" ? "an object that is not a Decision" : `a ${typeof d}`;
  return (
    `decide returned ${what} for segment ${seg.index}${nameOf(seg, b, seg.index - b.firstIndex)}; ` +
    "return Decision.keep(), Decision.compress(reason), Decision.archive(reason) or Decision.drop(reason)"
  );
}
