"""VRRP (RFC 3768 / RFC 9568), wire-compatible with keepalived."""
