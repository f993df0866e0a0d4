"""The stdlib ONNX wire scanner agrees with the onnx package and onnxruntime on well-formed models
(convolutions, If subgraphs and functions, dynamic and missing shapes, every dtype, sparse initializers,
a torch dynamo export), and scans a large model without copying its weights.

Refusals (unsafe external data, files that are not ONNX) are in test_onnx_scan_refusal.py; corrupt and hostile
bytes in test_onnx_scan_corrupt.py.
"""

from __future__ import annotations

import tracemalloc

import numpy as np

from onnx import TensorProto, helper, numpy_helper

from edgekit.formats import onnx_scan as scan

from _onnx_scan_helpers import (assert_matches_onnx, assert_ort_agrees, conv_gemm_model, if_function_model, save,
                                sparse_model)


# ---------------------------------------------------------------- agreement with onnx and onnxruntime

def test_conv_gemm_matches_onnx_and_ort(tmp_path):
    path = save(conv_gemm_model(), tmp_path / "m.onnx")
    info = assert_matches_onnx(path)
    assert info.op_histogram == {"Conv": 1, "Relu": 1, "Flatten": 1, "Constant": 1, "Gemm": 1, "Softmax": 1}
    assert info.parameter_count == 4 * 3 * 3 * 3 + 4 + 10 * 256 + 10
    assert [v.name for v in info.inputs] == ["x"]          # conv.b is an initializer, not a user input
    assert info.inputs[0].shape == ("N", 3, 8, 8) and info.inputs[0].dtype == "float32"
    assert info.producer == "edgekit-test 1.0" and info.external_data == []
    assert_ort_agrees(path, info)


def test_if_subgraphs_and_functions_are_counted(tmp_path):
    model = if_function_model()
    path = save(model, tmp_path / "if.onnx")
    info = assert_matches_onnx(path)
    assert info.op_histogram["If"] == 2 and info.op_histogram["com.example::Scale2"] == 1
    assert info.op_histogram["Constant"] == 5 and info.op_histogram["Mul"] == 5   # 4 branches + the function
    assert info.opsets == {"": 17, "com.example": 1}
    assert info.parameter_count == 4 * (6 + 6)   # branch initializer + Constant tensor each; value_float is not a tensor
    assert_ort_agrees(path, info)


def test_dynamic_dims_and_missing_shapes(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["b"]), helper.make_node("Identity", ["c"], ["d"])], "dyn",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT16, ["batch", None, 7]),
         helper.make_tensor_value_info("c", TensorProto.INT64, None)],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT16, ["batch", None, 7]),
         helper.make_tensor_value_info("d", TensorProto.INT64, [])])
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "d.onnx")
    info = assert_matches_onnx(path)
    assert info.inputs[0].shape == ("batch", None, 7) and info.inputs[0].dtype == "float16"
    assert info.inputs[1].shape is None and info.outputs[1].shape == ()


def test_every_dtype_maps_like_numpy(tmp_path):
    types = [t for t in range(1, 17)]
    graph = helper.make_graph(
        [helper.make_node("Identity", [f"i{t}"], [f"o{t}"]) for t in types], "dtypes",
        [helper.make_tensor_value_info(f"i{t}", t, [1]) for t in types],
        [helper.make_tensor_value_info(f"o{t}", t, [1]) for t in types])
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), tmp_path / "t.onnx")
    info = assert_matches_onnx(path)
    assert [v.dtype for v in info.inputs][:3] == ["float32", "uint8", "int8"]
    assert info.inputs[-1].dtype == "bfloat16" and info.inputs[7].dtype == "string"


def test_sparse_initializer(tmp_path):
    path = save(sparse_model(), tmp_path / "s.onnx")
    info = assert_matches_onnx(path)
    assert info.parameter_count == 3 and [v.name for v in info.inputs] == ["x"]
    assert_ort_agrees(path, info)


def test_torch_dynamo_export(tmp_path):
    import torch
    import onnxscript  # noqa: F401

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, x):
            y = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
            return torch.softmax(self.fc(y), -1)

    path = tmp_path / "net.onnx"
    torch.onnx.export(Net().eval(), (torch.randn(2, 3, 16, 16),), str(path), dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    info = assert_matches_onnx(path)   # onnx.load pulls in external data torch may have written
    assert info.inputs[0].shape == ("batch", 3, 16, 16)
    assert info.outputs[0].shape == ("batch", 5)
    assert info.producer.startswith("pytorch ")
    # torch writes large tensors to <name>.data next to the model by default; every location must be safe
    assert all(loc == "net.onnx.data" for _, loc in info.external_data)
    scan.check_external_data(info, path)
    assert_ort_agrees(path, info)


# ---------------------------------------------------------------- performance

def test_14mb_model_scans_without_copying(tmp_path):
    inits, nodes, prev = [], [], "x"
    for i in range(300):
        inits.append(numpy_helper.from_array(np.full((12000,), i, np.float32), f"w{i}"))
        nodes.append(helper.make_node("Add", [prev, f"w{i}"], [f"a{i}"]))
        nodes.append(helper.make_node("Relu", [f"a{i}"], [f"r{i}"]))
        prev = f"r{i}"
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [12000])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [12000])], inits)
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "big.onnx")
    assert path.stat().st_size > 14_000_000
    info = scan.scan_onnx(path)  # speed: `python tools/scan_cost.py`, never a timed test
    assert info.parameter_count == 300 * 12000 and info.op_histogram == {"Add": 300, "Relu": 300}
    tracemalloc.start()
    scan.scan_onnx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000, f"scan allocated {peak} bytes: raw_data was copied"
