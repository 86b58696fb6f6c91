"""dlt's configuration lookups, made cheaper for the loads.

dlt resolves a configuration object each time it opens a file writer, prepares a table or
builds a destination client: about 380 times in a 10k-charge first load. For every field,
every provider and every section it tries, it asks whether the field's type hint is a
secret (`is_secret_hint`, which unwraps Optional, Annotated and unions with `typing`'s
helpers). The answer depends on the hint alone, and the same few dozen hints come back
thousands of times: that question was half of the resolution's time, and the resolution
about a tenth of the load's (docs/benchmarks.md). Here it is answered once per hint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dlt.common.configuration import resolve
from dlt.common.configuration.providers import environ
from dlt.common.configuration.specs import base_configuration

log = logging.getLogger(__name__)

# The modules that call `is_secret_hint` by the name they imported (dlt 1.31).
_CALLERS = (base_configuration, resolve, environ)
# Hints are the fields' declared types, a few dozen in all; a bound keeps a hint made anew
# per call (none is, today) from growing the cache without end.
MAX_HINTS = 4_096


def remembered(is_secret_hint: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """`is_secret_hint`, answered once per hint. A hint that cannot be a dict key (an
    Annotated type with unhashable metadata) is asked every time, as before."""
    answers: dict[Any, bool] = {}

    def is_secret_hint_remembered(hint: Any) -> bool:
        try:
            return answers[hint]
        except KeyError:
            pass
        except TypeError:
            return is_secret_hint(hint)
        answer = is_secret_hint(hint)
        if len(answers) < MAX_HINTS:
            answers[hint] = answer
        return answer

    is_secret_hint_remembered.__wrapped__ = is_secret_hint  # type: ignore[attr-defined]
    return is_secret_hint_remembered


def remember_secret_hints() -> bool:
    """Make dlt answer `is_secret_hint` once per hint, in every module that calls it. Done
    once per process; left as it is (and said so in the log) if this dlt calls it from
    elsewhere than the modules known here. Whether it was done."""
    original = base_configuration.is_secret_hint
    if hasattr(original, "__wrapped__"):
        return True
    if any(getattr(module, "is_secret_hint", None) is not original for module in _CALLERS):
        log.debug("dlt's is_secret_hint is not where this dlt version had it; not remembered")
        return False
    fast = remembered(original)
    for module in _CALLERS:
        module.is_secret_hint = fast
    return True
