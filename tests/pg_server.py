"""A real PostgreSQL server for the store tests: initdb + pg_ctl in a temporary directory, on loopback.

Debian's ``postgresql`` package puts the server binaries under /usr/lib/postgresql/<v>/bin
(``.ci/run`` installs it). PostgreSQL refuses to run as root, so under root the server runs as
the ``postgres`` (or ``nobody``) user. Each test asks for a fresh database of its own.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from comfy_client import free_port


def find_bindir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def missing_reason() -> str | None:
    """One line saying why PostgreSQL tests cannot run here, or None."""
    if find_bindir() is None:
        return "NO POSTGRESQL: PostgreSQL store tests skipped (apt-get install postgresql; .ci/run does this)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "NO PSYCOPG: PostgreSQL store tests skipped (pip install 'psycopg[binary]'; .ci/run does this)"
    return None


class PostgresServer:
    def __init__(self):
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="pakati-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "pakati"
        self._run_as = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self._run_as = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)
            os.chmod(self.root, 0o700)

    def _demote(self):
        if self._run_as is not None:
            os.setgid(self._run_as.pw_gid)
            os.setuid(self._run_as.pw_uid)

    def _cmd(self, *args: str) -> None:
        env = dict(os.environ, LC_ALL="C", LANG="C")
        subprocess.run(
            list(args), check=True, preexec_fn=self._demote, cwd=self.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    def start(self) -> None:
        try:
            self._cmd(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
            opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
            self._cmd(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "-t", "60", "start"
            )
        except subprocess.CalledProcessError as e:
            log = (self.root / "log").read_text(errors="replace") if (self.root / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {e.stdout.decode(errors='replace')}\n{log}") from e

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if self.data.exists():
                self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
