"""A replicated data tier on this machine, for the failover test and `make chaos-ha`: a
PostgreSQL primary with a synchronous standby, and three RabbitMQ nodes joined into one
cluster. Every server has its own ports, folders and node name (ops/local_services.py);
the machine's own PostgreSQL and RabbitMQ are never touched. Needs root, as they run as
their usual OS users through `runuser`.

    pg = PostgresPair(workdir); pg.start()        # node 0 primary, node 1 its sync standby
    pg.url("a6pay")                                # multi-host, target_session_attrs=read-write
    pg.kill_primary(); pg.promote_standby()        # a failover
    pg.rebuild_old_primary()                       # the old primary follows the new one

    rabbit = RabbitCluster(workdir); rabbit.start()
    rabbit.url                                     # every node, comma-separated
    rabbit.stop_leader_of(queue)                   # the node leading a quorum queue goes
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from testkit.local_services import (
    LocalServiceError,
    PrivatePostgres,
    PrivateRabbitMQ,
    _free_port,
    _private_dir,
    _run,
    _wait_port,
)

__all__ = ["PostgresNode", "PostgresPair", "RabbitCluster"]

# Zero loss needs the standby to have each commit before the client hears of it
# (synchronous_commit=on with a synchronous standby). fsync stays off: these servers die
# by signal, never with the machine, and the shared CPU is better spent on the tests.
_COMMON = ("-c listen_addresses=127.0.0.1 -c wal_level=replica -c max_wal_senders=10"
           " -c wal_log_hints=on -c hot_standby=on -c synchronous_commit=on -c fsync=off"
           " -c max_connections=200 -c wal_keep_size=256MB")


class PostgresNode:
    """One PostgreSQL server: its data folder, port and name (its `cluster_name`, which a
    standby's WAL receiver reports as its application_name)."""

    USER = "postgres"
    START_SECONDS = 60

    def __init__(self, root: Path, name: str, bin_dir: Path):
        self.root, self.name, self.bin = root, name, bin_dir
        self.port = _free_port()
        self.data = root / name
        self.sock = root / f"{name}-sock"
        self.running = False

    def _pg(self, tool: str, *args: str, timeout: float = 120) -> str:
        return _run(["runuser", "-u", self.USER, "--", str(self.bin / tool), *args],
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
                    timeout=timeout, what=f"{tool} ({self.name})")

    def conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def initdb(self) -> None:
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                 "--no-sync", "--locale=C.UTF-8")

    def base_backup_of(self, primary: PostgresNode) -> None:
        """A fresh copy of the primary that follows it (-R writes standby.signal and
        primary_conninfo)."""
        shutil.rmtree(self.data, ignore_errors=True)
        self._pg("pg_basebackup", "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
                 "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "--no-sync")

    def start(self, *options: str) -> None:
        if self.running:
            return
        self.sock.mkdir(exist_ok=True)
        os.chown(self.sock, pwd.getpwnam(self.USER).pw_uid, -1)
        settings = " ".join((_COMMON, f"-p {self.port} -k {self.sock}",
                             f"-c cluster_name={self.name}", *options))
        try:
            self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / f"{self.name}.log"),
                     "-w", "-t", str(self.START_SECONDS), "-o", settings, "start",
                     timeout=self.START_SECONDS + 15)
        except LocalServiceError as exc:
            raise LocalServiceError(f"{exc}\n{self.log_tail()}") from None
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash: no shutdown checkpoint, sessions cut at once."""
        if not self.running:
            return
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop",
                 timeout=75)
        self.running = False
        _wait_port(self.port, open_=False, seconds=10)

    def promote(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote", timeout=75)

    def sql(self, statement: str) -> str:
        return self._pg("psql", "-X", "-qAt", "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", "postgres", "-d", "postgres", "-c", statement, timeout=30)

    def log_tail(self) -> str:
        path = self.root / f"{self.name}.log"
        return path.read_text(errors="replace")[-1500:] if path.exists() else ""


class PostgresPair:
    """Two nodes: one primary, one synchronous standby; after a failover they swap."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.root: Path | None = None
        self.nodes: list[PostgresNode] = []
        self.primary: PostgresNode | None = None
        self.standby: PostgresNode | None = None

    def start(self) -> None:
        self.root = _private_dir(self.workdir, "a6pgha-", PostgresNode.USER)
        bin_dir = PrivatePostgres._find_bin()
        self.nodes = [PostgresNode(self.root, f"pg_{n}", bin_dir) for n in ("a", "b")]
        self.primary, self.standby = self.nodes
        self.primary.initdb()
        self.primary.start(*self._primary_options())
        self.standby.base_backup_of(self.primary)
        self.standby.start()
        self.wait_synchronous()

    def _primary_options(self) -> tuple[str, ...]:
        # on the command line, not in postgresql.auto.conf: a base backup copies
        # that file, and a promoted copy would then wait for a standby named itself
        assert self.standby is not None
        return (f"-c synchronous_standby_names={self.standby.name}",)

    def url(self, database: str = "postgres") -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    def wait_synchronous(self, seconds: float = 30) -> None:
        """Until the primary reports its standby as synchronous (commits wait for it)."""
        assert self.primary is not None and self.standby is not None
        deadline = time.monotonic() + seconds
        query = ("SELECT sync_state FROM pg_stat_replication"
                 f" WHERE application_name = '{self.standby.name}'")
        while time.monotonic() < deadline:
            if self.primary.sql(query).strip() == "sync":
                return
            time.sleep(0.2)
        raise LocalServiceError(f"{self.standby.name} never became a synchronous standby")

    def kill_primary(self) -> None:
        assert self.primary is not None
        self.primary.stop("immediate")

    def promote_standby(self) -> None:
        """The standby becomes the primary, alone until the old one is rebuilt."""
        assert self.primary is not None and self.standby is not None
        self.standby.promote()
        self.primary, self.standby = self.standby, self.primary

    def rebuild_old_primary(self) -> None:
        """The dead old primary (now `standby`) rebuilt from a fresh base backup of the new
        primary, which then waits for it on every commit again. What the old primary wrote
        past the fork (WAL no client was told was committed: the standby had confirmed
        every acknowledged commit) is dropped with its old folder."""
        assert self.primary is not None and self.standby is not None
        self.standby.base_backup_of(self.primary)
        self.standby.start()
        # the running primary takes the name by reload: it was started as a standby
        self.primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{self.standby.name}'")
        self.primary.sql("SELECT pg_reload_conf()")
        self.wait_synchronous()
        # and forgets it in its own config, so a later base backup does not copy it to the
        # node that may be promoted next (its command line says it while it lives)
        self.primary.sql("ALTER SYSTEM RESET synchronous_standby_names")

    def destroy(self) -> None:
        for node in self.nodes:
            if node.running:
                with contextlib.suppress(LocalServiceError):
                    node.stop("immediate")
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


