import atexit
import os
import shutil
import sys
import tempfile

import numpy as np
import pytest

# .ci/sanitize runs these tests with the ASan/UBSan runtime preloaded: torch, not built for it,
# is kept out (its comparisons skip as they do where torch is not installed).
if os.environ.get("DLCB_SANITIZED"):
    sys.modules["torch"] = None

# Runs the tests start keep their device peaks here, not in the user's cache (see peak_store.py);
# subprocesses inherit it. Removed when the run ends (one was left in /tmp for every run).
os.environ["DLCB_CACHE_DIR"] = tempfile.mkdtemp(prefix="dlcb-test-cache-")
atexit.register(shutil.rmtree, os.environ["DLCB_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_configure(config):
    config.addinivalue_line("markers", "mpi: runs dlcb under mpiexec (skipped without mpi4py or a launcher)")
