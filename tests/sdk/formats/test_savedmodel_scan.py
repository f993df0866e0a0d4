"""A SavedModel is a program: its graph is scanned for file, network and Python ops before anything loads it.

Hostile SavedModels are built here by code: a resource initializer that writes a file (runs on `inspect`), a
signature that reads a private file (its length came back from `run`), an initializer that writes a checkpoint
outside the model, a signature calling Python. Without trust they are refused (exit 2, `error:` + `hint:`, nothing
written); with trust they load. An ordinary Keras export (which holds SaveV2/RestoreV2 in its saver functions) loads
as before, and the wire-level reader is checked against TensorFlow's own parse of every model here.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from typer.testing import CliRunner

import edgekit
from edgekit.errors import ModelFileError, TrustRequiredError

SECRET = "not-for-models-12345"  # 20 bytes


def check_savedmodel(*a, **k):
    from edgekit.formats.savedmodel_scan import check_savedmodel

    return check_savedmodel(*a, **k)


def scan_savedmodel(*a, **k):
    from edgekit.formats.savedmodel_scan import scan_savedmodel

    return scan_savedmodel(*a, **k)


def denied(*a, **k):
    from edgekit.formats.savedmodel_scan import denied

    return denied(*a, **k)


def _cli(*args):
    from edgekit.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _refused(res, *fragments):
    """Exit 2 with one `error:` line naming every fragment and a `hint:` line naming --trust-code."""
    info = f"exit {res.exit_code}\n{res.output[-2000:]}\n{res.exception!r}"
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), info
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    hints = [ln for ln in res.stderr.splitlines() if ln.startswith("hint: ")]
    assert len(errors) == 1 and len(hints) == 1, info
    for f in fragments:
        assert f in errors[0], info
    assert "--trust-code" in hints[0], info
    return errors[0]


# ------------------------------------------------------------------------------------------ hostile models
def _save(module, path, serve):
    import tensorflow as tf

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def _writer(path, target):
    """A resource whose initializer (run by tf.saved_model.load) writes ``target``."""
    import tensorflow as tf

    class Writer(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self):
            tf.io.write_file(target, "pwned")
            tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=1.0)

    m = tf.Module()
    m.res, m.v = Writer(), tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(x):
        return {"y": x * m.v}

    m.serve = serve
    _save(m, path, serve)


def _checkpoint_writer(path, target):
    """An initializer that writes a checkpoint (SaveV2) to ``target``: not the saver's own use of SaveV2."""
    import tensorflow as tf

    class Saver(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self):
            tf.raw_ops.SaveV2(prefix=target, tensor_names=["x"], shape_and_slices=[""], tensors=[tf.constant(1.0)])
            tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=1.0)

    m = tf.Module()
    m.res, m.v = Saver(), tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(x):
        return {"y": x * m.v}

    m.serve = serve
    _save(m, path, serve)


