"""Session fixtures shared by both systems' scaling tests (real PostgreSQL, a local Ray cluster)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import pg_server, ray_cluster  # noqa: E402,F401  (fixtures)
