"""Test bed: hosts as network namespaces on a bridge, usable on the host and in the guest."""
