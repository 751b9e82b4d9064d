"""Real servers for the scaling tests: a throw-away PostgreSQL and a two-node local Ray cluster.

Both run on loopback ports in temp folders and are stopped afterwards whatever happens. PostgreSQL
refuses to run as root, so under root it runs as the ``postgres`` (or ``nobody``) user. A missing
binary or package is a skip with the reason (``.ci/run`` installs PostgreSQL so CI never skips).
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Worker processes of the cluster inherit these from ``ray start``: each task writes a marker file
#: (named after its node label) and sleeps, so a test can kill the worker node while it is busy.
MARK_DIR_ENV = "RADQC_TEST_TASK_MARKS"
NODE_LABEL_ENV = "RADQC_TEST_NODE"
TASK_SLEEP_ENV = "RADQC_TEST_TASK_SLEEP"
HEAD_IP, WORKER_IP = "127.0.0.1", "127.0.0.2"  # two loopback addresses: two distinct nodes on one host


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin_dir() -> Path | None:
    """Folder holding initdb + pg_ctl: PATH first, then Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file():
            return Path(d)
    return None


def _run_as_user() -> str | None:
    """The unprivileged user to run PostgreSQL as when we are root (None when we are not)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists for PostgreSQL")


def _pg(cmd: list[str], user: str | None, **kw) -> subprocess.CompletedProcess:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


@dataclass
class PgServer:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the test session (trust auth on 127.0.0.1, superuser ``postgres``)."""
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install '.[distributed]')")
    bindir = pg_bin_dir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb/pg_ctl) on PATH or in /usr/lib/postgresql/*/bin")
    user = _run_as_user()
    root = Path(tempfile.mkdtemp(prefix="radqc_pg_"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for p in (root, sock):
            os.chown(p, entry.pw_uid, entry.pw_gid)
    port = free_port()
    try:
        res = _pg(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"], user
        )
        if res.returncode != 0:
            pytest.fail(f"initdb failed: {res.stderr[-2000:]}")
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"]
        res = _pg(start, user, timeout=60)
        if res.returncode != 0:
            log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
            pytest.fail(f"pg_ctl start failed: {res.stderr[-1000:]} {log[-2000:]}")
        yield PgServer("127.0.0.1", port, "postgres")
    finally:
        if (data / "postmaster.pid").exists():
            _pg([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- Ray


@dataclass
class RayCluster:
    address: str
    marks: Path
    env: dict[str, str]
    temp_dir: Path
    worker: subprocess.Popen | None = None

    def start_worker_node(self) -> None:
        """(Re)start the worker node in its own process group and wait until both nodes are alive."""
        for p in self.marks.iterdir():
            p.unlink()
        cmd = [_ray_bin(), "start", "--address", self.address, "--node-ip-address", WORKER_IP]
        self.worker = subprocess.Popen(
            [*cmd, "--block", "--num-cpus", "1", "--disable-usage-stats"],
            env={**self.env, NODE_LABEL_ENV: "worker"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_nodes(self.address, 2, self.env)
        # Both nodes share this host's session folder, where `ray start` caches "this host's node IP"
        # (last writer wins); a driver started here attaches to the node with that IP. Point it back at
        # the head so that killing the worker node never takes the driver's own node with it.
        cache = self.temp_dir / "session_latest" / "node_ip_address.json"
        cache.write_text(json.dumps({"node_ip_address": HEAD_IP}))

    def kill_worker_node(self) -> None:
        """SIGKILL the worker node's raylet and every process it started (its process group)."""
        assert self.worker is not None
        try:
            os.killpg(self.worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.worker.wait(timeout=30)

    def wait_for_worker_task(self, timeout: float = 120) -> None:
        """Block until a task has started on the worker node (its marker file appears)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.name.startswith("worker-") for p in self.marks.iterdir()):
                return
            time.sleep(0.05)
        raise AssertionError("no task ever started on the worker node")


def _ray_bin() -> str:
    return str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """A Ray head (1 CPU) and a worker node (1 CPU) on loopback, each in its own process group.

    Stopped by killing those two process groups and any process left holding this cluster's temp
    folder, never with ``ray stop`` (which would also stop other Ray instances on the machine).
    """
    pytest.importorskip("ray", reason="ray not installed (pip install '.[distributed]')")
    marks = tmp_path_factory.mktemp("ray_marks")
    port = free_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **{MARK_DIR_ENV: str(marks), TASK_SLEEP_ENV: "0.4"})
    # a killed node is declared dead after ~1.5 s instead of the default ~15 s
    env.update(RAY_health_check_period_ms="500", RAY_health_check_failure_threshold="3")
    temp_dir = Path(tempfile.mkdtemp(prefix="rq_ray_"))  # short: Ray's socket paths live under it
    cluster = RayCluster(f"{HEAD_IP}:{port}", marks, env, temp_dir)
    head_cmd = [_ray_bin(), "start", "--head", "--block", "--node-ip-address", HEAD_IP, "--port", str(port)]
    head_cmd += ["--include-dashboard=false", "--num-cpus", "1", "--disable-usage-stats"]
    head: subprocess.Popen | None = None
    try:
        head = subprocess.Popen(
            [*head_cmd, "--temp-dir", str(temp_dir)],
            env={**env, NODE_LABEL_ENV: "head"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_nodes(cluster.address, 1, env)
        cluster.start_worker_node()
        yield cluster
    finally:
        for proc in (cluster.worker, head):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        _kill_leftovers(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _kill_leftovers(temp_dir: Path) -> None:
    """SIGKILL any process whose command line names this cluster's own temp folder."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(temp_dir) in cmdline and int(proc.name) != os.getpid():
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait_for_nodes(address: str, n: int, env: dict[str, str], timeout: float = 120) -> None:
    code = (
        "import ray,sys,time\n"
        "t=time.monotonic()\n"
        "while True:\n"
        "    try:\n"
        f"        ray.init(address={address!r}, logging_level='ERROR'); break\n"
        "    except Exception:  # the GCS is not up yet\n"
        f"        if time.monotonic()-t>{timeout}: raise\n"
        "        time.sleep(0.5)\n"
        f"while sum(x['Alive'] for x in ray.nodes())<{n}:\n"
        f"    time.sleep(0.2)\n"
        f"    if time.monotonic()-t>{timeout}: sys.exit('nodes did not join')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout + 60
    )
    if res.returncode != 0:
        pytest.fail(f"Ray cluster did not come up: {res.stderr[-2000:]}")
