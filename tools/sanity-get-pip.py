"""Offline stand-in for get-pip.py, which ansible-test downloads to bootstrap its sanity venvs.

The download host is unreachable here; the maintainers' suggested fix (ansible/ansible#77304) is
to pre-seed the cache with a script that installs pip another way: ensurepip, then pip from PyPI.
"""

import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}

pip_arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *pip_arguments])
