"""Time units in milliseconds, and byte sizes with units (`10GiB`, `500 MB`)."""

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

_UNITS = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "eb": 1000**6,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
    "pib": 1 << 50,
    "eib": 1 << 60,
}

_U64_MAX = (1 << 64) - 1


def parse_byte_size(text):
    """Bytes from `10GiB`, `1.5 TB`, `512MiB` or `1048576`, as the Rust SDK's `ByteSize` parses them.

    Units are case-insensitive: `B`; decimal `kB` ... `EB` (powers of 1000); binary `KiB` ... `EiB` (powers of 1024).
    Single letters (`K`, `G`, ...) are refused as ambiguous. Fractions round down to a whole byte. Raises `ValueError`
    with the reason.
    """
    s = str(text).strip()
    split = 0
    while split < len(s) and (s[split] in "0123456789."):
        split += 1
    number, unit = s[:split], s[split:].strip()
    whole, _, frac = number.partition(".")
    if not whole and not frac:
        raise ValueError("expected a number of bytes, e.g. 10GiB")
    if "." in frac or len(frac) > 18:
        raise ValueError("malformed number %s" % _quote(number))
    lower = unit.lower() if unit.isascii() else unit
    if lower in ("k", "m", "g", "t", "p", "e"):
        u = unit.upper()
        raise ValueError("ambiguous unit %s: write %sB (powers of 1000) or %siB (powers of 1024)" % (_quote(unit), u, u))
    multiplier = _UNITS.get(lower)
    if multiplier is None:
        raise ValueError("unknown unit %s (expected B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, ...)" % _quote(unit))
    scale = 10 ** len(frac)
    scaled = int(whole or "0") * scale + int(frac or "0")
    value = scaled * multiplier // scale
    if value > _U64_MAX:
        raise ValueError("%s is too large (at most 16 EiB)" % _quote(s))
    return value


def format_byte_size(n):
    """`n` bytes in the largest binary unit that fits, with up to two decimals: `10 GiB`, `1.5 MiB`, `512 B`."""
    if n < 1024:
        return "%d B" % n
    units = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    exp = min((n.bit_length() - 1) // 10, 6)
    unit = 1 << (10 * exp)
    if n % unit == 0:
        return "%d %s" % (n // unit, units[exp - 1])
    hundredths = (n * 100 + unit // 2) // unit
    whole, frac = divmod(hundredths, 100)
    if frac == 0:
        return "%d %s" % (whole, units[exp - 1])
    if frac % 10 == 0:
        return "%d.%d %s" % (whole, frac // 10, units[exp - 1])
    return "%d.%02d %s" % (whole, frac, units[exp - 1])


def _quote(text):
    """`text` in double quotes with escapes, as Rust's `{:?}` writes a string (the host's and Rust SDK's messages)."""
    out = ['"']
    for c in text:
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)
