"""Private, throwaway PostgreSQL and RabbitMQ servers for fault tests and the chaos script.

Fault tests stop and start the broker and the database; doing that to the machine's shared
servers would break every other test run on this machine (CI shares it). So each instance
here is its own server: its own data directory in a temp dir, its own free loopback ports,
its own RabbitMQ node name. `stop()` is a real outage (the port closes, connections drop),
`start()` brings the same data back, `destroy()` removes everything and may be called twice.

Usable from a pytest fixture and from a plain script (`bench/chaos.py`):

    rabbit = PrivateRabbitMQ(Path("/tmp")); rabbit.start(); ... rabbit.url ...; rabbit.destroy()
    pg = PrivatePostgres(Path("/tmp")); pg.start(); ... pg.url("a6pay") ...; pg.destroy()

Both run their server as its usual OS user (`rabbitmq`, `postgres`) through `runuser`, so
this module needs root, as the machine's own servers do. The RabbitMQ node shares the
`rabbitmq` user's Erlang cookie with the machine's node, which is how `rabbitmqctl` reaches
any node of that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["LocalServiceError", "PrivatePostgres", "PrivateRabbitMQ"]


class LocalServiceError(RuntimeError):
    """A private server could not be started, stopped or reached; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, *, open_: bool, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(port) == open_:
            return True
        time.sleep(0.1)
    return _port_open(port) == open_


def _private_dir(workdir: Path, prefix: str, user: str) -> Path:
    """A fresh directory owned by `user`, under `workdir` if that user can reach it there,
    else under the system temp dir (pytest's tmp_path, for one, is root-only)."""
    account = pwd.getpwnam(user)
    for base in (Path(workdir), Path(tempfile.gettempdir())):
        base.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
        os.chmod(path, 0o700)
        os.chown(path, account.pw_uid, account.pw_gid)
        reachable = subprocess.run(
            ["runuser", "-u", user, "--", "test", "-w", str(path)], capture_output=True,
            timeout=10,
        ).returncode == 0
        if reachable:
            return path
        shutil.rmtree(path, ignore_errors=True)
    raise LocalServiceError(f"no directory the {user} user can write to under {workdir} or /tmp")


def _run(args: list[str], *, env: dict | None = None, timeout: float, what: str) -> str:
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LocalServiceError(f"{what}: no answer within {timeout}s") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-2000:]
        raise LocalServiceError(f"{what} failed (exit {done.returncode}): {output}")
    return done.stdout


