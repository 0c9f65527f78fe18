"""The model zoo: parameter and MAC counts against ../shared/CONTEXT.md and the published
figures, the lowering of layers to kernel problems and bytes, user models from dicts and files,
and `dlcb models`."""

import argparse
import json
import sys

import pytest

from dlcb_kernels import models
from dlcb_kernels.models import cli as models_cli
from dlcb_kernels.problems import ConvProblem, GemmProblem, RnnProblem
from dlcb_kernels.suites import load_suite

# ../shared/CONTEXT.md's table, restated here so a change to models.COOKBOOK cannot move both
# sides: params in the cookbook convention, forward GMACs (the precise figure), trainable params
# where the table gives them.
CONTEXT_TABLE = {
    "AlexNet": (60_965_224, 0.724, None),
    "AlexNetOWT": (61_100_840, 0.714, None),
    "GoogLeNet": (6_998_552, 1.583, None),
    "VGG16": (138_357_544, 15.470, None),
    "VGG19": (143_667_240, 19.632, None),
    "ResNet50": (25_610_269, 3.858, 25_557_096),
    "ResNet101": (44_654_608, 7.570, 44_549_160),
    "ResNet152": (60_344_387, 11.282, 60_192_808),
    "EnglishAcoustic": (34_678_784, 0.0347, None),
    "TextCNN": (151_690, 0.0087, None),
    "DeepMNIST": (11_972_510, 0.012, None),
}

# Trainable counts the table does not give, derived: these models have no BatchNorm, so every
# Caffe blob (weights and biases) is trainable and the two conventions agree.
#   AlexNet 60,965,224 (BVLC, grouped), AlexNetOWT 61,100,840 (torchvision's alexnet),
#   GoogLeNet 6,998,552, VGG16 138,357,544 and VGG19 143,667,240 (torchvision's vgg16/vgg19),
#   EnglishAcoustic 540*2048+2048 + 4*(2048*2048+2048) + 2048*8192+8192 = 34,678,784,
#   TextCNN (128+1)*128 + (3*128+1)*128 + (5*128+1)*128 + 384*10+10 = 151,690,
#   DeepMNIST sum of (a+1)*b over 784-2500-2000-1500-1000-500-10 = 11,972,510.
DERIVED_TRAINABLE = {name: CONTEXT_TABLE[name][0] for name in (
    "AlexNet", "AlexNetOWT", "GoogLeNet", "VGG16", "VGG19", "EnglishAcoustic", "TextCNN", "DeepMNIST")}


def _digits(value: float) -> int:
    return len(repr(value).split(".")[1])


@pytest.mark.parametrize("name", sorted(CONTEXT_TABLE))
def test_cookbook_models_reproduce_the_context_table(name):
    params, gmacs, trainable = CONTEXT_TABLE[name]
    model = models.MODELS[name]
    assert model.params("cookbook") == params
    assert round(model.macs_per_sample() / 1e9, _digits(gmacs)) == gmacs
    assert model.params("trainable") == (trainable if trainable is not None else DERIVED_TRAINABLE[name])
    book = models.COOKBOOK[name]
    assert (book["params"], book["gmacs"], book["trainable"]) == (params, gmacs, trainable)


def test_the_conventions_differ_by_the_batchnorm_statistics():
    # Every convolution of a ResNet is followed by BatchNorm + Scale (53, 104, 155 of them): the
    # cookbook adds each one's running mean and variance (2C) and its moving-average scalar.
    for name, convs in (("ResNet50", 53), ("ResNet101", 104), ("ResNet152", 155)):
        model = models.MODELS[name]
        norms = [layer for layer in model.layers if layer.kind == "bn"]
        assert sum(layer.count for layer in norms) == convs
        assert sum(layer.count for layer in model.layers if layer.kind == "conv") == convs
        statistics = sum((2 * layer.shape[0] + 1) * layer.count for layer in norms)
        assert model.params("cookbook") - model.params("trainable") == statistics
    # conv1 has a bias in the cookbook's ResNet50 only
    assert [models.MODELS[n].layers[0].bias for n in ("ResNet50", "ResNet101", "ResNet152")] == [True, False, False]


