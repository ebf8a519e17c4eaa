"""`age-tiering`: moves segments down the tiers as they age (compress, then archive, then drop) with thresholds in
days, optionally overridden per label value. The Python port of `guest-plugins/examples/age-tiering`: the same
parameters, rule and reason texts.

Parameters (all optional; an absent threshold, or the value `never`, means the step never happens):

- `compress_after_days`: compress hot segments at least this many days old.
- `archive_after_days`: archive hot or compressed segments at least this many days old.
- `drop_after_days`: drop segments at least this many days old, in any tier.
- `override.<label>.<value>.<threshold>`: the threshold (one of the three above) for segments whose label `<label>`
  has the value `<value>`, e.g. `override.level.debug.drop_after_days = "7"` or
  `override.service.audit.drop_after_days = "never"`. The label is the part up to the first `.` (or `=`) after
  `override.`, the threshold the part after the last `.`, and the value everything between (it may contain dots).
  `override.<label>=<value>.<threshold>` means the same.

A segment's age is `now - end` in whole days, rounded down. When several overrides match a segment and set the same
threshold, the longest retention wins (`never` beats any number). An override replaces the default even when it is
shorter. Decision: drop if the drop threshold is reached; else archive if the archive threshold is reached and the
tier allows it; else compress likewise; else keep. Reasons: "age 9d >= drop_after_days 7 (level=debug)".
"""

import retention_sdk
from retention_sdk import Action, Decision, Info, Plugin, PluginError, parse_days

#: The three thresholds, in the order they are checked for the decision.
THRESHOLDS = ("drop_after_days", "archive_after_days", "compress_after_days")
DROP, ARCHIVE, COMPRESS = 0, 1, 2
_ACTIONS = (Action.DROP, Action.ARCHIVE, Action.COMPRESS)

#: An override that does not set a threshold (a set threshold is a number of days, or None for never).
NOT_SET = object()


def parse_override_key(key):
    """Splits `override.<label>.<value>.<threshold>` (or `override.<label>=<value>.<threshold>`) into
    `(label, value, which)`."""
    bad = PluginError(
        "parameter `%s`: expected override.<label>.<value>.<threshold> with <threshold> one of "
        "compress_after_days, archive_after_days, drop_after_days" % key
    )
    if not key.startswith("override."):
        raise bad
    selector, dot, threshold = key[len("override.") :].rpartition(".")
    if not dot:
        raise bad
    # A label name has neither `=` nor `.`, so whichever comes first ends it.
    cut = min((i for i in (selector.find("="), selector.find(".")) if i >= 0), default=-1)
    if cut < 0:
        raise bad
    label, value = selector[:cut], selector[cut + 1 :]
    if threshold not in THRESHOLDS or not label:
        raise bad
    return label, value, THRESHOLDS.index(threshold)


def longer(a, b):
    """Whether threshold `a` keeps data longer than `b` (None, never, is the longest)."""
    if a is None:
        return b is not None
    if b is None:
        return False
    return a > b


class AgeTiering(Plugin):
    INFO = Info(
        name="age-tiering",
        version="0.1.0",
        description="Compresses, archives and drops segments by age in days, with per-label overrides.",
    )

    def __init__(self, ctx):
        ctx.check_params(THRESHOLDS, prefix_ok="override.")
        self.defaults = [None, None, None]
        # [(label key, {value: (position, [threshold or NOT_SET] * 3)})], in the order the parameters name them.
        self.overrides = []
        for key, value in ctx.params.items():
            if key in THRESHOLDS:
                self.defaults[THRESHOLDS.index(key)] = parse_days(key, value, never=True)
                continue
            label, label_value, which = parse_override_key(key)
            days = parse_days(key, value, never=True)
            group = next((g for g in self.overrides if g[0] == label), None)
            if group is None:
                group = (label, {})
                self.overrides.append(group)
            entry = group[1].get(label_value)
            if entry is None:
                entry = group[1][label_value] = (len(group[1]), [NOT_SET, NOT_SET, NOT_SET])
            entry[1][which] = days
        # Reasons already written, by (age, threshold, days, override): few distinct ones per dataset.
        self.reasons = {}

    def decide(self, seg):
        age = seg.age_days()
        if age < 0:
            # From the future (clock skew, or a pass with an earlier --now): too young for any rule.
            return Decision.keep()
        # The effective thresholds, each with the override that set it: (days, (label, value) or None, source id).
        effective = [(d, None, 0) for d in self.defaults]
        overridden = [False, False, False]
        for gi, (key, values) in enumerate(self.overrides):
            value = seg.label(key)
            if value is None:
                continue
            entry = values.get(value)
            if entry is None:
                continue
            vi, sets = entry
            for which in (DROP, ARCHIVE, COMPRESS):
                days = sets[which]
                if days is NOT_SET:
                    continue
                # The first matching override replaces the default; among several, the longest retention wins.
                if not overridden[which] or longer(days, effective[which][0]):
                    effective[which] = (days, (key, value), 1 + gi * 1024 + vi)
                    overridden[which] = True

        tier = seg.tier
        if _reached(effective[DROP][0], age):
            which = DROP
        elif _reached(effective[ARCHIVE][0], age) and Action.ARCHIVE.allowed_from(tier):
            which = ARCHIVE
        elif _reached(effective[COMPRESS][0], age) and Action.COMPRESS.allowed_from(tier):
            which = COMPRESS
        else:
            return Decision.keep()
        days, source, source_id = effective[which]
        cache_key = (age, which, days, source_id)
        reason = self.reasons.get(cache_key)
        if reason is None:
            if source is not None:
                text = "age %dd >= %s %d (%s=%s)" % (age, THRESHOLDS[which], days, source[0], source[1])
            else:
                text = "age %dd >= %s %d" % (age, THRESHOLDS[which], days)
            reason = self.reasons[cache_key] = Decision(_ACTIONS[which], text)
        return reason


def _reached(days, age):
    return days is not None and age >= days


Policy = retention_sdk.export(AgeTiering)
