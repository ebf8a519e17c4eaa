"""Parsing of parameter values (always strings: the host converts the config's numbers and booleans), with the Rust
SDK's messages: they name the parameter, the value and what was expected."""

from .errors import PluginError
from .units import _quote, parse_byte_size

#: The default of a required parameter.
REQUIRED = object()

_U32_MAX = (1 << 32) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _integer(text, lo, hi):
    """`text` as an integer in lo..=hi, parsed like Rust's `str::parse` (optional `+`, a `-` only when lo < 0, ASCII
    digits): returns (value, None) or (None, Rust's error text)."""
    if not text:
        return None, "cannot parse integer from empty string"
    s = text
    negative = False
    if s[0] == "+" or (s[0] == "-" and lo < 0):
        negative = s[0] == "-"
        s = s[1:]
    if not s or not (s.isascii() and s.isdigit()):
        return None, "invalid digit found in string"
    value = -int(s) if negative else int(s)
    if value > hi:
        return None, "number too large to fit in target type"
    if value < lo:
        return None, "number too small to fit in target type"
    return value, None


def parse_int(key, raw, min=None, max=None):
    """`raw` (the value of parameter `key`) as an integer, within `min` and `max` when given."""
    value, err = _integer(raw.strip(), _I64_MIN, _I64_MAX)
    if err is not None:
        raise PluginError("parameter `%s` = %s: expected an integer: %s" % (key, _quote(raw), err))
    if min is not None and value < min:
        raise PluginError("parameter `%s` = %s: expected an integer >= %d" % (key, _quote(raw), min))
    if max is not None and value > max:
        raise PluginError("parameter `%s` = %s: expected an integer <= %d" % (key, _quote(raw), max))
    return value


def parse_days(key, raw, never=False):
    """`raw` as a whole number of days (0 to 4294967295); with `never=True` the word `never` (any case) is accepted
    too and gives `None`. The message for a bad value reads like the Rust age-tiering plugin's:
    ``parameter `drop_after_days` = "soon": expected a whole number of days or `never` (invalid digit found in
    string)``."""
    v = raw.strip()
    if never and v.lower() == "never":
        return None
    value, err = _integer(v, 0, _U32_MAX)
    if err is not None:
        expected = "a whole number of days or `never`" if never else "a whole number of days"
        raise PluginError("parameter `%s` = %s: expected %s (%s)" % (key, _quote(raw), expected, err))
    return value


def parse_bool(key, raw):
    """`raw` as `true` or `false` (exactly, as Rust's `bool` parses: the host writes TOML booleans so)."""
    v = raw.strip()
    if v == "true":
        return True
    if v == "false":
        return False
    raise PluginError("parameter `%s` = %s: expected true or false" % (key, _quote(raw)))


def parse_bytes(key, raw):
    """`raw` as a number of bytes (`10GiB`, `500 MB`, `1048576`; see `units.parse_byte_size`)."""
    try:
        return parse_byte_size(raw)
    except ValueError as e:
        raise PluginError("parameter `%s` = %s: expected a size: %s" % (key, _quote(raw), e)) from None
