"""A health model's validation error in words for people, in their language.

``cs_metrics.health`` is pure and names the offending input by its path in the model
(``components[9].name``) with a stable code (``duplicate``); this turns the pair into "Component
10: names must be unique." A code without words here keeps the calculator's English message.
"""

from __future__ import annotations

import re
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from cs_metrics.health import CalculatorInputError

_COMPONENT = re.compile(r"^components\[(\d+)\](?:\.(.+))?$")
_STEP = re.compile(r"^scale\.steps\[(\d+)\](?:\.(bound|score))?$")

PLACES = {
    "config": _l("The model"),
    "version": _l("Version"),
    "components": _l("Components"),
    "bands": _l("Bands"),
    "bands.green_min": _l("Green from"),
    "bands.yellow_min": _l("Yellow from"),
}
PARTS = {
    "name": _l("name"),
    "weight": _l("weight"),
    "scale": _l("scale"),
    "scale.type": _l("scale"),
    "scale.at_0": _l("value that scores 0"),
    "scale.at_100": _l("value that scores 100"),
    "scale.steps": _l("steps"),
}
PROBLEMS = {
    "blank": _l("must not be blank"),
    "duplicate": _l("names must be unique"),
    "not_positive": _l("must be above 0"),
    "not_a_number": _l("must be a number"),
    "not_finite": _l("must be a finite number"),
    "out_of_range": _l("must be from 0 to 100"),
    "above_green": _l("must not be above the green cut-off"),
    "degenerate_range": _l("the values that score 0 and 100 must differ"),
    "not_a_pair": _l("each step needs a value and a score"),
    "not_pairs": _l("each step needs a value and a score"),
    "not_increasing": _l("step values must strictly increase"),
    "not_monotonic": _l("step scores must all rise or all fall"),
    "unknown_scale": _l("the scale must be linear or thresholds"),
    "zero_weight_sum": _l("the weights sum to zero"),
    "not_an_object": _l("is not in the expected form"),
    "not_a_list": _l("is not in the expected form"),
    "not_bands": _l("is not in the expected form"),
}


def place(path: str) -> str:
    """Where in the model: "Green from", "Component 10", "Component 3, step 1 score"."""
    found = _COMPONENT.match(path)
    if found is None:
        return str(PLACES.get(path, path))
    number, rest = int(found.group(1)) + 1, found.group(2) or ""
    step = _STEP.match(rest)
    if step is not None:
        index = int(step.group(1)) + 1
        if step.group(2) is None:
            return _("Component %(n)d, step %(step)d", n=number, step=index)
        what = _("value") if step.group(2) == "bound" else _("score")
        return _("Component %(n)d, step %(step)d %(what)s", n=number, step=index, what=what)
    if rest in PARTS:
        return _("Component %(n)d %(part)s", n=number, part=PARTS[rest])
    return _("Component %(n)d", n=number)


def problem(error: CalculatorInputError) -> str:
    if error.code == "empty":
        if "steps" in error.field:
            return _("needs at least one step")
        return _("needs at least one component")
    words: Any = PROBLEMS.get(error.code)
    return str(words) if words is not None else error.message


def describe(error: CalculatorInputError) -> str:
    """The error as one sentence: "Component 10: names must be unique."."""
    path = error.field
    if error.code == "duplicate":  # "names must be unique" already says what
        path = path.removesuffix(".name")
    return _(
        "The health model is not valid. %(place)s: %(problem)s.",
        place=place(path),
        problem=problem(error),
    )
