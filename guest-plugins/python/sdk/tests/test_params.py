"""Parameters: typed helpers with the Rust SDK's messages, and the check for unknown (misspelt) keys."""

import pytest

from retention_sdk import Context, PluginError, parse_byte_size, format_byte_size, parse_days
from retention_sdk.testing import Pass


def ctx(**params):
    p = Pass("2026-03-01")
    for k, v in params.items():
        p = p.param(k.replace("__", "."), v)
    return Context(p.context())


def message(call):
    with pytest.raises(PluginError) as e:
        call()
    return e.value.message


def test_an_unknown_parameter_is_refused_with_the_expected_ones_listed():
    c = ctx(days=7, dayz=1)
    assert message(lambda: c.check_params(["days", "keep"])) == "unknown parameter `dayz` (expected: days, keep)"
    assert message(lambda: c.check_params([])) == "unknown parameter `days` (expected: none)"
    c.check_params(["days"], also=lambda k: k == "dayz")


def test_families_of_keys_pass_the_check_by_prefix():
    c = ctx(days=7, override__level__debug__days=1)
    c.check_params(["days"], prefix_ok="override.")
    c.check_params(["days"], prefix_ok=("x.", "override."))
    assert "override.level.debug.days" in message(lambda: c.check_params(["days"], prefix_ok="over."))


def test_required_optional_and_malformed_parameters_have_clear_messages():
    c = ctx(days="x", n=" 12 ", flag=True, size="10GiB", never="Never", neg="-3", big="99999999999")
    assert message(lambda: c.param_int("missing")) == "missing required parameter `missing`"
    assert c.param_int("missing", default=5) == 5
    assert c.param_int("n") == 12
    assert message(lambda: c.param_int("days")) == (
        'parameter `days` = "x": expected an integer: invalid digit found in string'
    )
    assert message(lambda: c.param_int("n", max=10)) == 'parameter `n` = " 12 ": expected an integer <= 10'
    assert c.param_bool("flag") is True
    assert message(lambda: c.param_bool("n")) == 'parameter `n` = " 12 ": expected true or false'
    assert c.param_bytes("size") == 10 << 30
    assert message(lambda: c.param_bytes("days")) == 'parameter `days` = "x": expected a size: expected a number of ' \
        "bytes, e.g. 10GiB"
    assert c.param_days("never", never=True) is None
    assert c.param_days("absent", default=None) is None
    assert message(lambda: c.param_days("never")) == (
        'parameter `never` = "Never": expected a whole number of days (invalid digit found in string)'
    )
    assert message(lambda: c.param_days("neg", never=True)) == (
        'parameter `neg` = "-3": expected a whole number of days or `never` (invalid digit found in string)'
    )
    assert "number too large to fit in target type" in message(lambda: c.param_days("big"))
    assert c.param_str("n") == " 12 " and c.param_str("nope", default=None) is None
    assert c.param("n", lambda s: int(s) * 2) == 24
    assert message(lambda: c.param("days", float)) == "parameter `days` = \"x\": could not convert string to float: 'x'"


def test_parameter_values_arrive_as_text_sorted_by_key():
    c = ctx(z=False, a=1, m="x")
    assert c.params == {"a": "1", "m": "x", "z": "false"}
    assert (c.dataset, c.pass_id, c.dry_run, c.now_ms) == ("test", "test", True, 1772323200000)


def test_days_parse_like_rust_integers():
    assert parse_days("k", "+7") == 7
    assert message(lambda: parse_days("k", "")) == (
        'parameter `k` = "": expected a whole number of days (cannot parse integer from empty string)'
    )
    assert message(lambda: parse_days("k", "٣")).endswith("(invalid digit found in string)")
    assert parse_days("k", "4294967295") == 4294967295
    assert "too large" in message(lambda: parse_days("k", "4294967296"))


def test_sizes_parse_with_decimal_and_binary_units_and_print_in_binary_units():
    assert parse_byte_size("1048576") == 1_048_576
    assert parse_byte_size(" 10 gib ") == 10 << 30
    assert parse_byte_size("1.5KiB") == 1536
    assert parse_byte_size("0.5MB") == 500_000
    for bad, why in [("16EiB", "too large"), ("10G", "ambiguous"), ("10XB", "unknown unit"), ("", "expected"), ("1.2.3MB", "malformed"), ("GiB", "expected")]:
        with pytest.raises(ValueError, match=why):
            parse_byte_size(bad)
    assert [format_byte_size(n) for n in (512, 10 << 30, 1536, 1450, 1034, (1 << 64) - 1)] == [
        "512 B",
        "10 GiB",
        "1.5 KiB",
        "1.42 KiB",
        "1.01 KiB",
        "16 EiB",
    ]
