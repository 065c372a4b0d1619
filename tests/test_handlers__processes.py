"""The issue's mail figure against real app processes: SIGKILL the worker at random moments while 200 mails go out.

"0 mails lost; any duplicate carries the same Message-ID as its first copy, and duplicates happen only for kills
inside the send window." The test process deploys tests/bpmn/mail_burst.bpmn and starts 200 instances while no app
runs, so that 200 `mail.send` jobs wait; then an app process (`create_app()` with its sweeper on, short service
lease) sends them to an aiosmtpd server in the test process, and is SIGKILLed and restarted at seeded random moments.

Marked `processes`; about 30 s per backend, most of it app start-ups. bench/mail_kill.py runs the same scenario
(run_mail_kill below) and prints the figures.
"""

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select

from engine import audit
from engine.engine import Engine
from engine.models import AuditEvent
from engine.models import Incident
from engine.models import Job
from engine.models import JobKind
from engine.models import ProcessInstance
from handlers import build_registry
from handlers.mail import message_id
from tests.factories import actor
from tests.factories import deploy
from tests.handler_support import Envelope
from tests.handler_support import SmtpServer
from tests.processes_support import AppProcess
from tests.processes_support import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(240)]

MAILS = 200
KILLS = 5
SEED = 20260314
GAPS = (0.3, 1.5)  # seconds from a healthy app to its SIGKILL, drawn per kill
HOLD = 0.02  # seconds the SMTP server holds back each 250 reply to DATA (see RecordingSmtpServer.keep)
LEASE = "PT2S"  # a killed worker's call comes back after 2 s, not the default 2 minutes
SWEEP_SECONDS = 0.2
FINISH_BOUND = 120.0  # seconds from the first spawn to the last completion: 25-35 s here (a restart costs 3-7 s)
SENDER = "sales@dealflow.example"
DANA = actor("dana", roles=("manager",), groups=("sales",))


@dataclass(frozen=True)
class Arrival:
    """One copy of a mail as the SMTP server got it: when, for whom, with which Message-ID."""

    at: datetime
    recipient: str
    message_id: str


class RecordingSmtpServer(SmtpServer):
    """The tests' aiosmtpd server, which also notes when each mail arrived and answers its DATA `hold` s late."""

    def __init__(self, hold: float = HOLD):
        super().__init__()
        self.hold = hold
        self._arrivals: list[Arrival] = []
        self._lock = threading.Lock()

    def keep(self, message: EmailMessage, envelope: Envelope) -> None:
        arrival = Arrival(datetime.now(UTC), str(message["To"]), str(message["Message-ID"]))
        super().keep(message, envelope)
        with self._lock:
            self._arrivals.append(arrival)
        # keep() runs on the server's event loop before the 250 reply goes out, so this sleep delays the reply: it
        # widens the window in which the server has the mail and the worker has not recorded it yet, so that a
        # random kill lands in it often enough to show duplicates. One worker sends one mail at a time, so
        # blocking the loop for a few ms slows nothing else.
        time.sleep(self.hold)

    @property
    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)


class MailApp(AppProcess):
    """An app process whose mail goes to `server`, with a short service lease so a killed call comes back soon."""

    def __init__(self, database_url: str, log_path: Path, server: SmtpServer):
        super().__init__(database_url, log_path, sweep_seconds=SWEEP_SECONDS)
        self.extra = {**server.config(DEALFLOW_MAIL_FROM=SENDER), "DEALFLOW_SERVICE_LEASE": LEASE}

    def environment(self) -> dict[str, str]:
        return super().environment() | self.extra


@dataclass
class Run:
    """One app process's turn: from its spawn to its SIGKILL (None for the last one, which finished the work)."""

    started: datetime
    killed: datetime | None = None