class ClusterNode(PrivateRabbitMQ):
    """A private RabbitMQ node that can join another's cluster."""

    @property
    def running(self) -> bool:
        return self._running

    def join(self, seed: ClusterNode) -> None:
        self._ctl("stop_app")
        self._ctl("reset")
        self._ctl("join_cluster", seed.nodename, timeout=120)
        self._ctl("start_app", timeout=self.APP_SECONDS)
        self._ctl("await_startup", "--timeout", str(self.APP_SECONDS),
                  timeout=self.APP_SECONDS + 15)
        if not _wait_port(self.port, open_=True, seconds=30):
            raise LocalServiceError(f"{self.nodename} joined but its port is closed")

    def queues(self, vhost: str = "/") -> list[dict]:
        """name, leader and members of every queue in the vhost."""
        text = self._ctl("list_queues", "-p", vhost, "name", "leader", "members",
                         "--formatter", "json")
        return json.loads(text or "[]")


class RabbitCluster:
    """Three nodes, one cluster; `url` names them all (AMQP_URL's list form)."""

    SIZE = 3

    def __init__(self, workdir: Path):
        self.nodes = [ClusterNode(workdir) for _ in range(self.SIZE)]

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self) -> None:
        with ThreadPoolExecutor(self.SIZE) as boot:  # the nodes boot at once
            list(boot.map(lambda node: node.start(), self.nodes))
        seed, *others = self.nodes
        for node in others:
            node.join(seed)

    def node_named(self, nodename: str) -> ClusterNode:
        return next(node for node in self.nodes if node.nodename == nodename)

    def leader_of(self, queue: str, vhost: str = "/") -> ClusterNode:
        running = next(node for node in self.nodes if node.running)
        for row in running.queues(vhost):
            if row["name"] == queue:
                return self.node_named(row["leader"])
        raise LocalServiceError(f"no queue {queue} in vhost {vhost}")

    def members_of(self, queue: str, vhost: str = "/") -> list[str]:
        running = next(node for node in self.nodes if node.running)
        return next(row["members"] for row in running.queues(vhost) if row["name"] == queue)

    def destroy(self) -> None:
        def destroy(node: ClusterNode) -> None:
            with contextlib.suppress(Exception):
                node.destroy()

        with ThreadPoolExecutor(self.SIZE) as stop:  # each node's stop waits on itself only
            list(stop.map(destroy, self.nodes))
