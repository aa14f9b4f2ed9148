"""`gridtokenx cluster up|down`: the distributed topology on this machine, as real processes.

- one ledger process, `gridtokenx ledger serve-rpc`: the local Solana JSON-RPC server backed by
  LiteSVM (the cluster stand-in);
- N gateways (`gridtokenx serve`, stateless HTTP/WebSocket/MQTT) on consecutive ports;
- M workers (`gridtokenx worker`), one lease holder per duty, each exposing /metrics;
- shared engines the operator already runs: PostgreSQL, Redis, the MQTT broker.
Every process gets the same environment except its port; `deploy/` holds the same topology as a
compose file and systemd units. State (pids, URLs, logs, the JWT secret, the ledger authority)
lives in one directory, so `cluster down` stops exactly what `up` started.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer

STATE_FILE = "cluster.json"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/gridtokenx_cluster"

app = typer.Typer(
    help="Run the distributed topology locally (gateways, workers, ledger).", no_args_is_help=True
)


@dataclass
class Process:
    name: str
    pid: int
    url: str
    log: str


@dataclass(frozen=True)
class Topology:
    gateways: int
    workers: int
    base_port: int
    database_url: str
    redis_url: str
    mqtt_host: str
    mqtt_port: int
    mqtt_prefix: str
    events_prefix: str
    directory: Path

    def gateway_port(self, index: int) -> int:
        return self.base_port + index

    def worker_metrics_port(self, index: int) -> int:
        return self.base_port + 100 + index


def _secret(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(48)) -> str:
    """A secret kept 0600 in the cluster's directory, made on first use."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def shared_environment(
    topology: Topology, *, ledger_url: str, jwt_secret: str, wallet_key: str, authority_path: str
) -> dict[str, str]:
    """What every gateway and worker of the topology is started with (deploy/ mirrors it)."""
    return {
        "GRIDTOKENX_ENVIRONMENT": "distributed",
        "GRIDTOKENX_DATABASE_URL": topology.database_url,
        "GRIDTOKENX_REDIS_URL": topology.redis_url,
        "GRIDTOKENX_MQTT_BROKER_HOST": topology.mqtt_host,
        "GRIDTOKENX_MQTT_BROKER_PORT": str(topology.mqtt_port),
        "GRIDTOKENX_MQTT_TOPIC_PREFIX": topology.mqtt_prefix,
        "GRIDTOKENX_EVENTS_PREFIX": topology.events_prefix,
        "GRIDTOKENX_JWT_SECRET": jwt_secret,
        "GRIDTOKENX_WALLET_ENCRYPTION_KEY": wallet_key,  # custodial wallets: one key for every process
        "GRIDTOKENX_LEDGER_BACKEND": "rpc",
        "GRIDTOKENX_SOLANA_RPC_URL": ledger_url,
        "GRIDTOKENX_AUTHORITY_KEYPAIR_PATH": authority_path,
        "GRIDTOKENX_RUN_DUTIES": "false",
        "GRIDTOKENX_LOG_JSON": "true",
        "GRIDTOKENX_LOG_LEVEL": "info",
    }


WORKER_COMMAND = ["-m", "gridtokenx.cli", "worker"]


def ledger_command(authority: Path | str, port: int = 0, host: str = "127.0.0.1") -> list[str]:
    """`gridtokenx ledger serve-rpc`, the ledger authority (every process's fee payer) funded; it
    prints its URL as its first line (port 0 picks a free one)."""
    return [
        "-m", "gridtokenx.cli", "ledger", "serve-rpc",
        "--host", host, "--port", str(port), "--fund", str(authority),
    ]  # fmt: skip


def gateway_command(port: int | str, host: str = "127.0.0.1") -> list[str]:
    return ["-m", "gridtokenx.cli", "serve", "--host", host, "--port", str(port)]


def _spawn(name: str, args: list[str], env: dict[str, str], directory: Path, url: str) -> Process:
    log = directory / f"{name}.log"
    with log.open("ab") as out:
        child = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives `cluster up`; `cluster down` stops it
        )
    return Process(name, child.pid, url, str(log))


