"""An ONNX file imported as a dlcb model: kernels, memory-bound layers and edges from the graph,
shape computations and views free, clear errors for what the format cannot express."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from dlcb_kernels.models import from_onnx, get_model  # noqa: E402


def weight(name, *shape):
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def residual_graph(path, batch="N", extra_node=None):
    """conv -> relu -> conv + input (a residual), global average pool, flatten, gemm."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "x"], ["s"], name="add"),
             helper.make_node("Shape", ["s"], ["shape"], name="shape_of"),        # shape arithmetic: free
             helper.make_node("GlobalAveragePool", ["s"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1)]
    if extra_node is not None:
        nodes.append(extra_node)
    graph = helper.make_graph(
        nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weight("w1", 8, 8, 3, 3), weight("b1", 8), weight("w2", 8, 8, 3, 3), weight("wf", 10, 8), weight("bf", 10)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_residual_graph_becomes_layers_with_edges(tmp_path):
    model = from_onnx(residual_graph(tmp_path / "res.onnx"))
    layers = {layer.name: layer for layer in model.layers}
    assert [layer.kind for layer in model.layers] == ["conv", "relu", "conv", "eltwise", "pool", "fc"]
    assert model.name == "res" and model.input_shape == (8, 16, 16)
    assert layers["conv1"].shape[:6] == (8, 16, 16, 8, 3, 3) and layers["conv1"].bias and not layers["conv2"].bias
    assert set(layers["add"].reads) == {"conv2", "input"} and layers["fc"].reads == ("gap",)
    assert layers["gap"].dims["window"] == (16, 16) and layers["fc"].shape == (8, 10)
    assert model.params("trainable") == 8 * 8 * 9 + 8 + 8 * 8 * 9 + 10 * 8 + 10


def test_a_fixed_batch_is_divided_out(tmp_path):
    model = from_onnx(residual_graph(tmp_path / "b4.onnx", batch=4))
    assert model.input_shape == (8, 16, 16) and model.layers[0].shape[:3] == (8, 16, 16)


@pytest.mark.parametrize("op, function", [("Sigmoid", "sigmoid"), ("HardSwish", "hardswish"),
                                          ("LeakyRelu", "leaky_relu")])
def test_an_activation_becomes_an_activation_layer_of_its_function(tmp_path, op, function):
    model = from_onnx(residual_graph(tmp_path / "act.onnx", extra_node=helper.make_node(op, ["y"], ["z"], name="act")))
    last = model.layers[-1]
    assert (last.kind, last.function, last.shape, last.reads) == ("activation", function, (10,), ("fc",))


def test_what_the_format_cannot_express_is_an_error_naming_the_node(tmp_path):
    bad = helper.make_node("Hardmax", ["y"], ["z"], name="squash")
    with pytest.raises(ValueError, match="cannot import ONNX node squash \\(Hardmax\\)"):
        from_onnx(residual_graph(tmp_path / "bad.onnx", extra_node=bad))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        from_onnx(tmp_path / "junk.onnx")
    with pytest.raises(FileNotFoundError):
        from_onnx(tmp_path / "missing.onnx")


def test_torch_exports_import_with_torchs_parameter_counts(tmp_path):
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).parent))
    import torch_nets

    for net, example in ((torch_nets.LM(), torch.zeros(1, 12, dtype=torch.long)),
                         (torch_nets.Enc(), torch.zeros(1, 12, dtype=torch.long))):
        path = tmp_path / f"{type(net).__name__}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net.eval(), (example,), str(path), dynamo=False)
        model = get_model(str(path))
        assert model.params("trainable") == sum(p.numel() for p in net.parameters())
    kinds = [layer.kind for layer in model.layers]
    assert kinds.count("matmul") == 4 and kinds.count("layernorm") == 4 and kinds.count("softmax") == 2


def test_dlcb_models_prints_an_onnx_file(tmp_path):
    path = residual_graph(tmp_path / "res.onnx")
    result = subprocess.run([sys.executable, "-m", "dlcb_kernels", "models", "--model", str(path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "conv1" in result.stdout and "gap" in result.stdout
