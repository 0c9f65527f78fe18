"""A torch.nn.Module imported as a dlcb model: layers, per-sample shapes and graph edges, parameter
counts equal to torch's, clear errors for what the format cannot express."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dlcb_kernels.models import from_torch, load_model, save_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import torch_nets  # noqa: E402

TESTS = Path(__file__).parent


def torch_params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def by_name(model):
    return {layer.name: layer for layer in model.layers}


def test_a_residual_network_keeps_its_edges_and_parameters():
    net = torch_nets.ResNetish()
    model = from_torch(net, torch.randn(2, 3, 32, 32))
    layers = by_name(model)
    assert model.input_shape == (3, 32, 32) and model.params("trainable") == torch_params(net)
    assert layers["stem"].kind == "conv" and layers["stem"].shape[:4] == (3, 32, 32, 16)
    assert layers["stem"].reads == ("input",)
    assert layers["relu"].kind == "relu" and not layers["relu"].inplace   # torch.relu: a fresh output
    assert layers["add"].kind == "eltwise" and set(layers["add"].reads) == {"b_b2", "pool"}   # the shortcut
    assert layers["gap"].kind == "pool" and layers["gap"].mode == "avg" and layers["gap"].dims["window"] == (16, 16)
    assert layers["fc"].shape == (16, 10) and layers["fc"].reads == ("gap",)   # flatten is free


def test_an_inverted_residual_with_relu6_and_a_depthwise_convolution():
    net = torch_nets.Inverted()
    model = from_torch(net, torch.randn(1, 16, 8, 8))
    layers = by_name(model)
    assert layers["d"].dims["groups"] == 96 and [layers[n].kind for n in ("r", "r_1")] == ["relu", "relu"]
    assert layers["r"].inplace and layers["r_1"].inplace            # ReLU6(inplace=True)
    assert set(layers["add"].reads) == {"input", "p"} and model.params("trainable") == torch_params(net)


@pytest.mark.parametrize("norm_first", [False, True])
def test_a_transformer_encoder_becomes_attention_feed_forward_and_norms(norm_first):
    net = torch_nets.Enc(norm_first=norm_first)
    model = from_torch(net, torch.zeros(2, 12, dtype=torch.long))
    layers = by_name(model)
    assert model.params("trainable") == torch_params(net)
    scores = layers["layers_0_attn_scores"]
    assert scores.kind == "matmul" and scores.heads == 4 and scores.trans_b and scores.shape == (12, 12, 16)
    assert layers["layers_0_attn_in_proj"].tokens == 12 and layers["layers_0_linear1"].shape == (64, 128)
    assert set(layers["layers_0_add2"].reads) >= {"layers_0_dropout2"}
    assert layers["layers_0_dropout1"].rate == 0.1   # the layer keeps its rate
    # torch drops the attention weights too, between the softmax and the context matmul
    weights = layers["layers_0_attn_weights_dropout"]
    assert weights.kind == "dropout" and weights.rate == 0.1 and weights.shape == (4, 12, 12)
    names = [layer.name for layer in model.layers]
    assert names.index("layers_0_attn_softmax") < names.index("layers_0_attn_weights_dropout") < \
        names.index("layers_0_attn_context")
    # every edge names an earlier layer or the input (Model checks it)
    assert all(r == "input" or r in layers for layer in model.layers for r in layer.reads)


class _SelfAttention(torch.nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(32, 2, dropout=dropout, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x)[0]


@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_multihead_attention_drops_its_weights_only_at_a_rate_above_zero(dropout):
    model = from_torch(_SelfAttention(dropout), torch.randn(3, 10, 32))
    kinds = [layer.kind for layer in model.layers]
    expected = ["fc", "matmul", "softmax"] + (["dropout"] if dropout else []) + ["matmul", "fc"]
    assert kinds == expected
    if dropout:
        assert by_name(model)["attn_weights_dropout"].rate == 0.25
        assert by_name(model)["attn_weights_dropout"].shape == (2, 10, 10)


def test_a_stacked_lstm_is_one_layer_per_level():
    net = torch_nets.LM()
    model = from_torch(net, torch.zeros(3, 20, dtype=torch.long))
    layers = by_name(model)
    assert (layers["lstm_l0"].shape, layers["lstm_l1"].shape) == ((32, 64, 20), (64, 64, 20))
    assert layers["lstm_l0"].cell == "lstm" and layers["out"].tokens == 20
    assert model.params("trainable") == torch_params(net)


class _SqueezeExcite(torch.nn.Module):
    """EfficientNet/MobileNetV3 activations: SiLU, a sigmoid gate, hardswish in place, leaky ReLU."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.act = torch.nn.SiLU(inplace=True)
        self.reduce = torch.nn.Conv2d(8, 2, 1)
        self.expand = torch.nn.Conv2d(2, 8, 1)
        self.hs = torch.nn.Hardswish(inplace=True)
        self.leaky = torch.nn.LeakyReLU(0.1)

    def forward(self, x):
        y = self.act(self.conv(x))
        gate = torch.nn.functional.adaptive_avg_pool2d(y, 1)
        gate = self.expand(torch.nn.functional.silu(self.reduce(gate))).sigmoid()
        return self.leaky(self.hs(y * gate))


