"""Dealflow over HTTP: the real app under gunicorn, driven by keep-alive clients with a bearer token."""

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.common import ACTOR
from bench.common import FORMS
from bench.common import GROUP
from bench.common import PROCESS_KEY
from bench.common import ROOT
from bench.common import variables
from bench.engine_runs import Database
from crm.tokens import issue_token
from crm.users import create_user
from engine.db import utcnow

GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"


def make_token(db: Database, username: str = ACTOR.username) -> str:
    """Create the bench user (a sales manager) and a bearer token for it, straight in the database."""
    with db.session_factory() as session, session.begin():
        create_user(session, username, password=None, roles=("manager",), groups=(GROUP,))
        token, _ = issue_token(session, username, ttl=timedelta(hours=6), now=utcnow())
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """gunicorn serving wsgi:app with `workers` workers on a free port; stop() ends it (and only it)."""

    process: subprocess.Popen
    port: int
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(db_url: str, workers: int, log: Path, threads: int = 2) -> Server:
    """Start gunicorn as `make serve` does (scheduler on in every worker) and wait until it answers."""
    port = free_port()
    env = {**os.environ, "DEALFLOW_DATABASE_URL": db_url, "DEALFLOW_WORKERS": str(workers),
           "DEALFLOW_THREADS": str(threads), "DEALFLOW_BIND": f"127.0.0.1:{port}", "DEALFLOW_SCHEDULER": "on",
           "DEALFLOW_LOG_LEVEL": "warning", "DEALFLOW_SECRET_KEY": "bench-only"}
    with open(log, "w") as out:
        process = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/openapi.json")
            if conn.getresponse().status == 200:
                conn.close()
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"gunicorn did not answer within 60 s; see {log}")


class Client:
    """One keep-alive connection with a bearer token; reconnects when the server closes it."""

    def __init__(self, port: int, token: str):
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body: dict) -> dict:
        payload = json.dumps(body)
        for attempt in range(2):
            try:
                self.conn.request("POST", path, body=payload, headers=self.headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionError, http.client.CannotSendRequest):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        if response.status >= 300:
            raise RuntimeError(f"POST {path} answered {response.status}: {data[:300]!r}")
        return json.loads(data)

    def run_instance(self, i: int) -> None:
        """Start one bench instance and complete its 3 user tasks, each task id taken from the last answer."""
        view = self.post("/api/v1/process-instances", {"process_key": PROCESS_KEY, "business_key": f"HTTP-{i}",
                                                       "variables": variables(i)})
        while view["open_tasks"]:
            task = view["open_tasks"][0]
            view = self.post(f"/api/v1/tasks/{task['id']}/complete", {"data": FORMS[task["bpmn_id"]]})
        if view["status"] != "completed":
            raise RuntimeError(f"instance {view['id']} ended {view['status']}")

    def close(self) -> None:
        self.conn.close()


def run_sequential(client: Client, count: int, first: int) -> None:
    for i in range(first, first + count):
        client.run_instance(i)


def run_load(port: int, token: str, clients: int, seconds: float, first: int) -> tuple[int, float]:
    """`clients` threads run instances back to back for `seconds`; returns (instances completed, elapsed)."""
    done = [0] * clients
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker(n: int) -> None:
        client = Client(port, token)
        i = first + n * 1_000_000
        try:
            while not stop.is_set():
                client.run_instance(i)
                i += 1
                done[n] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed; the first: {errors[0]!r}")
    return sum(done), elapsed