def test_googlenet_inception_modules():
    # Szegedy et al. 2014, table 1: each module's output channels are the sum of its 1x1, 3x3,
    # 5x5 and pool projection branches and feed the next one.
    model = models.MODELS["GoogLeNet"]
    layer = {layer.name: layer for layer in model.layers}
    assert layer["inception_3a/output"].shape == (256, 28, 28)
    assert layer["inception_4a/1x1"].dims["c"] == 480
    assert layer["inception_5b/output"].shape == (1024, 7, 7)
    assert layer["pool2/3x3_s2"].output_tensor() == (192, 28, 28)    # Caffe rounds up: 56 -> 28
    assert layer["pool1/3x3_s2"].output_tensor() == (64, 56, 56)     # 112 -> 56 (flooring gives 55)
    # inception 3a with biases: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection
    assert sum(layer[f"inception_3a/{b}"].params("cookbook") for b in
               ("1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj")) == \
        (192 + 1) * 64 + (192 + 1) * 96 + (96 * 9 + 1) * 128 + (192 + 1) * 16 + (16 * 25 + 1) * 32 + (192 + 1) * 32
    assert not any(name.startswith(("loss1", "loss2")) for name in layer)


def test_bert_base_matches_bert_base_uncased():
    model = models.get_model("bert-base")
    # 109,482,240: bert-base-uncased's parameter count (Hugging Face BertModel; Devlin et al.)
    assert model.params("trainable") == model.params("cookbook") == 109_482_240
    hidden, ffn, vocab = 768, 3072, 30522
    embeddings = (vocab + 512 + 2) * hidden + 2 * hidden            # three tables and the LayerNorm
    assert embeddings == 23_837_184
    assert sum(layer.params("trainable") * layer.count for layer in model.layers[:6]) == embeddings
    encoder_layer = 4 * (hidden * hidden + hidden) + (hidden * ffn + ffn) + (ffn * hidden + hidden) + 2 * 2 * hidden
    assert encoder_layer == 7_087_872
    assert embeddings + 12 * encoder_layer + hidden * hidden + hidden == 109_482_240
    # Forward MACs of one 128-token sequence: the per-token projections and FFN, the attention
    # GEMMs (QK^T and PV: 12 heads of 128x128x64 each), the pooler on the first token.
    seq = 128
    projections = 12 * seq * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = 12 * 2 * 12 * seq * seq * 64
    assert model.macs_per_sample() == projections + attention + hidden * hidden == 11_174_215_680


def test_deepspeech2_counts():
    model = models.get_model("DeepSpeech2")
    layer = {layer.name: layer for layer in model.layers}
    # 161 bins x 700 frames -> conv1 (41x11, stride 2x2, pad 20x5) 81 x 350 -> conv2 (21x11,
    # stride 2x1, pad 10x5) 41 x 350: the GRUs see 32*41 = 1312 features over 350 steps.
    assert layer["conv1"].output_tensor() == (32, 81, 350)
    assert layer["conv2"].output_tensor() == (32, 41, 350)
    assert layer["gru1"].dims == {"input_size": 1312, "hidden": 800, "timesteps": 350}
    # Trainable: conv1 32*41*11 + conv2 32*32*21*11 (no biases) + two BN gamma/beta 2*64
    # + GRU 3H(I+H) + 6H (two bias vectors) per direction: layer 1 (I=1312) and layers 2-5
    # (I=800, the directions summed), two directions each + FC 800*29+29.
    gru = lambda inputs: 3 * 800 * (inputs + 800) + 6 * 800
    trainable = 32 * 41 * 11 + 32 * 32 * 21 * 11 + 2 * 64 + 2 * gru(1312) + 8 * gru(800) + 800 * 29 + 29
    assert trainable == 41_179_933
    assert model.params("trainable") == trainable
    assert model.params("cookbook") == trainable + 2 * (2 * 32 + 1)          # BN running statistics
    # Forward MACs per 7 s utterance: both convolutions, every gate's input and recurrent
    # products over 350 steps, the FC on each step.
    macs = (32 * 41 * 11 * 81 * 350 + 32 * 32 * 21 * 11 * 41 * 350
            + 2 * 3 * 350 * 800 * (1312 + 800) + 8 * 3 * 350 * 800 * (800 + 800) + 350 * 800 * 29)
    assert model.macs_per_sample() == macs