async def _prepare_database(url: str) -> None:
    """Create the database if needed and migrate it once, before any gateway starts."""
    import asyncpg

    from gridtokenx.core.db import Database
    from gridtokenx.core.migrate import upgrade
    from gridtokenx.core.settings import Settings

    async_url = Settings(database_url=url).effective_database_url
    if async_url.startswith("postgresql"):
        base, _, name = async_url.replace("postgresql+asyncpg://", "postgresql://").rpartition("/")
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
    db = Database(async_url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


def _wait_healthy(url: str, process: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(process.pid):
            raise RuntimeError(f"{process.name} exited during start-up; see {process.log}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not answer {url} within {timeout:.0f} s; see {process.log}")


def _wait_url(log: Path, process: Process, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.read_text().split("\n") if log.exists() else []
        urls = [line.strip() for line in lines[:-1] if line.startswith("http://")]  # whole lines only
        if urls:
            return urls[0]
        if not _alive(process.pid):
            raise RuntimeError(f"{process.name} exited during start-up; see {process.log}")
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not start within {timeout:.0f} s; see {process.log}")


def up(topology: Topology, *, timeout: float = 120.0) -> list[Process]:
    """Start the topology and return its processes once every gateway answers /health."""
    from gridtokenx.ledger.keypairs import load_or_create_keypair

    directory = topology.directory
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (directory / STATE_FILE).exists():
        raise RuntimeError(f"a cluster is already up in {directory}; run `gridtokenx cluster down` first")
    asyncio.run(_prepare_database(topology.database_url))
    load_or_create_keypair(directory / "authority.json")

    processes: list[Process] = []
    try:
        (directory / "ledger.log").unlink(missing_ok=True)
        ledger = _spawn("ledger", ledger_command(authority=directory / "authority.json"), {}, directory, "")
        processes.append(ledger)
        ledger.url = _wait_url(Path(ledger.log), ledger, timeout)
        env = shared_environment(
            topology,
            ledger_url=ledger.url,
            jwt_secret=_secret(directory / "jwt_secret"),
            wallet_key=_secret(directory / "wallet_key", lambda: secrets.token_hex(32)),
            authority_path=str(directory / "authority.json"),
        )
        for i in range(topology.gateways):
            port = topology.gateway_port(i)
            gateway = _spawn(
                f"gateway-{i + 1}",
                gateway_command(port),
                {**env, "GRIDTOKENX_DATA_DIR": str(directory / f"gateway-{i + 1}")},
                directory,
                f"http://127.0.0.1:{port}",
            )
            processes.append(gateway)
        for i in range(topology.workers):
            port = topology.worker_metrics_port(i)
            processes.append(
                _spawn(
                    f"worker-{i + 1}",
                    WORKER_COMMAND,
                    {
                        **env,
                        "GRIDTOKENX_DATA_DIR": str(directory / f"worker-{i + 1}"),
                        "GRIDTOKENX_METRICS_PORT": str(port),
                    },
                    directory,
                    f"http://127.0.0.1:{port}/metrics",
                )
            )
        _save(directory, processes)
        for process in processes:
            if process.name.startswith("gateway"):
                _wait_healthy(process.url + "/health", process, timeout)
            elif process.name.startswith("worker"):
                _wait_healthy(process.url, process, timeout)
    except BaseException:
        down(directory)
        raise
    return processes


def _save(directory: Path, processes: list[Process]) -> None:
    (directory / STATE_FILE).write_text(json.dumps([asdict(p) for p in processes], indent=2))


def load(directory: Path) -> list[Process]:
    path = directory / STATE_FILE
    if not path.exists():
        return []
    return [Process(**row) for row in json.loads(path.read_text())]


def _alive(pid: int) -> bool:
    """Alive and still one of ours (a recycled pid belongs to someone else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # an empty command line is a child between fork and exec (subprocess uses vfork): still ours
    return (not cmdline or b"gridtokenx" in cmdline) and stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop(process: Process, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    if not _alive(process.pid):
        return
    os.kill(process.pid, sig)
    deadline = time.monotonic() + timeout
    while _alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(process.pid):
        os.kill(process.pid, signal.SIGKILL)


def down(directory: Path) -> list[Process]:
    """Stop what `up` started in `directory`: gateways and workers first, the ledger last."""
    processes = load(directory)
    for process in reversed(processes):
        stop(process)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return processes


Dir = Annotated[Path, typer.Option(help="Where the cluster keeps its state, logs and secrets.")]


@app.command("up")
def up_command(
    gateways: Annotated[int, typer.Option(min=1, max=16)] = 2,
    workers: Annotated[int, typer.Option(min=0, max=16)] = 2,
    base_port: Annotated[int, typer.Option(help="First gateway's port; workers' metrics at +100.")] = 8100,
    database_url: Annotated[str, typer.Option(envvar="DATABASE_URL")] = DEFAULT_DATABASE,
    redis_url: Annotated[str, typer.Option(envvar="REDIS_URL")] = "redis://127.0.0.1:6379/0",
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    mqtt_prefix: str = "gridtokenx",
    events_prefix: str = "gridtokenx:events",
    directory: Dir = Path("var/cluster"),
) -> None:
    """Start PostgreSQL-backed gateways and workers sharing Redis, MQTT and an RPC ledger."""
    topology = Topology(
        gateways,
        workers,
        base_port,
        database_url,
        redis_url,
        mqtt_host,
        mqtt_port,
        mqtt_prefix,
        events_prefix,
        directory,
    )
    for process in up(topology):
        typer.echo(f"{process.name:<10} pid {process.pid:<8} {process.url}")
    typer.echo(f"logs in {directory}; stop with: gridtokenx cluster down --directory {directory}")


@app.command("down")
def down_command(directory: Dir = Path("var/cluster")) -> None:
    """Stop every process `cluster up` started."""
    stopped = down(directory)
    for process in stopped:
        typer.echo(f"stopped {process.name} (pid {process.pid})")
    if not stopped:
        typer.echo(f"no cluster is up in {directory}")
