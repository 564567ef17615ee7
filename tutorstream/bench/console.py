"""The console's benchmark: intervention-to-screen latency and page loads, with many tutors.

Tutors sign in through a real OpenID Provider (``tests/web/provider.mjs``), each opens the live
queue of their class, and interventions are stored and published as the stream worker does (the
row, then the topic record). A tutor's "screen" has an intervention when its card, with the
evidence, has been fetched after the live event, as the page's script does. Meanwhile every
tutor reloads the queue page. Baselines in the same run: a plain Kafka consumer of the topic (the
floor of any live path) and the JSON page of pending interventions with an API key (the same
rows without the evidence and the page).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from psycopg import sql

from api.console.runtime import class_segment
from api.delivery import PRODUCER_OVERRIDES
from api.feed import CONSUMER_OVERRIDES
from api.keys import create_key
from common.kafka import consumer_config, producer_config
from schemas.records import BehaviouralState, Intervention
from schemas.topics import TUTOR_INTERVENTIONS
from tutorstream import console_demo, services
from tutorstream.bench.api import BenchTarget, Latencies, api_server, statement_batches

Progress = Callable[[str], None]
EVENT_TO_SCREEN_P99_FLOOR_MS = 1000.0
PAGE_P99_FLOOR_MS = 300.0
_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


@dataclass(frozen=True)
class ConsolePlan:
    """What one run does.

    Attributes:
        tutors: tutors signed in at once.
        classes: classes they are spread over (tutors per class = tutors / classes).
        interventions: interventions published over the run.
        rate: interventions per second offered.
        page_loads: queue page loads per tutor over the run.
        events_per_s: xAPI statements per second offered to the same API meanwhile (batches
            of 100), as the LMS's load beside the console's.
    """

    tutors: int = 50
    classes: int = 10
    interventions: int = 400
    rate: float = 20.0
    page_loads: int = 10
    events_per_s: float = 2000.0

    @classmethod
    def smoke(cls) -> ConsolePlan:
        """A run of seconds, for CI."""
        return cls(
            tutors=6, classes=2, interventions=20, rate=5.0, page_loads=3, events_per_s=200.0
        )


def _sign_in(url: str, login: str, password: str) -> httpx.Cookies:
    with httpx.Client(base_url=url, follow_redirects=True, timeout=60) as http:
        page = http.get("/console/login")
        action = _FORM_ACTION.search(page.text)
        if action is None:
            raise RuntimeError(f"no login form at the provider (status {page.status_code})")
        done = http.post(
            str(page.url.join(action.group(1))), data={"login": login, "password": password}
        )
        if "Your classes" not in done.text:
            raise RuntimeError(f"{login} could not sign in (status {done.status_code})")
        return http.cookies


def _insert(conn: psycopg.Connection[Any], record: Intervention) -> None:
    conn.execute(
        "INSERT INTO interventions (time, intervention_id, event_id, learner_id, class_id, "
        "state, confidence, status, prompt_id, prompt, reason, model_version, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            record.created_at,
            record.intervention_id,
            record.event_id,
            record.learner_id,
            record.class_id,
            record.state.value,
            record.confidence,
            record.status,
            "gaming.1",
            record.prompt,
            "bench",
            "bench@1",
            record.created_at,
        ),
    )


def _publish(
    target: BenchTarget, classes: list[str], plan: ConsolePlan, born: dict[str, float]
) -> None:
    """Store then publish interventions at the planned rate; ``born`` gets their start times."""
    producer = Producer(producer_config(target.bootstrap, **PRODUCER_OVERRIDES))
    topic = f"{target.topic_prefix}{TUTOR_INTERVENTIONS.name}"
    producer.produce(topic, b"{}", b"warm-up")
    producer.flush(30)
    with psycopg.connect(target.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(target.schema)))
        # A learner's recent events give the evidence something to read, as in a real class.
        learners = [uuid.uuid4().hex * 2 for _ in range(60)]
        now = datetime.now(UTC)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO events (time, event_id, learner_id, class_id, item_id, event_type, "
                "correct, duration_s, source) VALUES (%s, %s, %s, %s, 'item', 'answer_submit', "
                "%s, %s, 'native')",
                [
                    (
                        now,
                        f"bench-{uuid.uuid4().hex}",
                        learner,
                        classes[n % len(classes)],
                        k % 3 == 0,
                        2.0 + k,
                    )
                    for n, learner in enumerate(learners)
                    for k in range(12)
                ],
            )
        started = time.monotonic()
        for index in range(plan.interventions):
            due = started + index / plan.rate
            while (wait := due - time.monotonic()) > 0:
                producer.poll(min(wait, 0.01))
            class_id = classes[index % len(classes)]
            learner = learners[index % len(learners)]
            born_at = time.time()
            record = Intervention.create(
                learner_id=learner,
                event_id=f"bench-{uuid.uuid4().hex}",
                state=BehaviouralState.GAMING,
                confidence=0.9,
                prompt="What have you tried on your own so far?",
                model_name="bench",
                model_version="1",
                created_at=datetime.now(UTC),
                class_id=class_id,
            )
            born[record.intervention_id] = born_at
            _insert(conn, record)
            producer.produce(topic, record.model_dump_json().encode(), learner.encode())
            producer.poll(0)
    producer.flush(30)


class _PlainConsumer:
    """The baseline: when a plain consumer of the topic sees each intervention."""

    def __init__(self, target: BenchTarget) -> None:
        self.target = target
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        topic = f"{self.target.topic_prefix}{TUTOR_INTERVENTIONS.name}"
        consumer = Consumer(
            consumer_config(
                self.target.bootstrap,
                f"bench-console-{uuid.uuid4().hex[:6]}",
                **CONSUMER_OVERRIDES,
            )
        )
        metadata = consumer.list_topics(topic, timeout=30)
        partitions = []
        for p in metadata.topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            partitions.append(TopicPartition(topic, p, high))
        consumer.assign(partitions)
        self.ready.set()
        try:
            while not self.stop.is_set():
                for message in consumer.consume(500, 0.2):
                    if message.error() is None and message.value() != b"{}":
                        record = orjson.loads(message.value() or b"{}")
                        self.seen.setdefault(record["intervention_id"], time.time())
        finally:
            consumer.close()


async def _tutor(
    url: str,
    cookies: httpx.Cookies,
    class_id: str,
    plan: ConsolePlan,
    born: dict[str, float],
    screens: Latencies,
    pages: Latencies,
    connected: asyncio.Event,
    counter: list[int],
    done: asyncio.Event,
) -> None:
    segment = class_segment(class_id)
    async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=60) as http:

        async def watch() -> None:
            async with http.stream("GET", f"/console/classes/{segment}/live") as stream:
                counter[0] += 1
                if counter[0] == plan.tutors:
                    connected.set()
                event = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "intervention":
                        ident = orjson.loads(line[6:])["intervention_id"]
                        card = await http.get(
                            f"/console/classes/{segment}/interventions/{ident}/card"
                        )
                        if card.status_code == 200 and ident in born:
                            screens.values.append(time.time() - born[ident])

        async def reload() -> None:
            await connected.wait()
            pause = plan.interventions / plan.rate / max(plan.page_loads, 1)
            for _ in range(plan.page_loads):
                await asyncio.sleep(pause * (0.5 + secrets.randbelow(1000) / 1000))
                started = time.perf_counter()
                page = await http.get(f"/console/classes/{segment}/")
                if page.status_code == 200:
                    pages.values.append(time.perf_counter() - started)

        watcher = asyncio.create_task(watch())
        await reload()
        await done.wait()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await watcher


async def _offer_events(
    url: str, token: str, plan: ConsolePlan, done: asyncio.Event
) -> dict[str, Any]:
    """Post statements at ``plan.events_per_s`` until ``done``; return what was accepted."""
    size = 100
    bodies = [orjson.dumps(batch) for batch in statement_batches(200, size, seed=11)]
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Experience-API-Version": "1.0.3",
        "Content-Type": "application/json",
    }
    accepted = failed = 0
    latencies = Latencies()
    interval = size / plan.events_per_s
    started = time.monotonic()

    # Four senders, each keeping to its share of the schedule: a slow answer delays its
    # sender, never the offered rate of the others.
    async def sender(offset: int, http: httpx.AsyncClient) -> None:
        nonlocal accepted, failed
        index = offset
        while not done.is_set():
            due = started + index * interval
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            body = bodies[index % len(bodies)]
            began = time.perf_counter()
            try:
                answer = await http.post("/xapi/statements", content=body)
            except httpx.HTTPError:
                failed += 1
            else:
                latencies.values.append(time.perf_counter() - began)
                if answer.status_code == 200:
                    accepted += size
                else:
                    failed += 1
            index += 4

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        await asyncio.gather(*(sender(n, http) for n in range(4)))
    elapsed = time.monotonic() - started
    return {
        "offered_per_s": plan.events_per_s,
        "accepted_per_s": round(accepted / elapsed, 1) if elapsed else 0.0,
        "failed_batches": failed,
        "batch_latency": latencies.summary(),
    }


async def _baseline_pages(url: str, token: str, classes: list[str], count: int) -> Latencies:
    found = Latencies()
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        for index in range(count):
            started = time.perf_counter()
            answer = await http.get(
                f"/classes/{classes[index % len(classes)]}/interventions",
                params={"status": "pending_review", "limit": 100},
            )
            if answer.status_code == 200:
                found.values.append(time.perf_counter() - started)
    return found


async def _measure(
    url: str,
    sessions: list[tuple[httpx.Cookies, str]],
    target: BenchTarget,
    classes: list[str],
    plan: ConsolePlan,
    admin_token: str,
    ingest_token: str,
    progress: Progress,
) -> dict[str, Any]:
    born: dict[str, float] = {}
    screens, pages = Latencies(), Latencies()
    connected, done = asyncio.Event(), asyncio.Event()
    counter = [0]
    tutors = [
        asyncio.create_task(
            _tutor(url, cookies, class_id, plan, born, screens, pages, connected, counter, done)
        )
        for cookies, class_id in sessions
    ]
    await asyncio.wait_for(connected.wait(), 60)
    plain = _PlainConsumer(target)
    await asyncio.to_thread(plain.ready.wait, 60)
    progress(
        f"{plan.tutors} tutors watching {plan.classes} classes; publishing, with "
        f"{plan.events_per_s:g} statements/s offered to the API"
    )
    load_done = asyncio.Event()
    load = asyncio.create_task(_offer_events(url, ingest_token, plan, load_done))
    started = time.monotonic()
    await asyncio.to_thread(_publish, target, classes, plan, born)
    per_class = plan.tutors // plan.classes
    expected = plan.interventions * per_class
    deadline = time.monotonic() + 30
    while len(screens.values) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    load_done.set()
    offered = await load
    done.set()
    await asyncio.gather(*tutors, return_exceptions=True)
    plain.stop.set()
    plain.thread.join(timeout=10)
    baseline_pages = await _baseline_pages(url, admin_token, classes, max(20, len(pages.values)))
    return {
        "elapsed_s": round(elapsed, 2),
        "interventions_per_s_offered": plan.rate,
        "event_to_screen": screens.summary(),
        "expected_screens": expected,
        "lost": expected - len(screens.values),
        "baseline_plain_consumer": Latencies(
            [plain.seen[i] - born[i] for i in born if i in plain.seen]
        ).summary(),
        "page_load": pages.summary(),
        "baseline_json_page_with_api_key": baseline_pages.summary(),
        "learning_events": offered,
    }


def run_console_bench(
    target: BenchTarget, plan: ConsolePlan, progress: Progress, work: Path
) -> dict[str, Any]:
    """Run the measurement against a fresh API process and provider; return the report.

    Raises:
        RuntimeError: when the provider cannot run here (no Node, no ``make setup``).
    """
    reason = console_demo.unavailable()
    if reason is not None:
        raise RuntimeError(f"the console benchmark needs the OpenID Provider: {reason}")
    classes = [f"bench-class-{k:02d}" for k in range(plan.classes)]
    users = {
        f"tutor-{i:03d}": {
            "password": secrets.token_urlsafe(8),
            "name": f"Tutor {i}",
            "groups": [classes[i % plan.classes]],
        }
        for i in range(plan.tutors)
    }
    api_port, op_port = services.free_port(), services.free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    client_secret = secrets.token_urlsafe(32)
    provider = console_demo.run_provider(
        work / "provider.json",
        op_port,
        users,  # type: ignore[arg-type]
        [
            {
                "client_id": "bench-console",
                "client_secret": client_secret,
                "redirect_uris": [f"{api_url}/console/callback"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }
        ],
        work / "logs" / "provider.log",
    )
    try:
        with psycopg.connect(target.database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("SET search_path TO {}, public").format(sql.Identifier(target.schema))
            )
            admin = create_key(conn, "bench admin", ["admin"]).token
            ingest = create_key(conn, "bench ingest", ["ingest"]).token
        extra = {
            "TUTORSTREAM_CONSOLE__OIDC_ISSUER": f"http://127.0.0.1:{op_port}",
            "TUTORSTREAM_CONSOLE__OIDC_CLIENT_ID": "bench-console",
            "TUTORSTREAM_CONSOLE__OIDC_CLIENT_SECRET": client_secret,
            "TUTORSTREAM_CONSOLE__COOKIE_SECURE": "false",
        }
        with api_server(target, work / "logs" / "api.log", api_port, extra) as url:
            progress(f"API at {url}; signing in {plan.tutors} tutors at the provider")
            sessions = [
                (_sign_in(url, login, str(user["password"])), classes[i % plan.classes])
                for i, (login, user) in enumerate(users.items())
            ]
            measured = asyncio.run(
                _measure(url, sessions, target, classes, plan, admin, ingest, progress)
            )
    finally:
        provider.terminate()
        with contextlib.suppress(Exception):
            provider.wait(10)
    screen, page = measured["event_to_screen"], measured["page_load"]
    return {
        "benchmark": "console",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "plan": asdict(plan),
        **measured,
        "floors": {
            "event_to_screen_p99_ms": {
                "floor": EVENT_TO_SCREEN_P99_FLOOR_MS,
                "measured": screen["p99_ms"],
                "met": screen["p99_ms"] < EVENT_TO_SCREEN_P99_FLOOR_MS and measured["lost"] == 0,
            },
            "page_load_p99_ms": {
                "floor": PAGE_P99_FLOOR_MS,
                "measured": page["p99_ms"],
                "met": page["p99_ms"] < PAGE_P99_FLOOR_MS,
            },
        },
    }


def format_table(report: dict[str, Any]) -> str:
    """Return the report as a text table."""
    rows = [("measurement", "count", "p50 ms", "p99 ms", "note")]
    for name, key, note in (
        ("intervention to screen (card fetched)", "event_to_screen", f"lost {report['lost']}"),
        ("  baseline: topic to a plain consumer", "baseline_plain_consumer", "no API"),
        ("queue page load", "page_load", "HTML with evidence and names"),
        ("  baseline: pending JSON with an API key", "baseline_json_page_with_api_key", ""),
    ):
        found = report[key]
        rows.append(
            (name, f"{found['count']:,}", f"{found['p50_ms']:.1f}", f"{found['p99_ms']:.1f}", note)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    plan = report["plan"]
    lines.append("")
    events = report["learning_events"]
    lines.append(
        f"{plan['tutors']} tutors over {plan['classes']} classes; {plan['interventions']} "
        f"interventions offered at {plan['rate']:g}/s; xAPI statements offered at "
        f"{events['offered_per_s']:g}/s, accepted {events['accepted_per_s']:,.0f}/s "
        f"(batch p99 {events['batch_latency']['p99_ms']:.0f} ms, "
        f"{events['failed_batches']} failed)"
    )
    for name, floor in report["floors"].items():
        verdict = "met" if floor["met"] else "NOT met"
        lines.append(f"floor {name}: {floor['floor']:g}, measured {floor['measured']:g}: {verdict}")
    return "\n".join(lines)
