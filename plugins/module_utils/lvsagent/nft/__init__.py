"""nftables: the second data plane (lvs_data_plane nftables), for kernels without IPVS.

ruleset (the agent's table as JSON commands, and back), client (libnftables' JSON API on a
worker thread), plane (the engine's data plane seam on top of both).
"""