# Lowering to kernel problems and bytes ---------------------------------------------------------

@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_kernel_problems_carry_the_layers_macs(name):
    batch = 3
    for layer in models.MODELS[name].layers:
        forward = layer.kernel_problems(batch, "fwd")
        if not layer.is_kernel:
            assert forward == [] and layer.macs_per_sample() == 0
            assert layer.memory_bytes(batch, "fwd") > 0
            continue
        assert layer.memory_bytes(batch, "fwd") == 0
        flops = sum((p.flops_full() if p.op == "rnn" else p.flops()) * times for p, times in forward)
        assert flops == 2 * batch * layer.macs_per_sample(), layer.name
        if layer.kind in ("conv", "fc", "matmul"):   # each of the two gradients costs the forward's work
            backward = layer.kernel_problems(batch, "bwd_data") + layer.kernel_problems(batch, "bwd_weights")
            assert sum(p.flops() * times for p, times in backward) == 2 * flops, layer.name


def test_fc_lowering_over_tokens():
    layer = models.get_model("BERT-base").layers[6]          # attention_query, 128 tokens per sample
    assert layer.name == "attention_query"
    assert layer.kernel_problems(4, "fwd") == [(GemmProblem(512, 768, 768, trans_b=True), 1)]
    assert layer.kernel_problems(4, "bwd_data") == [(GemmProblem(512, 768, 768), 1)]
    assert layer.kernel_problems(4, "bwd_weights") == [(GemmProblem(768, 768, 512, trans_a=True), 1)]
    fc = models.fc("x", 100, 10)
    assert fc.kernel_problems(8, "bwd_data") == [(GemmProblem(8, 100, 10), 1)]
    assert fc.kernel_problems(8, "bwd_weights") == [(GemmProblem(10, 100, 8, trans_a=True), 1)]
    assert fc.problem(8) == GemmProblem(8, 10, 100, trans_b=True)


def test_conv_rnn_and_matmul_lowering():
    conv = models.MODELS["ResNet50"].layers[0]
    directions = [conv.kernel_problems(2, p)[0][0].direction for p in models.PASSES]
    assert directions == ["fwd", "bwd_data", "bwd_filter"]
    assert conv.problem(2) == ConvProblem(2, 3, 224, 224, 64, 7, 7, 3, 3, 2, 2)
    ds2 = {layer.name: layer for layer in models.MODELS["DeepSpeech2"].layers}
    assert ds2["conv2"].problem(1) == ConvProblem(1, 32, 81, 350, 32, 21, 11, 10, 5, 2, 1)
    assert ds2["gru1"].kernel_problems(4, "fwd") == [(RnnProblem(800, 4, 350, "gru", input_size=1312), 1)]
    assert ds2["gru2..5"].kernel_problems(4, "bwd_weights") == [(RnnProblem(800, 4, 350, "gru", direction="bwd"), 1)]
    # the input gradient after backprop through time: dX (350*4 x 1312) = dGates (x 3*800) W_ih
    assert ds2["gru1"].kernel_problems(4, "bwd_data") == [(GemmProblem(350 * 4, 1312, 2400), 1)]
    scores = {layer.name: layer for layer in models.MODELS["BERT-base"].layers}["attention_scores"]
    assert scores.kernel_problems(4, "fwd") == [(GemmProblem(128, 128, 64, trans_b=True), 48)]
    assert scores.kernel_problems(4, "bwd_data") == [(GemmProblem(128, 64, 128), 48),                  # dQ = dS K
                                                     (GemmProblem(128, 64, 128, trans_a=True), 48)]    # dK = dS^T Q
    assert scores.kernel_problems(4, "bwd_weights") == []
    context = models.matmul("pv", 128, 64, 128, heads=12)
    assert context.kernel_problems(1, "bwd_data") == [(GemmProblem(128, 128, 64, trans_b=True), 12),   # dP = dO V^T
                                                      (GemmProblem(128, 64, 128, trans_a=True), 12)]   # dV = P^T dO


