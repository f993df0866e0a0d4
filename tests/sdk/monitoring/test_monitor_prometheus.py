"""A real Prometheus (Debian's, started on 127.0.0.1) scrapes the monitor's /metrics; its API answers the monitor's
own counts: calls, samples, errors, the latency histogram, drift flags, task metrics and the model's info."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit
from edgekit.errors import InputError


@pytest.fixture(scope="module")
def prometheus_for():
    from services import ServiceError
    from services_prometheus import start_prometheus

    started = []

    def start(port):
        try:
            started.append(start_prometheus([f"127.0.0.1:{port}"]))
        except ServiceError as e:
            pytest.fail(str(e), pytrace=False)
        return started[-1]

    yield start
    for p in started:
        p.stop()


def test_prometheus_scrapes_what_the_monitor_counted(color_model, color_profile, crops, prometheus_for):
    with edgekit.load(color_model) as m:
        mon = edgekit.monitor(m, color_profile, window=100, port=0)  # port 0: a free one, on 127.0.0.1
        try:
            x = crops(250, seed=7)
            x[100:200] = x[100:200, ..., ::-1]  # window 1 has swapped channels
            for i in range(0, 250, 5):
                out = mon.predict(x[i:i + 5])
                mon.feedback(mon.last_call_id, out["probs"].argmax(1) if i % 10 else np.zeros(5, int))
            for _ in range(3):
                with pytest.raises(InputError):
                    mon.predict(np.zeros((1, 5), np.float32))  # the runner refuses the shape
            with pytest.raises(InputError):
                mon.predict([x[:1], x[:1]])  # two arrays for a one-input model: refused before the runner
            snap = mon.snapshot()
            prom = prometheus_for(mon.port)
            prom.wait_for("edgekit_predict_calls_total", 54)
            assert snap["calls"] == 54
            (t,) = prom.targets()
            assert t["health"] == "up" and t["scrapeUrl"] == f"http://127.0.0.1:{mon.port}/metrics"
            q = lambda e: {tuple(sorted(r["metric"].items())): r["value"] for r in prom.query(e)}  # noqa: E731
            assert prom.query("edgekit_predict_samples_total")[0]["value"] == 250
            assert q("edgekit_predict_errors_total") == {
                (("__name__", "edgekit_predict_errors_total"), ("instance", f"127.0.0.1:{mon.port}"),
                 ("job", "edgekit"), ("type", "InputError")): 4}
            # the latency histogram: every successful call counted, buckets cumulative, the sum in seconds
            assert prom.query("edgekit_predict_latency_seconds_count")[0]["value"] == 50
            assert prom.query("edgekit_predict_latency_seconds_sum")[0]["value"] == pytest.approx(
                snap["latency_sum"], rel=1e-9)
            buckets = {r["metric"]["le"]: r["value"] for r in prom.query("edgekit_predict_latency_seconds_bucket")}
            assert buckets["+Inf"] == 50
            assert list(np.cumsum(snap["latency_counts"])) == [buckets[k] for k in sorted(
                buckets, key=lambda b: float(b))]
            p50 = prom.query("histogram_quantile(0.5, edgekit_predict_latency_seconds_bucket)")[0]["value"]
            assert 0 < p50 < 1.0
            # drift: window 1 (swapped channels) alerted; the last window (2) is clean
            assert prom.query("edgekit_monitor_windows_total")[0]["value"] == 2
            alerts = {r["metric"]["feature"]: r["value"] for r in prom.query("edgekit_drift_alerts_total")}
            assert alerts == snap["alerts"] and alerts.get("image:mean[0]") == 1
            flags = {r["metric"]["feature"]: r["value"] for r in prom.query("edgekit_drift_detected")}
            assert flags == {f: float(d["drift"]) for f, d in snap["drift"].items()}
            pv = {r["metric"]["feature"]: r["value"] for r in prom.query('edgekit_drift_p_value{test="ks"}')}
            assert pv["image:mean[0]"] == pytest.approx(snap["drift"]["image:mean[0]"]["p_value"], rel=1e-12)
            # task metrics from the labels: half the calls were labelled with their own prediction, half class 0
            acc = prom.query('edgekit_task_metric{metric="accuracy"}')[0]["value"]
            assert acc == pytest.approx(mon.metrics()["accuracy"])
            assert prom.query("edgekit_feedback_labels_total")[0]["value"] == 250
            (info,) = prom.query("edgekit_model_info")
            assert info["value"] == 1
            assert info["metric"]["model_sha256"] == mon.info["sha256"] and len(mon.info["sha256"]) == 64
            assert (info["metric"]["runtime"], info["metric"]["precision"], info["metric"]["device"]) == (
                "onnxruntime", "fp32", "CPU")
            # Prometheus' own view of the types (OpenMetrics families: a counter's family drops "_total")
            import json

            meta = {k: v[0]["type"] for k, v in json.loads(prom._get("/api/v1/metadata"))["data"].items()
                    if k.startswith("edgekit_")}
            assert {k for k, v in meta.items() if v == "counter"} == {
                "edgekit_predict_calls", "edgekit_predict_samples", "edgekit_predict_errors",
                "edgekit_monitor_windows", "edgekit_drift_alerts", "edgekit_feedback_labels",
                "edgekit_feedback_unmatched"}
            assert meta["edgekit_predict_latency_seconds"] == "histogram" and meta["edgekit_model"] == "info"
        finally:
            mon.close()
