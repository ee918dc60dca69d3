"""pytest set-up of the package tests (tests/package/): the integration tests' helpers and fixtures
(tests/integration/conftest.py: ``workspace``, ``repo``, ...) without their suites.

These tests change the machine: test_package_deb.py installs the .deb into /usr (ctest runs it alone,
RUN_SERIAL), test_container.py builds and runs podman images. ctest labels: package, container.
"""

import importlib.util
import sys
from pathlib import Path

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(INTEGRATION))

_spec = importlib.util.spec_from_file_location("pgvault_integration_conftest", INTEGRATION / "conftest.py")
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)

# Not the integration run's own TMPDIR (start_run_tmpdir): podman copies images through $TMPDIR,
# and what these tests run writes nothing at the tools' default locations (no S3, configs from Repo).
pytest_configure = _shared.configure_harness
pytest_runtest_setup = _shared.pytest_runtest_setup
pytest_runtest_makereport = _shared.pytest_runtest_makereport
workspace = _shared.workspace
pgvault_tools = _shared.pgvault_tools
