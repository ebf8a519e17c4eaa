// Small plugins the SDK's tests run.
import { type Context, DAY_MS, Decision, definePlugin, fail, log, type Segment } from "../src/index.ts";

/** Drops old debug logs; logs one line in begin. */
export const dropDebug = definePlugin({
  info: { name: "drop-debug", version: "0.1.0", description: "Drops debug logs older than `days` days." },
  begin(ctx: Context) {
    ctx.checkParams(["days"]);
    const days = ctx.paramDays("days", 7);
    log.info(`${ctx.totals.segments} segments in ${ctx.dataset}`);
    return { days };
  },
  decide(seg, { days }) {
    return seg.ageDays() >= days && seg.labelIs("level", "debug") ? Decision.drop(`${seg.name} is old debug`) : Decision.keep();
  },
});

/** Compresses everything, whatever the tier: the SDK must refuse it for compressed and archived segments. */
export const compressAll = definePlugin({
  info: { name: "compress-all", version: "1", description: "test" },
  begin: () => null,
  decide: () => Decision.compress("squeeze"),
});

/** Describes everything it sees about a segment in its reason, and the context in a log line. */
export const echo = definePlugin({
  info: { name: "echo", version: "1", description: "test" },
  begin(ctx) {
    const t = ctx.totals;
    const params = ctx.params.map((p) => `${p.key}=${p.value}`).join(" ");
    log.info(
      `pass ${ctx.passId} dataset ${ctx.dataset} now ${ctx.nowMs} dry ${ctx.dryRun} params [${params}] ` +
        `hot ${t.hot.segments}/${t.hot.bytes} compressed ${t.compressed.segments}/${t.compressed.bytes} ` +
        `archived ${t.archived.segments}/${t.archived.bytes}`,
    );
    return null;
  },
  decide(seg: Segment) {
    const labels = seg.labels().map(([k, v]) => `${k}=${v}`).join(" ");
    const reason =
      `${seg.name} #${seg.index} (newest-${seg.fromNewest}) ${seg.startMs}..${seg.endMs} age ${seg.ageDays()}d ` +
      `${seg.bytes}B rows ${seg.rows ?? "-"} ${seg.tier} [${labels}] zone:${seg.label("zone") ?? "-"} a:${seg.labelIs("zone", "a")}`;
    return seg.tier === "archived" ? Decision.keep(reason) : Decision.archive(reason);
  },
});

/** Observes first, remembering each segment's group symbol, then checks them against what decide sees. */
export const observer = definePlugin({
  info: { name: "observer", version: "1", description: "test" },
  begin: () => ({ seen: [] as string[], symbols: new Map<number, number>(), decided: 0 }),
  observe(seg, s) {
    s.seen.push(seg.name);
    s.symbols.set(seg.index, seg.labelSymbol("zone"));
  },
  decide(seg, s) {
    s.decided++;
    const same = s.symbols.get(seg.index) === seg.labelSymbol("zone");
    const zone = seg.symbolText(s.symbols.get(seg.index) ?? 0) ?? "-";
    return Decision.keep(`decision ${s.decided} after ${s.seen.length} observed [${s.seen.join(" ")}] zone ${zone} same ${same}`);
  },
});

/** Fails in many ways, chosen by parameters. */
export const failing = definePlugin({
  info: { name: "failing", version: "1", description: "test" },
  begin(ctx) {
    log.warn("about to check");
    const how = ctx.param("throw");
    switch (how) {
      case "fail":
        return fail(`refused: ${ctx.paramStr("why", "no reason")}`);
      case "string":
        throw "a thrown string";
      case "type-error": {
        const nothing = null as unknown as { x: number };
        log.info(`x is ${nothing.x}`);
        break;
      }
      case "number":
        throw 42;
      case "object":
        throw { code: 7 };
    }
    return { failAt: ctx.paramInt("fail_at", -1), badAt: ctx.paramInt("bad_at", -1) };
  },
  decide(seg, s) {
    if (seg.index === s.failAt) {
      throw new RangeError(`cannot decide ${seg.name}`);
    }
    if (seg.index === s.badAt) {
      return undefined as unknown as Decision;
    }
    return Decision.keep();
  },
});

/** Logs a lot, returns long reasons, fails with a long message. */
export const loud = definePlugin({
  info: { name: "loud", version: "1", description: "test" },
  begin(ctx) {
    if (ctx.param("refuse") !== undefined) {
      fail("x".repeat(5000));
    }
    for (let i = 0; i < 1005; i++) {
      log.debug(`line ${i}`);
    }
    return null;
  },
  decide: () => Decision.keep("€".repeat(1000)),
});

/** A StarlingMonkey-shaped pass context with `hot` hot segments, now at day 10. */
export function context(hot: number, params: { key: string; value: string }[] = []) {
  const z = { segments: 0n, bytes: 0n };
  return {
    passId: "p",
    dataset: "d",
    nowMs: 10n * BigInt(DAY_MS),
    dryRun: true,
    params,
    totals: { hot: { segments: BigInt(hot), bytes: 0n }, compressed: z, archived: z },
  };
}

/** A StarlingMonkey-shaped batch of `n` hot segments ending at day 1, without labels. */
export function batch(first: number, n: number) {
  return {
    firstIndex: BigInt(first),
    symbols: [] as string[],
    startMs: new BigInt64Array(n).fill(BigInt(DAY_MS)),
    endMs: new BigInt64Array(n).fill(BigInt(DAY_MS)),
    rows: new BigInt64Array(n).fill(-1n),
    bytes: new BigUint64Array(n),
    tiers: new Uint8Array(n),
    labels: [] as { key: number; values: Uint32Array }[],
  };
}