def _reader(path, target):
    """A signature that returns the length of ``target``."""
    import tensorflow as tf

    m = tf.Module()
    m.v = tf.Variable(1.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(x):
        n = tf.cast(tf.strings.length(tf.io.read_file(target)), tf.float32)
        return {"y": x * 0.0 + n * m.v}

    m.serve = serve
    _save(m, path, serve)


def _branch(path, target):
    """ReadFile inside a tf.cond branch and a tf.switch_case branch: functions reached through attributes."""
    import tensorflow as tf

    m = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(x):
        def read():
            return tf.cast(tf.strings.length(tf.io.read_file(target)), tf.float32)
        a = tf.cond(tf.reduce_sum(x) > 0, read, lambda: 0.0)
        b = tf.switch_case(tf.cast(tf.reduce_sum(x), tf.int32) % 2, [read, lambda: 1.0])
        return {"y": x * 0.0 + a + b}

    m.serve = serve
    _save(m, path, serve)


def _python(path):
    import tensorflow as tf

    m = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(x):
        return {"y": tf.numpy_function(lambda a: a + 1, [x], tf.float32)}

    m.serve = serve
    _save(m, path, serve)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from model_factory import keras_models

    try:
        from edgekit._offline import vendor_telemetry_off
    except ImportError:  # a tree without the telemetry guard
        from contextlib import nullcontext as vendor_telemetry_off

    with vendor_telemetry_off():  # importing openvino sends a usage event otherwise (the openvino backend is used)
        import openvino  # noqa: F401

    d = tmp_path_factory.mktemp("savedmodels")
    out = {"dir": d, "secret": d / "secret.txt", "written": d / "written.txt", "ckpt": d / "stolen_ckpt"}
    out["secret"].write_text(SECRET)
    keras_models()["cnn"].export(str(d / "keras_sm"), format="tf_saved_model", verbose=False)
    out["keras"] = d / "keras_sm"
    _writer(d / "writer_sm", str(out["written"]))
    _checkpoint_writer(d / "ckpt_sm", str(out["ckpt"]))
    _reader(d / "reader_sm", str(out["secret"]))
    _python(d / "python_sm")
    _branch(d / "branch_sm", str(out["secret"]))
    for k in ("writer", "ckpt", "reader", "python", "branch"):
        out[k] = d / f"{k}_sm"
    assert not out["written"].exists() and not list(d.glob("stolen_ckpt*"))  # saving ran no initializer
    return out


def _edited(src, dest, edit):
    """A copy of the SavedModel ``src`` whose proto was changed by ``edit(meta_graph)`` (TensorFlow's classes)."""
    import shutil

    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(src, dest)
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((dest / "saved_model.pb").read_bytes())
    edit(sm.meta_graphs[0])
    (dest / "saved_model.pb").write_bytes(sm.SerializeToString())
    return dest


# ------------------------------------------------------------------------------------------------ refusals
def test_inspect_refuses_an_initializer_that_writes_a_file(models):
    res = _cli("inspect", models["writer"])
    _refused(res, "WriteFile", "__inference__initializer", "writer_sm")
    assert not models["written"].exists()
    res = _cli("inspect", models["writer"], "--backend", "openvino")
    _refused(res, "WriteFile")
    assert not models["written"].exists()


def test_run_refuses_a_signature_that_reads_a_file(models):
    res = _cli("run", models["reader"], "--random", "--json")
    _refused(res, "ReadFile", "serve")
    assert SECRET not in res.output and str(float(len(SECRET))) not in res.output


def test_checkpoint_write_outside_the_saver_is_refused(models):
    with pytest.raises(TrustRequiredError, match="SaveV2.*initializer"):
        edgekit.load(models["ckpt"])
    assert not list(models["dir"].glob("stolen_ckpt*"))


def test_python_call_is_refused(models):
    with pytest.raises(TrustRequiredError, match="PyFunc.*runs Python code"):
        edgekit.load(models["python"])


def test_file_op_in_a_branch_function_is_refused(models):
    scan = scan_savedmodel(models["branch"])
    assert {f.op for f in scan.findings} == {"ReadFile"}
    assert len({f.where for f in scan.findings}) == 2  # the cond branch and the switch_case branch
    _refused(_cli("run", models["branch"], "--random", "--json"), "ReadFile")


@pytest.mark.parametrize("edge", ["keras_to_tflite", "keras_to_onnx", "keras_to_openvino", "keras_to_coreml"])
def test_converters_refuse_before_loading(models, edge, tmp_path):
    """Edge.convert (every edge's entry point) runs the one trust check before the edge opens the SavedModel."""
    from edgekit.converters.base import Artifact, ConvertOptions
    from edgekit.converters.planner import load_edges

    e = load_edges()[edge]
    with pytest.raises(TrustRequiredError, match="WriteFile"):
        e.convert(Artifact(models["writer"], edgekit.Format.SAVEDMODEL), ConvertOptions(), tmp_path)
    assert not models["written"].exists()
    with pytest.raises(TrustRequiredError, match="WriteFile"):
        edgekit.convert(models["writer"], "tflite", output_dir=tmp_path / "out", verify=False)
    assert not models["written"].exists()


def test_trust_code_loads_them(models):
    """With trust the scan steps aside: the initializer really writes, and the signature really reads."""
    res = _cli("run", models["reader"], "--random", "--json", "--trust-code")
    assert res.exit_code == 0, res.output
    with edgekit.load(models["reader"], trust_code=True) as m:
        y = m.predict(np.zeros((2, 3), np.float32))["y"]
    assert np.all(y == len(SECRET))
    with edgekit.load(models["writer"], trust_code=True) as m:
        assert m.inputs[0].name == "x"
    assert models["written"].read_text() == "pwned"
    models["written"].unlink()


# --------------------------------------------------------------------------- an ordinary Keras export loads
KERAS_OPS = {"AssignVariableOp", "BiasAdd", "Const", "Conv2D", "DisableCopyOnRead", "Identity", "MatMul",
             "MergeV2Checkpoints", "NoOp", "Pack", "Placeholder", "ReadVariableOp", "Relu", "Reshape", "RestoreV2",
             "SaveV2", "Select", "Shape", "ShardedFilename", "Softmax", "Squeeze", "StatefulPartitionedCall",
             "StaticRegexFullMatch", "StridedSlice", "StringJoin", "VarHandleOp", "VarIsInitializedOp"}


def test_keras_export_is_accepted(models):
    t0 = time.perf_counter()
    scan = scan_savedmodel(models["keras"])
    ms = (time.perf_counter() - t0) * 1e3
    assert scan.findings == [], scan.findings
    ops = set().union(*scan.ops.values())
    assert ops <= KERAS_OPS | {"Squeeze"}, ops - KERAS_OPS
    assert {"SaveV2", "RestoreV2", "MergeV2Checkpoints"} <= ops  # in the saver functions, where they are allowed
    saver = {f for f, o in scan.ops.items() if o & {"SaveV2", "RestoreV2"}}
    assert all("_traced_save" in f or "_traced_restore" in f for f in saver), saver
    check_savedmodel(models["keras"], trust_code=False)
    for backend in ("keras", "openvino"):
        with edgekit.load(models["keras"], backend=backend) as m:
            y = m.predict(np.zeros((1, 8, 8, 1), np.float32))
            assert abs(float(next(iter(y.values())).sum()) - 1.0) < 1e-4  # softmax
    print(f"scan of the Keras SavedModel: {ms:.2f} ms")


def _add_node(fn_name, op, inputs=()):
    def edit(mg):
        fn = next(f for f in mg.graph_def.library.function if fn_name in f.signature.name)
        n = fn.node_def.add()
        n.name, n.op = "planted", op
        n.input.extend(inputs)
    return edit


def test_saver_functions_allow_only_their_own_checkpoint_ops(models, tmp_path):
    bad_restore = _edited(models["keras"], tmp_path / "restore_saves", _add_node("_traced_restore", "SaveV2"))
    with pytest.raises(TrustRequiredError, match="SaveV2.*_traced_restore"):
        check_savedmodel(bad_restore, trust_code=False)
    bad_save = _edited(models["keras"], tmp_path / "save_reads", _add_node("_traced_save", "ReadFile"))
    with pytest.raises(TrustRequiredError, match="ReadFile.*_traced_save"):
        check_savedmodel(bad_save, trust_code=False)

    def name_saver_in_object_graph(mg):  # the loader may call anything the object graph names
        save = next(f.signature.name for f in mg.graph_def.library.function if "_traced_save" in f.signature.name)
        mg.object_graph_def.concrete_functions[save].SetInParent()
    called = _edited(models["keras"], tmp_path / "saver_called", name_saver_in_object_graph)
    with pytest.raises(TrustRequiredError, match="SaveV2|MergeV2Checkpoints"):
        check_savedmodel(called, trust_code=False)
    check_savedmodel(called, trust_code=True)

    def call_saver_from_signature(mg):  # a signature function calling the saver's save function
        save = next(f.signature.name for f in mg.graph_def.library.function if "_traced_save" in f.signature.name)
        fn = next(f for f in mg.graph_def.library.function if "signature_wrapper" in f.signature.name)
        n = fn.node_def.add()
        n.name, n.op = "planted", "StatefulPartitionedCall"
        n.attr["f"].func.name = save
    hijacked = _edited(models["keras"], tmp_path / "saver_hijacked", call_saver_from_signature)
    with pytest.raises(TrustRequiredError, match="SaveV2|MergeV2Checkpoints"):
        check_savedmodel(hijacked, trust_code=False)

    def call_saver_from_a_case_branch(mg):  # the same through a list of functions (Case's branches)
        save = next(f.signature.name for f in mg.graph_def.library.function if "_traced_save" in f.signature.name)
        fn = next(f for f in mg.graph_def.library.function if "signature_wrapper" in f.signature.name)
        n = fn.node_def.add()
        n.name, n.op = "planted", "Case"
        n.attr["branches"].list.func.add().name = save
    hijacked = _edited(models["keras"], tmp_path / "saver_case", call_saver_from_a_case_branch)
    with pytest.raises(TrustRequiredError, match="SaveV2|MergeV2Checkpoints"):
        check_savedmodel(hijacked, trust_code=False)


def test_asset_path_outside_the_model_is_refused_even_with_trust(models, tmp_path):
    def edit(mg):
        a = mg.asset_file_def.add()
        a.filename = "../../secret.txt"
        a.tensor_info.name = "Const:0"
    bad = _edited(models["keras"], tmp_path / "asset_escape", edit)
    for trust in (False, True):
        with pytest.raises(ModelFileError, match="asset"):
            check_savedmodel(bad, trust_code=trust)


def test_corrupt_and_text_savedmodels(models, tmp_path):
    d = tmp_path / "trunc"
    import shutil

    shutil.copytree(models["keras"], d)
    pb = d / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="trunc"):
        check_savedmodel(d, trust_code=False)
    # a text-format SavedModel is scanned too (through TensorFlow's text parser)
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    t = tmp_path / "text_sm"
    shutil.copytree(models["reader"], t)
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((t / "saved_model.pb").read_bytes())
    (t / "saved_model.pb").unlink()
    (t / "saved_model.pbtxt").write_text(text_format.MessageToString(sm))
    with pytest.raises(TrustRequiredError, match="ReadFile"):
        check_savedmodel(t, trust_code=False)