def test_memory_bytes():
    relu = models.relu("r", (64, 56, 56))
    elements = 2 * 64 * 56 * 56
    assert relu.memory_bytes(2, "fwd") == 4 * 2 * elements
    assert relu.memory_bytes(2, "bwd_data") == 4 * 3 * elements
    assert relu.memory_bytes(2, "bwd_weights") == 0
    assert relu.memory_bytes(2, "fwd", itemsize=2) == 2 * 2 * elements
    bn = models.bn("b", (64, 56, 56))
    assert bn.params("cookbook") == 4 * 64 + 1 and bn.weight_elements == 2 * 64
    assert bn.memory_bytes(1, "fwd") == 4 * (2 * 64 * 56 * 56 + 4 * 64)
    assert bn.memory_bytes(1, "bwd_weights") == 4 * (2 * 64 * 56 * 56 + 2 * 64)
    pool = models.pool("p", 64, 112, 112, 3, stride=2)
    assert pool.output_tensor() == (64, 56, 56)
    assert pool.memory_bytes(1, "fwd") == 4 * 64 * (112 * 112 + 56 * 56)
    assert pool.memory_bytes(1, "bwd_data") == 4 * 64 * (112 * 112 + 2 * 56 * 56)
    add = models.eltwise("a", (256, 7, 7))
    assert add.memory_bytes(1, "fwd") == add.memory_bytes(1, "bwd_data") == 4 * 3 * 256 * 49
    drop = models.dropout("d", (4096,))
    assert drop.memory_bytes(2, "fwd") == 4 * 2 * 8192 + 8192
    table = models.embedding("e", 30522, 768, 128)
    assert table.memory_bytes(1, "fwd") == 4 * 2 * 128 * 768 and table.memory_bytes(1, "bwd_data") == 0
    # the dense gradient: the whole table zeroed, then the looked-up rows added
    assert table.memory_bytes(1, "bwd_weights") == 4 * (30522 * 768 + 3 * 128 * 768)
    assert models.conv("c", 3, 8, 8, 4, 3).memory_bytes(1, "fwd") == 0
    silu = models.activation("s", (64, 56, 56), "silu")   # its derivative reads the input
    assert silu.memory_bytes(2, "fwd") == relu.memory_bytes(2, "fwd")
    assert silu.memory_bytes(2, "bwd_data") == 4 * 3 * elements and silu.memory_bytes(2, "bwd_weights") == 0
    with pytest.raises(ValueError, match="pass_"):
        relu.memory_bytes(1, "backward")
    with pytest.raises(ValueError, match="batch"):
        relu.kernel_problems(0, "fwd")


