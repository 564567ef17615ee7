"""Every PromQL query of the pipeline board, run by a real Prometheus against real exporters.

Prometheus is Debian's ``prometheus`` package, which ``make setup`` installs when it runs as
root; where the binary is absent the tests fail with the command that installs it. It scrapes
two ``/metrics`` endpoints every second: the stream worker's registry (:mod:`streams.metrics`)
and the API's (:class:`api.runtime.Metrics`), served by prometheus-client as the worker and the
API serve them. A short simulated load moves those very metric objects (events in, dead letters,
batches, latencies, lag, requests); a worker and an API with Kafka behind them are not started
here, which keeps the test to seconds.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import start_http_server

from api.runtime import Metrics
from streams import metrics as worker
from tutorstream.grafana.boards import dashboards
from tutorstream.grafana.macros import expand_promql
from tutorstream.services import free_port

pytestmark = pytest.mark.integration

SCRAPE = timedelta(seconds=1)


def get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        data: dict[str, Any] = json.load(reply)
        return data


def load(api_metrics: Metrics, rng: random.Random) -> None:
    """One tick of simulated traffic on the worker's and the API's metrics."""
    worker.EVENTS_IN.labels("native").inc(rng.randint(50, 100))
    worker.EVENTS_IN.labels("xapi").inc(rng.randint(5, 20))
    worker.DLQ.labels(rng.choice(["invalid_json", "schema", "too_large"])).inc()
    worker.BATCH_SIZE.observe(rng.choice([32, 64, 128, 256]))
    worker.INFERENCE_LATENCY.observe(rng.uniform(0.001, 0.02))
    worker.SINK_LATENCY.observe(rng.uniform(0.005, 0.1))
    worker.EVENT_TO_INTERVENTION.observe(rng.uniform(0.02, 0.3))
    worker.CONSUMER_LAG.labels("lms.events.v1", "0").set(rng.randint(0, 500))
    worker.REDELIVERED.inc(rng.randint(0, 3))
    worker.LATE.inc(rng.randint(0, 1))
    worker.EXPIRED.labels("lms.events.v1", "0").inc(rng.randint(0, 2))
    worker.MODEL_INFO.labels("tutorstream-learner", "1", "CPUExecutionProvider").set(1)
    api_metrics.events_accepted.labels("xapi").inc(rng.randint(1, 10))
    api_metrics.events_rejected.labels("caliper").inc()
    api_metrics.latency.labels("POST", "/xapi/statements").observe(rng.uniform(0.001, 0.05))
    api_metrics.requests.labels("POST", "/xapi/statements", "200").inc()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("prometheus")
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "Prometheus is not installed; install it with `sudo apt-get install -y prometheus` "
            "(`make setup` does so when run as root)",
            pytrace=False,
        )
    api_metrics = Metrics()
    worker_port, api_port, prom_port = free_port(), free_port(), free_port()
    servers = [
        start_http_server(worker_port, "127.0.0.1", registry=worker.REGISTRY),
        start_http_server(api_port, "127.0.0.1", registry=api_metrics.registry),
    ]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "tutorstream-worker",
                        "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}],
                    },
                    {
                        "job_name": "tutorstream-api",
                        "static_configs": [{"targets": [f"127.0.0.1:{api_port}"]}],
                    },
                ],
            }
        )
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{prom_port}"
    try:
        rng = random.Random(3)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            load(api_metrics, rng)
            try:
                up = get(f"{url}/api/v1/query?query=up")["data"]["result"]
            except OSError:
                up = []
            if len(up) == 2 and all(r["value"][1] == "1" for r in up):
                break
            time.sleep(0.25)
        else:
            pytest.fail("Prometheus did not scrape both targets within 60 s")
        # Enough scrapes for rate() and histogram_quantile() over the board's windows: keep
        # loading until Prometheus holds eight samples of each target.
        enough = "min(count_over_time(up[1m])) >= 8"
        deadline = time.monotonic() + 60
        while not get(f"{url}/api/v1/query?query={urllib.parse.quote(enough)}")["data"]["result"]:
            if time.monotonic() > deadline:
                pytest.fail("Prometheus did not take eight scrapes of each target within 60 s")
            load(api_metrics, rng)
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def test_every_pipeline_panel_query_returns_series(prometheus: str) -> None:
    board = dashboards()["pipeline-health.json"]
    targets = [(p["title"], t) for p in board["panels"] for t in p["targets"]]
    assert len(targets) >= 12
    failures = []
    now = time.time()
    for title, target in targets:
        expr = expand_promql(
            target["expr"],
            interval=timedelta(seconds=1),
            scrape_interval=SCRAPE,
            time_range=timedelta(seconds=60),
        )
        params: dict[str, Any] = {"query": expr}
        if target.get("instant"):
            path = "query"
        else:
            path = "query_range"
            params.update(start=now - 6, end=now, step=1)
        answer = get(f"{prometheus}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        result = answer["data"]["result"] if answer.get("status") == "success" else []
        if not result:
            failures.append(f"{title}: {expr} -> {answer}")
            continue
        if path == "query_range" and not any(
            v[1] not in ("NaN", "+Inf", "-Inf") for series in result for v in series["values"]
        ):
            failures.append(f"{title}: {expr} -> only NaN")
    assert not failures, "\n".join(failures)


def test_model_panel_shows_version_and_provider(prometheus: str) -> None:
    board = dashboards()["pipeline-health.json"]
    model = next(p for p in board["panels"] if p["title"].startswith("Model in use"))
    query = urllib.parse.urlencode({"query": model["targets"][0]["expr"]})
    (series,) = get(f"{prometheus}/api/v1/query?{query}")["data"]["result"]
    assert series["metric"]["provider"] == "CPUExecutionProvider"
    assert series["metric"]["version"] == "1"
