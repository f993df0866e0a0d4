"""Prometheus exposition of a Monitor (prometheus-client, the `monitor` extra; imported only here).

A custom collector reads the monitor's own counters at scrape time, so a predict call never touches
prometheus-client. Names follow Prometheus' conventions: the ``edgekit_`` prefix, base units (seconds, bytes),
``_total`` for counters, one ``edgekit_model_info`` with the model's identity. Labels are bounded sets (feature names,
test names, error types): never a call or a sample.

    edgekit_predict_calls_total                     counter    calls (failed ones included)
    edgekit_predict_samples_total                   counter    samples (rows) predicted
    edgekit_predict_errors_total{type}              counter    calls that raised, by exception type
    edgekit_predict_latency_seconds                 histogram  wall time of the model's predict
    edgekit_monitor_windows_total                   counter    windows closed (each tested for drift)
    edgekit_drift_statistic{feature,test}           gauge      last window's KS D or chi-squared
    edgekit_drift_p_value{feature,test}             gauge      its p-value
    edgekit_drift_psi{feature}                      gauge      last window's PSI
    edgekit_drift_detected{feature}                 gauge      1 when the last window drifted on the feature
    edgekit_drift_alerts_total{feature}             counter    windows that drifted on the feature
    edgekit_feedback_labels_total                   counter    labels matched to a call
    edgekit_feedback_unmatched_total                counter    feedback for unknown (or expired) calls
    edgekit_task_metric{metric}                     gauge      accuracy, precision, recall, F1, ROC-AUC on labels
    edgekit_sample_log_bytes                        gauge      bytes of the sample log on disk
    edgekit_sample_log_records_total                counter    samples written to the sample log
    edgekit_sample_log_dropped_total                counter    samples the rate limit left out
    edgekit_model_info{model_sha256,runtime,...}    info       the deployed model
"""

from __future__ import annotations

from edgekit.errors import MissingDependencyError


def _client():
    try:
        import prometheus_client  # noqa: F401
        from prometheus_client import core
    except ImportError:
        raise MissingDependencyError("prometheus-client", "monitor", "serve the monitor's Prometheus metrics") \
            from None
    return core


class MonitorCollector:
    def __init__(self, monitor):
        self.monitor = monitor

    def describe(self):
        return []  # collected at scrape time only

    def collect(self):
        from .monitor import LATENCY_BUCKETS

        core = _client()
        m = self.monitor
        s = m.snapshot()
        C, G = core.CounterMetricFamily, core.GaugeMetricFamily
        info = core.InfoMetricFamily("edgekit_model", "The deployed model the monitor watches.")
        i = m.info
        info.add_metric([], {"model_sha256": i["sha256"], "model_path": i["path"], "format": i["format"],
                             "runtime": i["runtime"], "precision": i["precision"], "threads": str(i["threads"]),
                             "device": i["device"]})
        yield info
        yield C("edgekit_predict_calls", "Predict calls, failed ones included.", value=s["calls"])
        yield C("edgekit_predict_samples", "Samples (batch rows) predicted.", value=s["samples"])
        err = C("edgekit_predict_errors", "Predict calls that raised, by exception type.", labels=["type"])
        for t, n in sorted(s["errors"].items()):
            err.add_metric([t], n)
        yield err
        cum, buckets = 0, []
        for edge, n in zip(list(LATENCY_BUCKETS) + [float("inf")], s["latency_counts"]):
            cum += n
            buckets.append(("+Inf" if edge == float("inf") else repr(float(edge)), cum))
        h = core.HistogramMetricFamily("edgekit_predict_latency_seconds", "Wall time of the model's predict.",
                                       unit="")
        h.add_metric([], buckets, s["latency_sum"])
        yield h
        yield C("edgekit_monitor_windows", "Windows closed and tested for drift.", value=s["windows"])
        st = G("edgekit_drift_statistic", "Last window's drift statistic (KS D, chi-squared).",
               labels=["feature", "test"])
        pv = G("edgekit_drift_p_value", "Last window's drift p-value.", labels=["feature", "test"])
        ps = G("edgekit_drift_psi", "Last window's population stability index.", labels=["feature"])
        dd = G("edgekit_drift_detected", "1 when the last window drifted on the feature.", labels=["feature"])
        for f, d in sorted(s["drift"].items()):
            st.add_metric([f, d["test"]], d["statistic"])
            pv.add_metric([f, d["test"]], d["p_value"])
            ps.add_metric([f], d["psi"])
            dd.add_metric([f], 1.0 if d["drift"] else 0.0)
        yield from (st, pv, ps, dd)
        al = C("edgekit_drift_alerts", "Windows that drifted on the feature.", labels=["feature"])
        for f, n in sorted(s["alerts"].items()):
            al.add_metric([f], n)
        yield al
        matched, unmatched = s["feedback"]
        yield C("edgekit_feedback_labels", "Labels matched to an earlier call.", value=matched)
        yield C("edgekit_feedback_unmatched", "Feedback for unknown or expired calls.", value=unmatched)
        tm = G("edgekit_task_metric", "Task metric over the last labelled samples.", labels=["metric"])
        for k, v in sorted((s["metrics"] or {}).items()):
            if isinstance(v, (int, float)) and v is not None and k != "labels":
                tm.add_metric([k], float(v))
        yield tm
        sl = s["samples_log"]
        if sl is not None:
            yield G("edgekit_sample_log_bytes", "Bytes of the sample log on disk.", value=sl["bytes"])
            yield C("edgekit_sample_log_records", "Samples written to the sample log.", value=sl["records"])
            yield C("edgekit_sample_log_dropped", "Samples the rate limit left out.", value=sl["dropped"])


def registry_for(monitor):
    _client()
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(MonitorCollector(monitor))
    return reg


def serve(registry, port: int, addr: str = "127.0.0.1"):
    """Start the /metrics endpoint; returns (server, bound port)."""
    _client()
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server, server.server_address[1]


def text(monitor) -> str:
    """The exposition text of one scrape (what /metrics answers)."""
    _client()
    from prometheus_client import generate_latest

    return generate_latest(monitor.registry).decode()