def test_activations_become_activation_layers_of_their_function():
    model = from_torch(_SqueezeExcite(), torch.randn(2, 8, 6, 6))
    layers = by_name(model)
    functions = {name: (layer.kind, layer.function) for name, layer in layers.items()}
    assert functions["act"] == functions["silu"] == ("activation", "silu")   # module and function
    assert functions["sigmoid"] == ("activation", "sigmoid")                 # a tensor method
    assert functions["hs"] == ("activation", "hardswish") and functions["leaky"] == ("activation", "leaky_relu")
    assert layers["act"].shape == (8, 6, 6) and layers["sigmoid"].shape == (8, 1, 1)
    assert layers["mul"].kind == "eltwise" and set(layers["mul"].reads) == {"act", "sigmoid"}
    assert model.params("trainable") == torch_params(_SqueezeExcite())


@pytest.mark.parametrize("name, parameters", [("resnet18", 11_689_512), ("mobilenet_v2", 3_504_872),
                                              ("efficientnet_b0", 5_288_548)])
def test_the_benchmark_modules_import_with_their_published_parameter_counts(name, parameters):
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks import torch_models

    net = getattr(torch_models, name)()
    model = from_torch(net, torch.randn(1, 3, 224, 224))
    assert torch_params(net) == parameters and model.params("trainable") == parameters
    if name == "efficientnet_b0":   # SiLU, the squeeze-and-excitation gate, its broadcast product
        kinds = {(layer.kind, layer.function if layer.kind == "activation" else None) for layer in model.layers}
        assert {("activation", "silu"), ("activation", "sigmoid"), ("eltwise", None)} <= kinds


def test_what_the_format_cannot_express_is_an_error_naming_the_node():
    with pytest.raises(ValueError, match="cannot import node .*ConvTranspose2d"):
        from_torch(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ConvTranspose2d(4, 4, 2)),
                   torch.randn(1, 3, 9, 9))
    with pytest.raises(ValueError, match="cannot import node _1 \\(PixelShuffle\\)"):
        from_torch(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.PixelShuffle(2)), torch.randn(1, 3, 9, 9))
    with pytest.raises(ValueError, match="dilated convolution"):
        from_torch(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, dilation=2)), torch.randn(1, 3, 9, 9))
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        from_torch(object(), torch.randn(1, 3))
    with pytest.raises(ValueError, match="batch dimension"):
        from_torch(torch.nn.ReLU(), torch.randn(3))


def test_an_imported_model_round_trips_through_a_model_file(tmp_path):
    model = from_torch(torch_nets.ResNetish(), torch.randn(1, 3, 32, 32))
    path = tmp_path / "resnetish.json"
    save_model(model, path)
    assert load_model(path) == model
    entry = next(layer for layer in json.loads(path.read_text())["layers"] if layer["name"] == "add")
    assert sorted(entry["reads"]) == ["b_b2", "pool"]


def test_cli_imports_saves_and_the_models_suite_measures_it(tmp_path):
    out = tmp_path / "lm.json"
    result = subprocess.run([sys.executable, "-m", "dlcb_kernels", "models", "--torch", "torch_nets:LM", "--input",
                             "2x10:int", "--loss", "--save", str(out)], capture_output=True, text=True, cwd=TESTS,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "lstm_l1" in result.stdout and out.exists()
    assert load_model(out).layers[-1].kind == "loss"          # --loss: the training step's cross-entropy
    table = tmp_path / "t.json"
    bench = subprocess.run([sys.executable, "-m", "dlcb_kernels", "bench", "--suite", "models", "--models", str(out),
                            "--batch", "2", "--impl", "ours", "--mode", "both", "--max-time", "0.02", "--no-anchors",
                            "--min-samples", "3", "--peak-store", "off", "-q", "-o", str(table)], capture_output=True,
                           text=True, timeout=600)
    assert bench.returncode == 0, bench.stderr
    problems = [r["problem"] for r in json.loads(table.read_text())["records"]]
    assert any(p.startswith("memory loss fwd") for p in problems) and any(p.startswith("memory loss bwd") for p in problems)
    bad = subprocess.run([sys.executable, "-m", "dlcb_kernels", "models", "--torch", "torch_nets:LM"],
                         capture_output=True, text=True, cwd=TESTS, timeout=300)
    assert bad.returncode == 1 and "--torch needs --input" in bad.stderr
