"""IPVS load balancing: health checkers, the reconciler and the engine that drives them.

The engine is imported from `lvs.engine`, not from here: the config layer reads the checker
registry (`lvs.checkers`), and the engine reads the config layer.
"""
