"""The pass context handed to `Plugin.begin`: the pass's "now", the dataset, its totals and the parameters configured
for it, with typed parameter helpers that fail with clear messages."""

from . import params as _p
from .errors import PluginError
from .types import DatasetTotals
from .units import _quote


class Context:
    """What a plugin learns about a pass before the first segment."""

    __slots__ = ("_pass_id", "_dataset", "_now_ms", "_dry_run", "_params", "_totals")

    def __init__(self, record):
        self._pass_id = record.pass_id
        self._dataset = record.dataset
        self._now_ms = record.now_ms
        self._dry_run = record.dry_run
        self._params = {p.key: p.value for p in record.params}
        self._totals = DatasetTotals._from_record(record.totals)

    @property
    def pass_id(self):
        """Unique identifier of the pass (also in the host's reports and logs)."""
        return self._pass_id

    @property
    def dataset(self):
        """Name of the dataset being decided."""
        return self._dataset

    @property
    def now_ms(self):
        """The pass's "now" in milliseconds since the Unix epoch (UTC). Plugins have no clock: decide against this."""
        return self._now_ms

    @property
    def dry_run(self):
        """True when the host only reports the plan. Decide exactly as in a real pass."""
        return self._dry_run

    @property
    def totals(self):
        """The dataset's `DatasetTotals` (segments and bytes per tier) at the start of the pass."""
        return self._totals

    @property
    def params(self):
        """All parameters as a new dict, key to raw string value, in key order."""
        return dict(self._params)

    def param_str(self, key, default=_p.REQUIRED):
        """The raw value of a parameter; `default` when it is not set (without one, a missing parameter fails)."""
        raw = self._params.get(key)
        if raw is None:
            return self._missing(key, default)
        return raw

    def param_int(self, key, default=_p.REQUIRED, *, min=None, max=None):
        """An integer parameter (within `min`/`max` when given); `default` when it is not set."""
        raw = self._params.get(key)
        if raw is None:
            return self._missing(key, default)
        return _p.parse_int(key, raw, min=min, max=max)

    def param_days(self, key, default=_p.REQUIRED, *, never=False):
        """A whole number of days; with `never=True` the value `never` is accepted and gives `None` (pass
        `default=None` for "absent means never")."""
        raw = self._params.get(key)
        if raw is None:
            return self._missing(key, default)
        return _p.parse_days(key, raw, never=never)

    def param_bool(self, key, default=_p.REQUIRED):
        """`true` or `false`; `default` when it is not set."""
        raw = self._params.get(key)
        if raw is None:
            return self._missing(key, default)
        return _p.parse_bool(key, raw)

    def param_bytes(self, key, default=_p.REQUIRED):
        """A size in bytes (`10GiB`, `500 MB`, `1048576`); `default` when it is not set."""
        raw = self._params.get(key)
        if raw is None:
            return self._missing(key, default)
        return _p.parse_bytes(key, raw)

    def param(self, key, parse, default=_p.REQUIRED):
        """A parameter parsed by `parse(raw)`; a `ValueError` from it becomes a message naming the key and value."""
        raw = self._params.get(key)
        if raw is None:
            return self._missing(key, default)
        try:
            return parse(raw.strip())
        except PluginError:
            raise
        except (ValueError, TypeError) as e:
            raise PluginError("parameter `%s` = %s: %s" % (key, _quote(raw), e)) from None

    def check_params(self, known, *, prefix_ok=(), also=None):
        """Fails when a parameter is neither in `known`, nor starts with one of `prefix_ok` (a string or a tuple),
        nor is accepted by `also(key)`: a misspelt key otherwise silently means "use the default", which for a
        retention rule can mean keeping or deleting the wrong data. The message is
        ``unknown parameter `x` (expected: a, b)``."""
        known = list(known)
        if isinstance(prefix_ok, str):
            prefix_ok = (prefix_ok,)
        prefix_ok = tuple(prefix_ok)
        for key in self._params:
            if key in known or (prefix_ok and key.startswith(prefix_ok)) or (also is not None and also(key)):
                continue
            expected = ", ".join(known) or "none"
            raise PluginError("unknown parameter `%s` (expected: %s)" % (key, expected))

    @staticmethod
    def _missing(key, default):
        if default is _p.REQUIRED:
            raise PluginError("missing required parameter `%s`" % key)
        return default

    def __repr__(self):
        return "Context(pass_id=%r, dataset=%r, now_ms=%d, dry_run=%r, params=%r)" % (
            self._pass_id,
            self._dataset,
            self._now_ms,
            self._dry_run,
            self._params,
        )