def test_layer_and_model_validation():
    with pytest.raises(ValueError, match="kind"):
        models.Layer("x", "attention", (1,))
    with pytest.raises(ValueError, match="'x': count"):
        models.fc("x", 10, 10, count=0)
    with pytest.raises(TypeError, match="'x': inputs must be an int"):
        models.fc("x", 10.0, 10)
    with pytest.raises(ValueError, match="groups=3"):
        models.conv("x", 4, 8, 8, 4, 3, groups=3)
    with pytest.raises(ValueError, match="'x': .*does not fit"):
        models.conv("x", 4, 2, 2, 4, 5)
    with pytest.raises(ValueError, match="cell"):
        models.rnn("x", 10, 10, 5, cell="elman")
    with pytest.raises(ValueError, match="'x': function must be one of sigmoid, silu"):
        models.activation("x", (10,), "swish")
    with pytest.raises(ValueError, match="convention"):
        models.fc("x", 10, 10).params("all")
    with pytest.raises(ValueError, match="memory-bound"):
        models.relu("x", (10,)).problem(1)
    with pytest.raises(ValueError, match="two layers are named 'x'"):
        models.Model("m", (models.relu("x", (1,)), models.relu("x", (1,))), (1,))
    assert models.get_model("resnet50") is models.MODELS["ResNet50"]
    with pytest.raises(ValueError, match="unknown model 'LeNet'"):
        models.get_model("LeNet")
    assert [layer.kind for layer in models.MODELS["AlexNet"].kernel_layers()] == ["conv"] * 5 + ["fc"] * 3


# User models -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_every_model_round_trips_through_a_dict_and_json(name, tmp_path):
    model = models.MODELS[name]
    assert models.model_from_dict(models.model_to_dict(model)) == model
    path = tmp_path / "model.json"
    models.save_model(model, path)
    assert models.load_model(path) == model
    assert models.get_model(str(path)) == model


def test_user_model_from_a_file(tmp_path):
    doc = {"name": "TinyNet", "input_shape": [3, 32, 32], "source": "a test", "layers": [
        {"name": "conv1", "kind": "conv", "c": 3, "h": 32, "w": 32, "k": 16, "r": 3, "pad": 1},
        {"name": "bn1", "kind": "bn", "tensor": [16, 32, 32]},
        {"name": "relu1", "kind": "relu", "tensor": [16, 32, 32]},
        {"name": "pool1", "kind": "pool", "c": 16, "h": 32, "w": 32, "window": 2},
        {"name": "fc", "kind": "fc", "inputs": 16 * 16 * 16, "outputs": 10, "count": 1},
    ]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(doc))
    model = models.get_model(path)
    assert model.params("trainable") == 3 * 9 * 16 + 16 + 2 * 16 + 4096 * 10 + 10
    assert model.params("cookbook") == model.params("trainable") + 2 * 16 + 1
    assert model.macs_per_sample() == 16 * 27 * 32 * 32 + 4096 * 10
    assert model.layers[3].output_tensor() == (16, 16, 16)
    # an activation names its function; the file round-trips it
    doc["layers"].insert(2, {"name": "act1", "kind": "activation", "tensor": [16, 32, 32], "function": "hardswish"})
    path.write_text(json.dumps(doc))
    model = models.get_model(path)
    assert model.layers[2] == models.activation("act1", (16, 32, 32), "hardswish")
    assert models.model_from_dict(models.model_to_dict(model)) == model


@pytest.mark.parametrize("change, message", [
    (lambda d: d["layers"][0].pop("k"), r"layer 'conv1': missing field 'k'"),
    (lambda d: d["layers"][0].update(k="16"), r"layer 'conv1': k must be an int"),
    (lambda d: d["layers"][1].update(kind="batchnorm"), r"layer 'relu1': field 'kind' must be one of"),
    (lambda d: d["layers"][1].update(size=5), r"layer 'relu1': unknown field\(s\) size"),
    (lambda d: d["layers"][0].update(pad=[1, 2, 3]), r"layer 'conv1': pad must be an int or a \(height, width\)"),
    (lambda d: d["layers"][1].pop("name"), r"layer #2: field 'name'"),
    (lambda d: d.pop("input_shape"), r"missing field 'input_shape'"),
    (lambda d: d.update(layers=[]), r"'layers' must be a non-empty list"),
])
def test_bad_model_files_name_the_layer_and_field(tmp_path, change, message):
    doc = {"name": "Bad", "input_shape": [3, 8, 8], "layers": [
        {"name": "conv1", "kind": "conv", "c": 3, "h": 8, "w": 8, "k": 16, "r": 3},
        {"name": "relu1", "kind": "relu", "tensor": [16, 6, 6]}]}
    change(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message):
        models.load_model(path)