@dataclass
class MailKillResult:
    """What came of one scenario: the mails expected, the copies the server got, and the app runs that sent them."""

    expected: dict[str, str]  # recipient -> the Message-ID mail.send derives from the task's idempotency key
    arrivals: list[Arrival]
    runs: list[Run]
    started_at: datetime  # the first spawn
    finished_at: datetime | None  # when every instance was seen completed; None if not within FINISH_BOUND
    progress: str  # how far it got, for the failure message
    log_tail: str  # the last app's log

    @property
    def kills(self) -> int:
        return sum(run.killed is not None for run in self.runs)

    def copies(self) -> dict[str, list[Arrival]]:
        """Each recipient's copies, in the order they arrived."""
        copies: dict[str, list[Arrival]] = {}
        for arrival in sorted(self.arrivals, key=lambda a: a.at):
            copies.setdefault(arrival.recipient, []).append(arrival)
        return copies

    def duplicates(self) -> list[tuple[Arrival, Arrival]]:
        """(copy, next copy) of every mail that arrived more than once."""
        return [pair for copies in self.copies().values() for pair in zip(copies, copies[1:], strict=False)]

    def lost(self) -> list[str]:
        """Recipients who got no copy."""
        return sorted(set(self.expected) - {arrival.recipient for arrival in self.arrivals})

    def mislabelled(self) -> list[Arrival]:
        """Copies for someone unexpected, or without their task's Message-ID (a duplicate nobody could recognise)."""
        return [arrival for arrival in self.arrivals if self.expected.get(arrival.recipient) != arrival.message_id]

    def unexplained(self) -> list[tuple[Arrival, Arrival]]:
        """Duplicates that no kill inside the send window explains.

        Explained: the first copy is the last mail its run got to the server, that run ended in a SIGKILL (before
        the engine recorded the mail, or there would be no second copy), and a later run sent it again.
        """
        return [(first, again) for first, again in self.duplicates() if not self._killed_in_flight(first, again)]

    def _killed_in_flight(self, first: Arrival, again: Arrival) -> bool:
        index = self.run_of(first)
        killed = self.runs[index].killed
        return (killed is not None and first.at < killed and self.last_of_run(index) == first
                and self.run_of(again) > index)

    def run_of(self, arrival: Arrival) -> int:
        """The run that sent this copy: runs never overlap, as each is killed and reaped before the next spawns."""
        return max(i for i, run in enumerate(self.runs) if run.started <= arrival.at)

    def last_of_run(self, index: int) -> Arrival | None:
        sent = [a for a in self.arrivals if self.run_of(a) == index]
        return max(sent, key=lambda a: a.at) if sent else None

    def seconds_to_finish(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else float("nan")

    def resent_after(self) -> list[float]:
        """Seconds from each kill that caught a mail in flight to that mail's next copy (restart + lease)."""
        return [(again.at - self.runs[self.run_of(first)].killed).total_seconds()
                for first, again in self.duplicates() if self.runs[self.run_of(first)].killed is not None]


def describe(result: MailKillResult) -> str:
    return (f"mails={len(result.expected)} received={len(result.arrivals)} lost={len(result.lost())} "
            f"kills={result.kills} duplicates={len(result.duplicates())} (unexplained: "
            f"{len(result.unexplained())}, mislabelled: {len(result.mislabelled())}) "
            f"all done {result.seconds_to_finish():.1f} s after the first spawn")


def start_mail_burst(session_factory, count: int, script_pool=None) -> dict[str, str]:
    """Deploy mail_burst.bpmn and start `count` instances, each mailing its own address; recipient -> Message-ID."""
    # The app's registry: each job gets mail.send's retry policy, as if a user had started the instance there.
    engine = Engine(session_factory, script_pool=script_pool, handlers=build_registry({"DEALFLOW_MAIL_FROM": SENDER}))
    deploy(session_factory, "mail_burst.bpmn")
    recipients = {}
    for n in range(count):
        email = f"client{n:03d}@buyers.example"
        view = engine.start_instance("mail_burst", actor=DANA, business_key=f"DEAL-{n:03d}",
                                     variables={"email": email, "name": f"Client {n}", "deal": f"DEAL-{n:03d}"})
        recipients[view.id] = email
    with session_factory() as session:
        jobs = session.scalars(select(Job).where(Job.kind == JobKind.SERVICE)).all()
    domain = SENDER.rpartition("@")[2]
    return {recipients[job.instance_id]: message_id(f"dealflow-{job.instance_id}-{job.task_id}", domain)
            for job in jobs}


def progress(session_factory, count: int) -> tuple[bool, str]:
    """Whether all `count` instances completed with no service job left; a sentence saying how far it got."""
    with session_factory() as session:
        completed = session.scalar(select(func.count()).select_from(ProcessInstance)
                                   .where(ProcessInstance.status == "completed"))
        jobs = session.scalar(select(func.count()).select_from(Job).where(Job.kind == JobKind.SERVICE))
        incidents = session.scalar(select(func.count()).select_from(Incident))
    return (completed == count and jobs == 0,
            f"{completed} of {count} instances completed, {jobs} service jobs left, {incidents} incidents")


def kill_while_sending(apps: Iterator[AppProcess], session_factory, count: int, rng: random.Random, kills: int,
                       deadline: float) -> tuple[list[Run], datetime | None]:
    """Start an app, SIGKILL it `rng`-chosen moments after it is healthy, `kills` times; then let one finish.

    Returns the runs and when every instance was seen completed (None if not before `deadline`, a monotonic time).
    """
    runs: list[Run] = []
    for app in apps:
        app.spawn()
        runs.append(Run(app.started_at))
        app.wait_ready()
        if sum(run.killed is not None for run in runs) == kills:
            break
        time.sleep(rng.uniform(*GAPS))
        if progress(session_factory, count)[0]:
            break  # all sent already: a kill now would test nothing
        app.kill()  # SIGKILL, then reaped: the next run starts after this one is gone
        runs[-1].killed = datetime.now(UTC)
    done = wait_until(lambda: progress(session_factory, count)[0], max(deadline - time.monotonic(), 0.0), 0.05)
    return runs, datetime.now(UTC) if done else None


def run_mail_kill(database_url: str, session_factory, log_dir: Path, *, mails: int = MAILS, kills: int = KILLS,
                  seed: int = SEED, hold: float = HOLD, script_pool=None) -> MailKillResult:
    """The scenario: `mails` mail jobs waiting, an app sending them, SIGKILLed `kills` times; what arrived."""
    expected = start_mail_burst(session_factory, mails, script_pool)
    started: list[AppProcess] = []
    with RecordingSmtpServer(hold) as server:

        def apps() -> Iterator[AppProcess]:
            while True:
                started.append(MailApp(database_url, log_dir / f"mail-app-{len(started)}.log", server))
                yield started[-1]

        try:
            runs, finished_at = kill_while_sending(apps(), session_factory, mails, random.Random(seed), kills,
                                                   time.monotonic() + FINISH_BOUND)
        finally:
            for app in started:
                app.kill()
        arrivals = server.arrivals
    return MailKillResult(expected, arrivals, runs, runs[0].started, finished_at, progress(session_factory, mails)[1],
                          started[-1].log_tail())


def test_sigkilled_workers_lose_no_mail_and_repeat_only_the_one_in_flight(db_url, session_factory, tmp_path,
                                                                          script_pool):
    result = run_mail_kill(db_url, session_factory, tmp_path, script_pool=script_pool)
    print(f"\n{describe(result)}")
    assert result.finished_at is not None, (f"Not every mail was sent within {FINISH_BOUND} s of the first spawn: "
                                            f"{result.progress}.\nLast app's log:\n{result.log_tail}")
    # Every kill hit pending work (the loop stops killing once all is sent); with none, nothing below says much.
    assert result.kills >= 1 and len(result.runs) == result.kills + 1
    # 0 lost, and every copy carries its task's Message-ID: a duplicate is recognisable as the same mail.
    assert result.lost() == [] and result.mislabelled() == []
    # Duplicates only for kills inside the send window: one worker sends one mail at a time, so at most one per kill.
    assert result.unexplained() == [] and len(result.duplicates()) <= result.kills
    _assert_recorded_once(session_factory, result.expected)


def _assert_recorded_once(session_factory, expected: dict[str, str]) -> None:
    """The engine's side: each instance completed its mail once, recording the Message-ID that went out."""
    with session_factory() as session:
        assert audit.verify(session).ok
        completions = session.scalars(select(AuditEvent).where(AuditEvent.event == "service_completed")).all()
        statuses = session.execute(select(ProcessInstance.id, ProcessInstance.status)).all()
        assert session.scalar(select(func.count()).select_from(Incident)) == 0
    assert sorted(event.instance_id for event in completions) == sorted(i for i, _ in statuses)
    assert {status for _, status in statuses} == {"completed"} and len(statuses) == len(expected)
    recorded = {tuple(e.details["result"]["mail"]["to"]): e.details["result"]["mail"]["message_id"]
                for e in completions}
    assert recorded == {(recipient,): mid for recipient, mid in expected.items()}
