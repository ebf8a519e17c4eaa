"""Small plugins the SDK's tests run."""

from retention_sdk import Decision, Info, Plugin, PluginError, Tier, log


class DropDebug(Plugin):
    """Drops debug segments at least `days` old, with the name in the reason."""

    INFO = Info("drop-debug", "0.1.0", "Drops old debug logs.")

    def __init__(self, ctx):
        ctx.check_params(["days"])
        self.days = ctx.param_days("days", default=7)
        log.info("%d segments in %s", ctx.totals.segments, ctx.dataset)

    def decide(self, seg):
        if seg.age_days() >= self.days and seg.label_is("level", "debug"):
            return Decision.drop("%s is old debug" % seg.name)
        return Decision.keep()


class Echo(Plugin):
    """Archives what it may, with everything the SDK tells about the segment as the reason."""

    INFO = Info("echo", "1", "test")

    def __init__(self, ctx):
        params = " ".join("%s=%s" % kv for kv in ctx.params.items())
        t = ctx.totals
        log.info(
            "pass %s dataset %s now %d dry %s params [%s] hot %d/%d compressed %d/%d archived %d/%d",
            ctx.pass_id,
            ctx.dataset,
            ctx.now_ms,
            str(ctx.dry_run).lower(),
            params,
            t.hot.segments,
            t.hot.bytes,
            t.compressed.segments,
            t.compressed.bytes,
            t.archived.segments,
            t.archived.bytes,
        )

    def decide(self, seg):
        labels = " ".join("%s=%s" % kv for kv in seg.labels())
        text = "%s #%d (newest-%d) %d..%d age %dd %dB rows %s %s [%s] zone:%s a:%s" % (
            seg.name,
            seg.index,
            seg.from_newest,
            seg.start_ms,
            seg.end_ms,
            seg.age_days(),
            seg.bytes,
            seg.rows,
            seg.tier,
            labels,
            seg.label("zone"),
            seg.label_is("zone", "a"),
        )
        if seg.tier == Tier.ARCHIVED:
            return Decision.keep(text)
        return Decision.archive(text)


class CompressAll(Plugin):
    INFO = Info("compress-all", "1", "test")

    def decide(self, seg):
        return Decision.compress("squeeze")


class Observer(Plugin):
    """Observes first, then says how many it had seen at each decision."""

    INFO = Info("observer", "1", "test")
    observe_first = True

    def __init__(self, ctx):
        self.seen = []
        self.decided = 0

    def observe(self, seg):
        self.seen.append("%s:%s" % (seg.name, seg.label("level")))

    def decide(self, seg):
        if self.decided == 0:
            log.info("observed %s", " ".join(self.seen))
        self.decided += 1
        return Decision.keep("decision %d after %d observed, level %s" % (self.decided, len(self.seen), seg.label("level")))


class Failing(Plugin):
    """Fails as its parameters say: `refuse` in begin, `fail_at` (PluginError) or `raise_at` (an uncaught error) in
    decide, at the segment with that index; `observe` makes it observe first and raise in observe at `raise_at`."""

    INFO = Info("failing", "1", "test")

    def __init__(self, ctx):
        log.warn("about to check")
        refuse = ctx.param_str("refuse", default=None)
        if refuse is not None:
            raise PluginError("refused: " + refuse)
        self.fail_at = ctx.param_int("fail_at", default=-1)
        self.raise_at = ctx.param_int("raise_at", default=-1)
        self.observe_first = ctx.param_bool("observe", default=False)
        self.boom_in_init = ctx.param_bool("boom", default=False)
        if self.boom_in_init:
            {}["missing"]

    def observe(self, seg):
        if seg.index == self.raise_at:
            return 1 // 0

    def decide(self, seg):
        if seg.index == self.fail_at:
            raise PluginError("cannot decide " + seg.name)
        if seg.index == self.raise_at:
            return helper_that_divides(seg)
        return Decision.keep()


def helper_that_divides(seg):
    return seg.bytes // 0
