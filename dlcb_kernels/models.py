"""The reference models of the Deep Learning Cookbook as lists of conv and fully-connected layers.

Only the layers the cookbook counts (convolutions and fully-connected layers; pooling, ReLU,
LRN, BN and softmax carry no MACs in its convention) are listed, each with its shape at the
model's input size and how many times it occurs. Shapes follow the Caffe definitions the
cookbook used: AlexNet is BVLC's (227x227 input, grouped conv2/4/5), ResNets put the stride of
a downsampling block on its first 1x1 convolution (the original Caffe models), Caffe's pooling
rounds output sizes up. tests/test_models.py holds every model to its forward MAC count in
../shared/CONTEXT.md.

A fully-connected layer with `inputs` -> `outputs` at batch N is the GEMM Y (N x outputs) =
X (N x inputs) W^T, W stored outputs x inputs as in Caffe and PyTorch (trans_b).
"""

from __future__ import annotations

from dataclasses import dataclass

from .problems import ConvProblem, GemmProblem


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str                # "conv" or "fc"
    shape: tuple             # conv: (c, h, w, k, r, s, pad, stride, groups); fc: (inputs, outputs)
    count: int = 1

    def macs_per_sample(self) -> int:
        return self.problem(1).flops() // 2

    def problem(self, batch: int):
        if self.kind == "fc":
            inputs, outputs = self.shape
            return GemmProblem(batch, outputs, inputs, trans_b=True)
        c, h, w, k, r, s, pad, stride, groups = self.shape
        return ConvProblem(n=batch, c=c, h=h, w=w, k=k, r=r, s=s, pad_h=pad[0], pad_w=pad[1],
                           stride_h=stride, stride_w=stride, groups=groups)


@dataclass(frozen=True)
class Model:
    name: str
    layers: tuple[Layer, ...]
    input_shape: tuple       # (C, H, W) of one sample, or (features,) for fully-connected models

    def macs_per_sample(self) -> int:
        return sum(layer.macs_per_sample() * layer.count for layer in self.layers)


def conv(name, c, h, w, k, r, s=None, pad=0, stride=1, groups=1, count=1) -> Layer:
    s = r if s is None else s
    pad = pad if isinstance(pad, tuple) else (pad, pad)
    return Layer(name, "conv", (c, h, w, k, r, s, pad, stride, groups), count)


def fc(name, inputs, outputs, count=1) -> Layer:
    return Layer(name, "fc", (inputs, outputs), count)


# ResNets ---------------------------------------------------------------------------------------

def _resnet(name: str, blocks: tuple[int, int, int, int]) -> Model:
    layers = [conv("conv1", 3, 224, 224, 64, 7, pad=3, stride=2)]
    size, channels = 56, 64           # after the 3x3/2 max pool
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=2):
        stride = 1 if stage == 2 else 2
        out = 4 * width
        prefix = f"res{stage}"
        # The first block downsamples (stride on its 1x1) and projects the shortcut.
        layers.append(conv(f"{prefix}a_branch1", channels, size, size, out, 1, stride=stride))
        layers.append(conv(f"{prefix}a_branch2a", channels, size, size, width, 1, stride=stride))
        size //= stride
        layers.append(conv(f"{prefix}_branch2b", width, size, size, width, 3, pad=1, count=count))
        layers.append(conv(f"{prefix}_branch2c", width, size, size, out, 1, count=count))
        if count > 1:
            layers.append(conv(f"{prefix}_branch2a", out, size, size, width, 1, count=count - 1))
        channels = out
    layers.append(fc("fc1000", 2048, 1000))
    return Model(name, tuple(layers), (3, 224, 224))


# VGG -------------------------------------------------------------------------------------------

def _vgg(name: str, per_stage: tuple[int, ...]) -> Model:
    layers, channels, size = [], 3, 224
    for stage, (count, width) in enumerate(zip(per_stage, (64, 128, 256, 512, 512)), start=1):
        layers.append(conv(f"conv{stage}_1", channels, size, size, width, 3, pad=1))
        if count > 1:
            layers.append(conv(f"conv{stage}_2..{count}", width, size, size, width, 3, pad=1, count=count - 1))
        channels, size = width, size // 2
    layers += [fc("fc6", 512 * 7 * 7, 4096), fc("fc7", 4096, 4096), fc("fc8", 4096, 1000)]
    return Model(name, tuple(layers), (3, 224, 224))


# AlexNets --------------------------------------------------------------------------------------

