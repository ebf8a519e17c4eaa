"""The Python SDK for retention decision plugins, built into WebAssembly components with componentize-py.

A plugin is a component of the world `retention:policy/plugin@0.1.0` (`wit/retention.wit`). This package hides the
contract's column layout behind a per-segment API, as the Rust SDK does::

    import retention_sdk
    from retention_sdk import Decision, Plugin, Info

    class DropDebug(Plugin):
        INFO = Info("drop-debug", "0.1.0", "Drops debug logs older than `days` days.")

        def __init__(self, ctx):
            ctx.check_params(["days"])
            self.days = ctx.param_days("days", default=7)

        def decide(self, seg):
            if seg.age_days() >= self.days and seg.label_is("level", "debug"):
                return Decision.drop("old debug log")
            return Decision.keep()

    Policy = retention_sdk.export(DropDebug)   # what componentize-py looks for

On a pass the host makes a fresh instance, calls `begin` (by default `DropDebug(ctx)`); if `observe_first` is true
every segment goes through `observe` first, oldest first; then every segment, in the same order, through `decide`.

Inside a component nothing can be imported after the build (there are no files at run time): import everything at
the top of the app module. Never print: use `retention_sdk.log.info(...)`.

`retention_sdk.testing` runs a plugin natively under pytest through this same glue.
"""

from ._log import Log, log
from .context import Context
from .decision import Decision
from .errors import PluginError
from .params import REQUIRED, parse_bool, parse_bytes, parse_days, parse_int
from .plugin import Info, Plugin
from .runtime import export
from .segment import Segment
from .types import Action, DatasetTotals, LogLevel, Tier, TierTotals
from .units import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, format_byte_size, parse_byte_size
from ._bindings import IN_COMPONENT

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Context",
    "DAY_MS",
    "DatasetTotals",
    "Decision",
    "HOUR_MS",
    "IN_COMPONENT",
    "Info",
    "Log",
    "LogLevel",
    "MINUTE_MS",
    "Plugin",
    "PluginError",
    "REQUIRED",
    "SECOND_MS",
    "Segment",
    "Tier",
    "TierTotals",
    "export",
    "format_byte_size",
    "log",
    "parse_bool",
    "parse_byte_size",
    "parse_bytes",
    "parse_days",
    "parse_int",
]