def test_model_file_formats(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        models.load_model(bad)
    with pytest.raises(ValueError, match=r"\.json, \.yaml or \.yml"):
        models.load_model(tmp_path / "model.txt")
    yaml_path = tmp_path / "m.yaml"
    yaml_path.write_text("name: M\n")
    monkeypatch.setitem(sys.modules, "yaml", None)           # PyYAML not importable
    with pytest.raises(ValueError, match="pip install pyyaml"):
        models.get_model(yaml_path)


def test_user_model_from_yaml(tmp_path):
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "m.yml"
    path.write_text(yaml.safe_dump(models.model_to_dict(models.MODELS["TextCNN"])))
    assert models.load_model(path) == models.MODELS["TextCNN"]


# Suites and the command line -------------------------------------------------------------------

def test_models_suite_takes_the_kernel_layers_of_the_new_models():
    suite = load_suite("models", ("gemm", "rnn"), batch=2, model_names=("BERT-base", "DeepSpeech2"))
    problems = {sp.problem for sp in suite}
    assert GemmProblem(256, 3072, 768, trans_b=True) in problems        # BERT's FFN over 2 x 128 tokens
    assert RnnProblem(800, 2, 350, "gru", input_size=1312) in problems


def _run_cli(*argv) -> int:
    parser = argparse.ArgumentParser(prog="dlcb")
    models_cli.add_parser(parser.add_subparsers(dest="command"))
    return models_cli.run(parser.parse_args(["models", *argv]))


def test_cli_table_and_json(capsys):
    assert _run_cli() == 0
    out = capsys.readouterr().out
    resnet = next(line for line in out.splitlines() if line.startswith("ResNet50 "))
    assert "25,610,269" in resnet and "25,557,096" in resnet and resnet.count(models_cli.CHECK) == 3
    assert "109,482,240" in out and "DeepSpeech2" in out
    assert _run_cli("--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["model"] for row in rows] == list(models.MODELS)
    assert rows[0]["cookbook"] == models.COOKBOOK["AlexNet"]


def test_cli_one_model(capsys, tmp_path):
    assert _run_cli("--model", "vgg16") == 0
    out = capsys.readouterr().out
    assert "conv1_1" in out and "138,357,544" in out and "15,470," in out
    path = tmp_path / "tiny.json"
    models.save_model(models.Model("Tiny", (models.fc("fc", 4, 2),), (4,)), path)
    assert _run_cli("--model", str(path), "--json") == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["params_trainable"] == 10 and detail["layers"][0]["macs_per_sample"] == 8
    with pytest.raises(ValueError, match="unknown model"):
        _run_cli("--model", "nonet")


def test_with_loss_adds_a_training_only_loss_on_the_output():
    from dlcb_kernels.models import Layer, Model, fc, loss, relu, with_loss

    plain = Model("p", (fc("fc", 8, 5, tokens=3), relu("relu", (3, 5))), (3, 8))
    added = with_loss(plain)
    assert added.layers[:2] == plain.layers and added.layers[2] == loss("loss", (3, 5))
    assert "loss" in added.source and with_loss(added) is added
    # a final softmax is the loss's own; a name already taken is not reused; edges are kept
    head = Layer("loss", "fc", (8, 5), tokens=3, reads=("input",))
    replaced = with_loss(Model("g", (head, Layer("prob", "softmax", (3, 5), reads=("loss",))), (3, 8)))
    assert [(layer.name, layer.kind, layer.reads) for layer in replaced.layers] == [
        ("loss", "fc", ("input",)), ("loss_1", "loss", ("loss",))]
    edged = with_loss(Model("e", (head,), (3, 8)))
    assert edged.layers[-1].reads == ("loss",) and edged.layers[-1].shape == (3, 5)
    with pytest.raises(TypeError, match="Model"):
        with_loss("resnet50")
