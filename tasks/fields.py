"""Field types shared by the domain models and the settings: each bound is written once, here or in the
model that owns it, and every settings field reuses it (``Annotated`` carries the constraint along)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

HOSTNAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def check_hostname(value: str) -> str:
    if not HOSTNAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid node name (lowercase letters, digits, '-'; starts with a letter)"
        )
    return value


# A node's hostname: DRBD ('on <name>') and o2cb match it against `uname -n`.
Hostname = Annotated[str, AfterValidator(check_hostname)]

# A TCP port.
Port = Annotated[int, Field(ge=1, le=65535)]

# An absolute path on a node (one word: it is passed as one argv element).
AbsolutePath = Annotated[str, Field(pattern=r"^/\S+$")]
