/**
 * The TypeScript SDK for retention decision plugins: a per-segment API over the contract's column layout
 * (`wit/retention.wit`, world `retention:policy/plugin@0.1.0`), for components built with StarlingMonkey
 * (componentize-js) or QuickJS (componentize-qjs).
 *
 * ```ts
 * import { definePlugin, exportPlugin, Decision } from "retention-sdk";
 *
 * const dropDebug = definePlugin({
 *   info: { name: "drop-debug", version: "0.1.0", description: "Drops debug logs older than `days` days." },
 *   begin(ctx) {
 *     ctx.checkParams(["days"]);
 *     return { days: ctx.paramDays("days", 7) };
 *   },
 *   decide(seg, { days }) {
 *     return seg.ageDays() >= days && seg.labelIs("level", "debug") ? Decision.drop("old debug log") : Decision.keep();
 *   },
 * });
 * export default dropDebug;
 * export const policy = exportPlugin(dropDebug);
 * ```
 */

export { Context, type CheckParamsOptions, type IntLimits, type Param } from "./context.ts";
export { Decision } from "./decision.ts";
export { fail, PluginError, errorText } from "./errors.ts";
export { log, type LogLevel } from "./host.ts";
export { definePlugin, exportPlugin, type Plugin, type PluginInfo, type PluginSpec, type Policy } from "./plugin.ts";
export { Segment } from "./segment.ts";
export { IsoWeek, UtcDate } from "./time.ts";
export { Action, DatasetTotals, DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, Tier, type TierTotals } from "./types.ts";
export { formatByteSize, parseByteSize } from "./units.ts";
export { truncateUtf8, utf8Length } from "./utf8.ts";
