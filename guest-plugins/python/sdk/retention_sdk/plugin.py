"""The base class of a plugin and its description."""

from collections import namedtuple

#: Describes a plugin: shown by `retention plugin check` and recorded with every pass.
Info = namedtuple("Info", ["name", "version", "description"])


class Plugin:
    """A retention policy. One instance lives for one pass: `begin(ctx)` makes it (by default it calls
    `cls(ctx)`, so write an `__init__(self, ctx)`), `observe` and `decide` see every segment of the pass, oldest
    first (by end time, then name).

    Class attributes:

    - `INFO = Info(name, version, description)` (or the three as class attributes `name`, `version`,
      `description`);
    - `observe_first = False`: set it to True (on the class, or on the instance in `__init__`) to see every segment
      in `observe` before the first `decide`. It doubles the boundary cost: only when a decision depends on newer
      segments.

    Raise `PluginError(message)` (the `Context` parameter helpers do) to fail the pass with exactly that message; any
    other exception fails it too, with the exception's type, message and where it was raised.
    """

    INFO = None
    observe_first = False

    def __init__(self, ctx):
        pass

    @classmethod
    def begin(cls, ctx):
        """Starts a pass: read and check parameters, return the pass's plugin instance."""
        return cls(ctx)

    def observe(self, seg):
        """Sees one segment before any decision (only when `observe_first` is true)."""

    def decide(self, seg):
        """Decides the fate of one segment: return a `Decision`."""
        raise NotImplementedError("%s does not define decide(self, seg)" % type(self).__name__)


def info_of(cls):
    """The plugin's `Info`, from `INFO` or the `name`/`version`/`description` class attributes."""
    info = getattr(cls, "INFO", None)
    if info is None:
        info = Info(getattr(cls, "name", None), getattr(cls, "version", None), getattr(cls, "description", ""))
    elif not isinstance(info, Info):
        info = Info(*info)
    return info
