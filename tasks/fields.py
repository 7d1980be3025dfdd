"""Field types shared by the domain models and the settings: each bound is written once, here or in the
model that owns it, and every settings field reuses it (``Annotated`` carries the constraint along)."""

from __future__ import annotations

import ipaddress
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

# An IP address of either family (what DRBD and o2cb are given: never a name).
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DNS_LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def ip_literal(value: str) -> IpAddress | None:
    """``value`` as an IP address when it is one (IPv4 dotted quad or IPv6), else None; never a lookup."""
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_dns_name(value: str) -> bool:
    """A DNS name by its shape: dot-separated labels of letters, digits and '-', the last one not all
    digits (so a mistyped IPv4 address such as 10.0.0.256 is never sent to a resolver as a name)."""
    labels = value.removesuffix(".").split(".")
    return (
        len(value) <= 253 and all(DNS_LABEL_RE.match(label) for label in labels) and not labels[-1].isdigit()
    )


def check_address(value: str) -> str:
    """An IPv4/IPv6 address or a DNS name, checked by shape only (nothing is resolved here)."""
    ip = ip_literal(value)
    if ip is None and not is_dns_name(value):
        raise ValueError(f"{value!r} is neither an IP address nor a DNS name")
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        raise ValueError(f"{value!r} has an interface scope: give an address without %<interface>")
    return value


# Where a host is reached: an IP address, or a DNS name resolved by whoever reads it.
HostAddress = Annotated[str, AfterValidator(check_address)]

# A TCP port.
Port = Annotated[int, Field(ge=1, le=65535)]

# An absolute path on a node (one word: it is passed as one argv element).
AbsolutePath = Annotated[str, Field(pattern=r"^/\S+$")]