ALEXNET = Model("AlexNet", (
    conv("conv1", 3, 227, 227, 96, 11, stride=4),
    conv("conv2", 96, 27, 27, 256, 5, pad=2, groups=2),
    conv("conv3", 256, 13, 13, 384, 3, pad=1),
    conv("conv4", 384, 13, 13, 384, 3, pad=1, groups=2),
    conv("conv5", 384, 13, 13, 256, 3, pad=1, groups=2),
    fc("fc6", 256 * 6 * 6, 4096), fc("fc7", 4096, 4096), fc("fc8", 4096, 1000),
), (3, 227, 227))

ALEXNET_OWT = Model("AlexNetOWT", (
    conv("conv1", 3, 224, 224, 64, 11, pad=2, stride=4),
    conv("conv2", 64, 27, 27, 192, 5, pad=2),
    conv("conv3", 192, 13, 13, 384, 3, pad=1),
    conv("conv4", 384, 13, 13, 256, 3, pad=1),
    conv("conv5", 256, 13, 13, 256, 3, pad=1),
    fc("fc6", 256 * 6 * 6, 4096), fc("fc7", 4096, 4096), fc("fc8", 4096, 1000),
), (3, 224, 224))


# GoogLeNet -------------------------------------------------------------------------------------

# Inception modules (Szegedy et al. 2014, table 1): input channels, spatial size, then #1x1,
# #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool projection.
_INCEPTION = (
    ("3a", 192, 28, 64, 96, 128, 16, 32, 32), ("3b", 256, 28, 128, 128, 192, 32, 96, 64),
    ("4a", 480, 14, 192, 96, 208, 16, 48, 64), ("4b", 512, 14, 160, 112, 224, 24, 64, 64),
    ("4c", 512, 14, 128, 128, 256, 24, 64, 64), ("4d", 512, 14, 112, 144, 288, 32, 64, 64),
    ("4e", 528, 14, 256, 160, 320, 32, 128, 128), ("5a", 832, 7, 256, 160, 320, 32, 128, 128),
    ("5b", 832, 7, 384, 192, 384, 48, 128, 128),
)


def _googlenet() -> Model:
    layers = [conv("conv1/7x7_s2", 3, 224, 224, 64, 7, pad=3, stride=2),
              conv("conv2/3x3_reduce", 64, 56, 56, 64, 1),
              conv("conv2/3x3", 64, 56, 56, 192, 3, pad=1)]
    for name, cin, size, n1, r3, n3, r5, n5, pool in _INCEPTION:
        prefix = f"inception_{name}"
        layers += [conv(f"{prefix}/1x1", cin, size, size, n1, 1),
                   conv(f"{prefix}/3x3_reduce", cin, size, size, r3, 1),
                   conv(f"{prefix}/3x3", r3, size, size, n3, 3, pad=1),
                   conv(f"{prefix}/5x5_reduce", cin, size, size, r5, 1),
                   conv(f"{prefix}/5x5", r5, size, size, n5, 5, pad=2),
                   conv(f"{prefix}/pool_proj", cin, size, size, pool, 1)]
    layers.append(fc("loss3/classifier", 1024, 1000))
    return Model("GoogLeNet", tuple(layers), (3, 224, 224))


# Fully-connected and text models ---------------------------------------------------------------

ACOUSTIC = Model("EnglishAcoustic", (fc("fc1", 540, 2048), fc("fc2..5", 2048, 2048, count=4),
                                     fc("fc6", 2048, 8192)), (540,))

# Input 1 x 59 x 128 (59 words, 128-wide embeddings); filters span the whole embedding.
TEXTCNN = Model("TextCNN", (conv("conv_1x128", 1, 59, 128, 128, 1, 128),
                            conv("conv_3x128", 1, 59, 128, 128, 3, 128, pad=(1, 0)),
                            conv("conv_5x128", 1, 59, 128, 128, 5, 128, pad=(2, 0)),
                            fc("fc", 384, 10)), (1, 59, 128))

DEEP_MNIST = Model("DeepMNIST", tuple(fc(f"fc{i + 1}", a, b) for i, (a, b) in enumerate(
    zip((784, 2500, 2000, 1500, 1000, 500), (2500, 2000, 1500, 1000, 500, 10)))), (784,))

MODELS = {model.name: model for model in (
    ALEXNET, ALEXNET_OWT, _googlenet(), _vgg("VGG16", (2, 2, 3, 3, 3)), _vgg("VGG19", (2, 2, 4, 4, 4)),
    _resnet("ResNet50", (3, 4, 6, 3)), _resnet("ResNet101", (3, 4, 23, 3)), _resnet("ResNet152", (3, 8, 36, 3)),
    ACOUSTIC, TEXTCNN, DEEP_MNIST,
)}
