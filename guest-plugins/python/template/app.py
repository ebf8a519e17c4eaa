"""`{{name}}`: compresses segments older than `compress_after_days` and drops those older than `drop_after_days`,
except segments labelled `kind=audit`, which are only compressed.

Parameters: `drop_after_days` (required, whole days), `compress_after_days` (optional, default 1).

Import everything at the top of this file: componentize-py imports it when it builds the component, and the
component has no files to import from later. Log with `retention_sdk.log.info(...)` (`print` lands in the log too, as `stdout`).
"""

import retention_sdk
from retention_sdk import Decision, Info, Plugin, PluginError, Tier


class Rule(Plugin):
    INFO = Info(
        name="{{name}}",
        version="0.1.0",
        description="Compresses segments after some days and drops them later, except audit segments.",
    )

    def __init__(self, ctx):
        # A misspelt parameter fails the pass instead of silently meaning "use the default".
        ctx.check_params(["compress_after_days", "drop_after_days"])
        self.compress_after_days = ctx.param_days("compress_after_days", default=1)
        self.drop_after_days = ctx.param_days("drop_after_days")
        if self.compress_after_days > self.drop_after_days:
            raise PluginError(
                "compress_after_days (%d) is more than drop_after_days (%d): nothing would ever be compressed"
                % (self.compress_after_days, self.drop_after_days)
            )

    def decide(self, seg):
        age = seg.age_days()
        if age >= self.drop_after_days and not seg.label_is("kind", "audit"):
            return Decision.drop("older than drop_after_days")
        if age >= self.compress_after_days and seg.tier == Tier.HOT:
            return Decision.compress("older than compress_after_days")
        return Decision.keep()


# What componentize-py looks for: a class named `Policy` implementing the exported interface `policy`.
Policy = retention_sdk.export(Rule)
