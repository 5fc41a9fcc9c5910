"""lvs-agent: keepalived-compatible VRRP and IPVS health-checking agent.

This package is shared by the Ansible modules of the lvs.ha collection and by the agent that
runs on the directors (`python3 -m lvsagent`). It never imports Ansible.
"""

__version__ = "0.1.0"
