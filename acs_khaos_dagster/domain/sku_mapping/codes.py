"""The code rules: which characters and shapes a SKU may not have, and why.

``FORBIDDEN_CHARACTERS`` is the table to edit; ``code_problems`` checks one code and
``code_problems_series`` a column of them (each code read once).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

MAX_CODE_LENGTH = 50

# Characters a SKU may not contain, with the reason. ``#`` is Khaos's own rule. The rest
# come from the SKU being a path segment of ``PUT .../products/{sku}.json`` behind an API
# gateway on an IIS/ASP.NET-style stack: ``/ \\`` split or normalise the path, ``? #``
# start a query or fragment, ``%`` invites double decoding, and ``& : * < > + "`` are
# refused in paths by the default request filtering of that stack (a 400 before ACS ever
# sees the request). Edit this table, not the functions, to change the rules.
FORBIDDEN_CHARACTERS: dict[str, str] = {
    "#": "Khaos does not allow '#' in a stock code",
    "/": "'/' would split the ACS URL path",
    "\\": "'\\' is read as a path separator",
    "?": "'?' would start a URL query",
    "%": "'%' is read as percent-encoding",
    "&": "'&' is refused in URL paths",
    ":": "':' is refused in URL paths",
    "*": "'*' is refused in URL paths",
    "<": "'<' is refused in URL paths",
    ">": "'>' is refused in URL paths",
    "+": "'+' is refused in URL paths (double escaping)",
    '"': "'\"' is refused in URL paths",
}

_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")
# Non-ASCII is refused: the same visible code can be several byte strings (é composed or
# not), which would make one garment two SKUs between Khaos, ACS's API and its CSV files.
_NON_ASCII_RE = re.compile("[^\x00-\x7f]")
# Matches every code any rule below could refuse (and a few more, checked again one by
# one), so the vectorised form reads each code once.
_SUSPECT_RE = "[^ -~]|[" + re.escape("".join(FORBIDDEN_CHARACTERS)) + r"]|^\s|\s$"

PROBLEM_SEPARATOR = "; "


def code_problems(code: str) -> list[str]:
    """Why ``code`` cannot be a Khaos stock code sent to ACS; empty when it is valid.

    >>> code_problems("DRS-0001-NVY-10")
    []
    >>> code_problems("DRS#1")
    ["contains '#': Khaos does not allow '#' in a stock code"]
    """
    problems: list[str] = []
    if not code:
        return ["is empty"]
    if len(code) > MAX_CODE_LENGTH:
        problems.append(f"is {len(code)} characters long, more than {MAX_CODE_LENGTH}")
    if code != code.strip():
        problems.append("has leading or trailing whitespace")
    if _CONTROL_RE.search(code):
        problems.append("contains a control character")
    if _NON_ASCII_RE.search(code):
        problems.append("contains a non-ASCII character")
    problems += [
        f"contains {char!r}: {reason}"
        for char, reason in FORBIDDEN_CHARACTERS.items()
        if char in code
    ]
    return problems


def code_problems_series(codes: pd.Series) -> pd.Series:
    """Per code, its problems joined by ``"; "`` (empty string when the code is valid).

    Vectorised: one regex pass finds the suspects; only those are checked one by one.
    """
    text = codes.fillna("").astype(str)
    suspect = text.str.contains(_SUSPECT_RE, regex=True).to_numpy(dtype=bool)
    length = text.str.len().to_numpy()
    suspect |= (length == 0) | (length > MAX_CODE_LENGTH)
    result = pd.Series("", index=codes.index, dtype=object)
    for position in np.flatnonzero(suspect):
        result.iat[position] = PROBLEM_SEPARATOR.join(code_problems(text.iat[position]))
    return result
