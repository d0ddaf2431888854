"""Client addresses as the limits count them: an IPv4 address, or an IPv6 /64.

One IPv6 subscriber (a home, a phone, a cloud server) is usually given a whole /64, so an
attacker can rotate through billions of addresses without leaving it: limits per address
would see each one afresh. The limits therefore count an IPv6 client by its /64 network.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

IPV6_PREFIX = 64


def network_of(ip: Optional[str]) -> Optional[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The network a limit counts this address in, or None for no usable address."""
    try:
        address = ipaddress.ip_address((ip or "").strip().split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:203.0.113.7 is 203.0.113.7
    prefix = IPV6_PREFIX if address.version == 6 else 32
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


def limit_key(ip: Optional[str]) -> str:
    """"203.0.113.7", or "2001:db8:1:2::/64" for any address in that IPv6 /64."""
    network = network_of(ip)
    if network is None:
        return ip or "unknown"
    return str(network.network_address) if network.version == 4 else str(network)


def same_client(ip: Optional[str], other: Optional[str]) -> bool:
    """True when both addresses count as one client (the same IPv4, the same IPv6 /64)."""
    network = network_of(ip)
    candidate = network_of(other)
    return network is not None and candidate is not None and network == candidate
