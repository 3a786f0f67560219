"""A real single-node Slurm for the tests, started on this machine.

Debian's ``slurmctld``, ``slurmd``, ``slurmdbd`` (job accounting: ``sacct`` is how submitit
follows its jobs, and how a cancelled job is told from a running one) with MariaDB as its
database, and ``munge`` for authentication; installed with apt-get when missing (as root),
configured in a folder of the test's with free localhost ports, and stopped afterwards.
``start`` raises ``Unavailable`` with the reason where this cannot be done (not root, no
apt-get, a package or a daemon that does not come up); the test skips with that reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "slurmdbd", "munge", "mariadb-server"]
TOOLS = ["slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "sacctmgr", "scancel", "squeue", "sinfo",
         "munged", "mariadbd", "mariadb-install-db", "mariadb"]


class Unavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


def _tool(name: str) -> str:
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if Path(d, name).exists():
            return str(Path(d, name))
    return shutil.which(name) or name


def install() -> None:
    if all(shutil.which(t) or Path("/usr/sbin", t).exists() for t in TOOLS):
        return
    if os.geteuid() != 0:
        raise Unavailable("Slurm is not installed and installing it needs root")
    if not shutil.which("apt-get"):
        raise Unavailable("Slurm is not installed and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], env=env)
    if r.returncode != 0:
        _run(["apt-get", "update", "-qq"], env=env)
        r = _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], env=env)
    if r.returncode != 0:
        raise Unavailable(f"apt-get could not install {' '.join(PACKAGES)}: {r.stderr.strip()[-300:]}")


def _wait(check, what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise Unavailable(f"{what} did not come up within {timeout:.0f} s")


class Cluster:
    """A running single-node Slurm; ``env`` is what a client (sbatch, run_all.sh) needs."""

    def __init__(self, folder: Path):
        self.dir = folder
        self.pids: list[Path] = []
        self.env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}

    def start(self) -> "Cluster":
        install()
        d, host = self.dir, socket.gethostname()
        for sub in ("state", "spool", "log", "run", "db"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        ports = {k: _free_port() for k in ("ctld", "slurmd", "dbd", "mysql")}
        # munge: one daemon per machine, shared; its key comes with the package
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        if _run(["pgrep", "-x", "munged"]).returncode != 0:
            r = _run([_tool("munged"), "--force"])
            if r.returncode != 0:
                raise Unavailable(f"munged did not start: {r.stderr.strip()[-300:]}")
        # the accounting database
        r = _run([_tool("mariadb-install-db"), "--user=root", f"--datadir={d / 'db'}",
                  "--auth-root-authentication-method=normal"])
        if r.returncode != 0:
            raise Unavailable(f"mariadb-install-db failed: {r.stderr.strip()[-300:]}")
        sock = d / "mysql.sock"
        subprocess.Popen([_tool("mariadbd"), "--user=root", f"--datadir={d / 'db'}", f"--socket={sock}",
                          f"--port={ports['mysql']}", "--bind-address=127.0.0.1",
                          f"--pid-file={d / 'run' / 'mysqld.pid'}", f"--log-error={d / 'log' / 'mysqld.log'}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.pids.append(d / "run" / "mysqld.pid")
        _wait(lambda: sock.exists(), "MariaDB")
        sql = ("CREATE DATABASE slurm_acct_db; CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'dolos'; "
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")
        r = _run([_tool("mariadb"), f"--socket={sock}", "-uroot", "-e", sql])
        if r.returncode != 0:
            raise Unavailable(f"creating the accounting database failed: {r.stderr.strip()[-300:]}")
        (d / "slurmdbd.conf").write_text(
            f"DbdHost=localhost\nDbdPort={ports['dbd']}\nSlurmUser=root\n"
            "StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
            f"StoragePort={ports['mysql']}\nStorageUser=slurm\nStoragePass=dolos\nStorageLoc=slurm_acct_db\n"
            f"LogFile={d / 'log' / 'slurmdbd.log'}\nPidFile={d / 'run' / 'slurmdbd.pid'}\n")
        (d / "slurmdbd.conf").chmod(0o600)
        (d / "slurm.conf").write_text(
            f"ClusterName=dolostest\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root\n"
            f"SlurmctldPort={ports['ctld']}\nSlurmdPort={ports['slurmd']}\n"
            f"StateSaveLocation={d / 'state'}\nSlurmdSpoolDir={d / 'spool'}\n"
            f"SlurmctldPidFile={d / 'run' / 'slurmctld.pid'}\nSlurmdPidFile={d / 'run' / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={d / 'log' / 'slurmctld.log'}\nSlurmdLogFile={d / 'log' / 'slurmd.log'}\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\n"
            "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=localhost\nAccountingStoragePort={ports['dbd']}\n"
            "SchedulerType=sched/backfill\nMaxArraySize=1000\n"
            f"NodeName={host} CPUs={os.cpu_count()} State=UNKNOWN\n"
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n")
        env = self.env
        for daemon, pid in (("slurmdbd", "slurmdbd.pid"),):
            r = _run([_tool(daemon)], env=env)
            self.pids.append(d / "run" / pid)
            if r.returncode != 0:
                raise Unavailable(f"{daemon} did not start: {r.stderr.strip()[-300:]}")
        _wait(lambda: _run([_tool("sacctmgr"), "-i", "add", "cluster", "dolostest"], env=env).returncode == 0,
              "slurmdbd", 30)
        for daemon, pid in (("slurmctld", "slurmctld.pid"), ("slurmd", "slurmd.pid")):
            r = _run([_tool(daemon)], env=env)
            self.pids.append(d / "run" / pid)
            if r.returncode != 0:
                raise Unavailable(f"{daemon} did not start: {r.stderr.strip()[-300:]}")
        _wait(lambda: "idle" in _run([_tool("sinfo"), "-h", "-o", "%T"], env=env).stdout, "the Slurm node")
        return self

    def stop(self) -> None:
        for pid_file in reversed(self.pids):
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            except (OSError, ValueError):
                pass
