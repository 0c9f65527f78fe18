"""Starting the running `dlcb` command again in another environment: for settings a library
reads once when the process starts (the OpenMP wait policy, glibc's malloc tunables), applied by
an exec of the same command line before any measurement."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def restart_command(env: dict) -> NoReturn:
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "dlcb_kernels", *sys.argv[1:]], env)
    raise AssertionError("unreachable: execve returns only by raising")