class PrivateRabbitMQ:
    """A RabbitMQ node of its own (RabbitMQ 3.10 from Debian), loopback only, no plugins.

    `stop()` is `rabbitmqctl stop_app`: the broker goes away (connections drop, the AMQP
    port closes) while the Erlang node stays, so `start()` (`start_app`) is quick and durable
    quorum queues and their messages survive.
    """

    BIN = Path("/usr/lib/rabbitmq/bin")
    USER = "rabbitmq"
    BOOT_SECONDS = 90
    APP_SECONDS = 60

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = _free_port()
        self.dist_port = _free_port()
        self.nodename = f"a6f{uuid.uuid4().hex[:10]}@localhost"
        self.dir: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._booted = False
        self._running = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        assert self.dir is not None
        home = pwd.getpwnam(self.USER).pw_dir  # its Erlang cookie lives there
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": home,
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(self.dir / "plugins-expand"),
            # our own config, not the machine's /etc/rabbitmq/rabbitmq.conf (its listener)
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _ctl(self, *args: str, timeout: float = 60) -> str:
        return _run(
            ["runuser", "-u", self.USER, "--", str(self.BIN / "rabbitmqctl"), "-q",
             "-n", self.nodename, *args],
            env=self._env(), timeout=timeout, what=f"rabbitmqctl {args[0]} ({self.nodename})",
        )

    def _prepare(self) -> None:
        self.dir = _private_dir(self.workdir, "a6rabbit-", self.USER)
        account = pwd.getpwnam(self.USER)
        files = {
            "enabled_plugins": "",  # no management plugin: nothing but AMQP on loopback
            "rabbitmq.conf": (
                f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
                "loopback_users.guest = true\n"
                "disk_free_limit.absolute = 50MB\n"
                "log.console = false\n"
                "log.file.level = warning\n"
            ),
            "advanced.config": "[].\n",
            "rabbitmq-env.conf": "",
        }
        for name, text in files.items():
            path = self.dir / name
            path.write_text(text)
            os.chown(path, account.pw_uid, account.pw_gid)

    def start(self) -> None:
        """Boot the node (first call) or start its RabbitMQ application again."""
        if self._running:
            return
        if not self._booted:
            self._prepare()
            self._boot()
        else:
            self._ctl("start_app", timeout=self.APP_SECONDS)
            self._ctl("await_startup", "--timeout", str(self.APP_SECONDS),
                      timeout=self.APP_SECONDS + 15)
        if not _wait_port(self.port, open_=True, seconds=30):
            raise LocalServiceError(f"RabbitMQ {self.nodename} up but port {self.port} closed")
        self._running = True

    def _boot(self) -> None:
        assert self.dir is not None
        # Foreground, in its own session, instead of `-detached`: we hold the process, so
        # destroy() can always end it (a detached node whose boot failed half-way would be
        # left running with nothing to find it by).
        log = open(self.dir / "server.out", "ab")  # noqa: SIM115 - closed right after Popen
        try:
            self._proc = subprocess.Popen(
                ["runuser", "-u", self.USER, "--", str(self.BIN / "rabbitmq-server")],
                env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()
        self._booted = True
        deadline = time.monotonic() + self.BOOT_SECONDS
        while not (self.dir / "rabbitmq.pid").exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise LocalServiceError(
                    f"RabbitMQ {self.nodename} did not boot\n{self._log_tail()}")
            time.sleep(0.2)
        try:
            # `wait` waits for the node behind the pid file to finish booting the app
            self._ctl("wait", str(self.dir / "rabbitmq.pid"), "--timeout",
                      str(self.BOOT_SECONDS), timeout=self.BOOT_SECONDS + 15)
        except LocalServiceError as exc:
            raise LocalServiceError(f"{exc}\n{self._log_tail()}") from None

    def stop(self) -> None:
        """A broker outage: the application stops, the node (and its data) stays."""
        if not self._booted or not self._running:
            return
        self._ctl("stop_app", timeout=self.APP_SECONDS)
        self._running = False
        if not _wait_port(self.port, open_=False, seconds=20):
            raise LocalServiceError(f"RabbitMQ {self.nodename} stopped but port still open")

    def destroy(self) -> None:
        """Stop the node and remove its files; safe to call again, or without start()."""
        if self._booted:
            with contextlib.suppress(LocalServiceError):
                self._ctl("stop", timeout=60)
            self._kill_leftover()
            self._booted = self._running = False
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _kill_leftover(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def _log_tail(self) -> str:
        if self.dir is None:
            return ""
        files = [self.dir / "server.out", *(self.dir / "log").glob("*")]
        texts = [p.read_text(errors="replace")[-1500:] for p in files if p.is_file()]
        return "\n".join(texts)


class PrivatePostgres:
    """A PostgreSQL cluster of its own: initdb into a temp dir, trust auth, loopback TCP on a
    free port and a private socket dir. `stop()` is `pg_ctl stop -m fast`: a real outage."""

    USER = "postgres"
    START_SECONDS = 60

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = _free_port()
        self.bin = self._find_bin()
        self.dir: Path | None = None
        self._initialised = False
        self._running = False

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @staticmethod
    def _find_bin() -> Path:
        versions = []
        for base in (Path("/usr/lib/postgresql"),):
            if base.is_dir():
                versions += [p for p in base.iterdir() if (p / "bin" / "initdb").exists()]
        if not versions:
            raise LocalServiceError("no PostgreSQL server binaries under /usr/lib/postgresql")
        return max(versions, key=lambda p: int(p.name) if p.name.isdigit() else 0) / "bin"

    def _as_postgres(self, *args: str, timeout: float, what: str) -> str:
        return _run(["runuser", "-u", self.USER, "--", *args], timeout=timeout, what=what,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"})

    def start(self) -> None:
        """initdb on the first call, then start the server and wait until it accepts."""
        if self._running:
            return
        if not self._initialised:
            self.dir = _private_dir(self.workdir, "a6pg-", self.USER)
            self._as_postgres(
                str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-A", "trust",
                "-U", "postgres", "-E", "UTF8", "--no-sync", "--locale=C.UTF-8",
                timeout=120, what="initdb",
            )
            (self.dir / "sock").mkdir()
            os.chown(self.dir / "sock", pwd.getpwnam(self.USER).pw_uid, -1)
            self._initialised = True
        assert self.dir is not None
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir / 'sock'}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        try:
            self._as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l",
                str(self.dir / "postgres.log"), "-w", "-t", str(self.START_SECONDS),
                "-o", options, "start", timeout=self.START_SECONDS + 15, what="pg_ctl start",
            )
        except LocalServiceError as exc:
            tail = (self.dir / "postgres.log").read_text(errors="replace")[-1500:]
            raise LocalServiceError(f"{exc}\n{tail}") from None
        if not _wait_port(self.port, open_=True, seconds=15):
            raise LocalServiceError(f"PostgreSQL started but port {self.port} is closed")
        self._running = True

    def stop(self) -> None:
        """A database outage: fast shutdown (sessions are cut), data kept for start()."""
        if not self._running:
            return
        self._pg_ctl_stop("fast")

    def destroy(self) -> None:
        """Stop the server and remove its files; safe to call again, or without start()."""
        if self._running:
            with contextlib.suppress(LocalServiceError):
                self._pg_ctl_stop("immediate")
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self._initialised = self._running = False

    def _pg_ctl_stop(self, mode: str) -> None:
        assert self.dir is not None
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w",
            "-t", "60", "stop", timeout=75, what=f"pg_ctl stop -m {mode}",
        )
        self._running = False
        _wait_port(self.port, open_=False, seconds=10)
