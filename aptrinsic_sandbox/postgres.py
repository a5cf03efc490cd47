"""A throwaway PostgreSQL 15 cluster for tests: its own folder, a free loopback port, password auth.

    with PostgresServer.start() as pg:
        url = pg.create_database("run_a")   # postgresql://aptrinsic:<password>@127.0.0.1:<port>/run_a

Debian's server binaries (``/usr/lib/postgresql/15/bin``; ``apt-get install postgresql-15``) are
used directly: no service, no system cluster. ``initdb`` refuses to run as root, so as root the
cluster is created and run as the ``postgres`` user, in a folder that user owns.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg2


def _bin() -> Path:
    """Debian's PostgreSQL 15 server binaries; APTRINSIC_PG_BIN points elsewhere (read when used)."""
    return Path(os.environ.get("APTRINSIC_PG_BIN", "/usr/lib/postgresql/15/bin"))


USER = "aptrinsic"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    folder: Path
    port: int
    password: str

    @classmethod
    def start(cls) -> PostgresServer:
        if not (_bin() / "initdb").exists():
            raise RuntimeError(f"No PostgreSQL 15 server in {_bin()}: apt-get install -y postgresql-15 (.ci/run does).")
        # Directly below the temp dir, not pytest's tmp_path: the postgres user must reach it, and
        # pytest's folders are private to root.
        folder = Path(tempfile.mkdtemp(prefix="aptrinsic-pg-"))
        data = folder / "data"
        password = secrets.token_hex(16)
        (folder / "pw").write_text(password)
        as_root = os.geteuid() == 0
        if as_root:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(folder / "pw", "postgres", "postgres")
        server = cls(folder, free_port(), password)
        # scram-sha-256 everywhere, also on the socket: dlt's credentials must carry a password, and the
        # password must be what lets them in.
        server._pg(
            "initdb", "-D", str(data), "-U", USER, "-A", "scram-sha-256", f"--pwfile={folder / 'pw'}", "-E", "UTF8"
        )
        (folder / "pw").unlink()
        options = f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
        server._pg("pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "-t", "60", "start")
        return server

    def _pg(self, tool: str, *args: str) -> None:
        command = [str(_bin() / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{tool} failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        return psycopg2.connect(self.url(database))

    def create_database(self, name: str) -> str:
        con = self.connect()
        con.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.url(name)

    def dagster_storage_env(self, database: str) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads for Dagster's storage, pointing at ``database`` here."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": database,
            "DAGSTER_PG_USER": USER,
            "DAGSTER_PG_PASSWORD": self.password,
        }

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