def test_reader_matches_tensorflows_parse(models):
    """The wire-level reader sees exactly the ops TensorFlow's own protobuf classes see, per function."""
    from tensorflow.core.protobuf import saved_model_pb2

    for k in ("keras", "writer", "ckpt", "reader", "python", "branch"):
        sm = saved_model_pb2.SavedModel()
        sm.ParseFromString((models[k] / "saved_model.pb").read_bytes())
        mg = sm.meta_graphs[0]
        lib = {f.signature.name for f in mg.graph_def.library.function}
        want = {f.signature.name: {n.op for n in f.node_def if n.op not in lib} for f in mg.graph_def.library.function}
        want[""] = {n.op for n in mg.graph_def.node if n.op not in lib}
        assert scan_savedmodel(models[k]).ops == want, k


@pytest.mark.parametrize("op,attrs,why", [
    ("ReadFile", {}, "files"), ("WriteFile", {}, "files"), ("MatchingFiles", {}, "files"),
    ("ImmutableConst", {}, "files"), ("TextLineReaderV2", {}, "files"), ("TFRecordDataset", {}, "files"),
    ("InitializeTableFromTextFileV2", {}, "files"), ("CreateSummaryFileWriter", {}, "files"),
    ("WriteScalarSummary", {}, "files"), ("PyFunc", {}, "Python"), ("EagerPyFunc", {}, "Python"),
    ("PyFuncStateless", {}, "Python"), ("SaveV2", {}, "checkpoint"), ("RestoreV2", {}, "checkpoint"),
    ("MergeV2Checkpoints", {}, "checkpoint"), ("DebugIdentityV2", {}, "dumps"), ("Abort", {}, "process"),
    ("PrintV2", {"output_stream": "file:///tmp/x"}, "prints"), ("DecodeProtoV2", {"descriptor_source": "/x"}, "desc"),
    ("DataServiceDatasetV4", {}, "network"), ("Rpc", {}, "network"),
])
def test_denied_ops(op, attrs, why):
    assert why in (denied(op, attrs) or "")


@pytest.mark.parametrize("op,attrs", [
    ("ShardedFilename", {}), ("ReadVariableOp", {}), ("PrintV2", {}), ("PrintV2", {"output_stream": "stdout"}),
    ("DecodeProtoV2", {}), ("DecodeCSV", {}), ("LookupTableImportV2", {}), ("StringJoin", {}), ("Conv2D", {}),
])
def test_allowed_ops(op, attrs):
    assert denied(op, attrs) is None


def test_needs_trust_tells_callers_which_files_run_code(models):
    """What a per-file trust decision (the CLI's) asks before loading: the ordinary export needs no trust."""
    from edgekit.trust import needs_trust

    assert needs_trust(edgekit.detect(models["keras"])) is None
    assert "WriteFile" in needs_trust(edgekit.detect(models["writer"]))
    assert "ReadFile" in needs_trust(edgekit.detect(models["reader"]))
