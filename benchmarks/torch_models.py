"""PyTorch models that are not in the zoo, to validate the predictor on models imported from torch
(`dlcb models --torch benchmarks.torch_models:resnet18 --input 8x3x224x224`,
`dlcb validate --torch ...`). Written from the papers' architecture tables, not from torchvision
(which this package does not need):

- ResNet-18: He et al. 2015, Table 1 (basic blocks [2, 2, 2, 2], 64-128-256-512 channels);
- MobileNetV2: Sandler et al. 2018, Table 2 (inverted residuals, expansion 6, ReLU6, width 1.0);
- a 4-layer Transformer encoder: Vaswani et al. 2017's encoder layer (post-norm), d_model 256,
  4 heads, feed-forward 1024, over 128 tokens of a 10,000-word vocabulary;
- EfficientNet-B0: Tan & Le 2019, Table 1 (MBConv blocks with squeeze-and-excitation at a quarter
  of the block's input channels, SiLU, dropout 0.2 before the classifier; 5,288,548 parameters).
  Not one of the predictor's goal models: a model with layers (SiLU, a sigmoid gate multiplied
  over the feature map) that none of them has.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, channels = [], 64
        for outputs, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(channels, outputs, stride), BasicBlock(outputs, outputs, 1)]
            channels = outputs
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class InvertedResidual(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int, expansion: int):
        super().__init__()
        hidden = inputs * expansion
        layers = []
        if expansion != 1:
            layers += [nn.Conv2d(inputs, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(inplace=True), nn.Conv2d(hidden, outputs, 1, bias=False), nn.BatchNorm2d(outputs)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileFrame(nn.Module):
    """MobileNetV2's and EfficientNet-B0's frame: a 3x3/2 stem to 32 channels with BN and the
    activation, the blocks, a 1x1 convolution to 1280 channels, global average pooling, dropout
    0.2 and the classifier."""

    def __init__(self, blocks: list, channels: int, activation, classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), activation(inplace=True), *blocks,
            nn.Conv2d(channels, 1280, 1, bias=False), nn.BatchNorm2d(1280), activation(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x):
        return self.classifier(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


class MobileNetV2(MobileFrame):
    # (expansion, output channels, repeats, first stride), Sandler et al. 2018, Table 2
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, classes: int = 1000):
        blocks, channels = [], 32
        for expansion, outputs, repeats, stride in self.SETTINGS:
            for index in range(repeats):
                blocks.append(InvertedResidual(channels, outputs, stride if index == 0 else 1, expansion))
                channels = outputs
        super().__init__(blocks, channels, nn.ReLU6, classes)


class TransformerEncoder(nn.Module):
    def __init__(self, vocab: int = 10000, d_model: int = 256, heads: int = 4, feed_forward: int = 1024,
                 layers: int = 4):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList([nn.TransformerEncoderLayer(d_model, heads, feed_forward, batch_first=True)
                                     for _ in range(layers)])
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        h = self.embedding(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


class MBConv(nn.Module):
    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        hidden, squeezed = inputs * expansion, max(1, inputs // 4)
        layers = []
        if expansion != 1:
            layers += [nn.Conv2d(inputs, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.SiLU(inplace=True)]
        self.expand_depthwise = nn.Sequential(*layers)
        self.squeeze = nn.Conv2d(hidden, squeezed, 1)
        self.excite = nn.Conv2d(squeezed, hidden, 1)
        self.project = nn.Sequential(nn.Conv2d(hidden, outputs, 1, bias=False), nn.BatchNorm2d(outputs))
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x):
        y = self.expand_depthwise(x)
        gate = torch.sigmoid(self.excite(nn.functional.silu(self.squeeze(nn.functional.adaptive_avg_pool2d(y, 1)))))
        y = self.project(y * gate)
        return x + y if self.residual else y


class EfficientNetB0(MobileFrame):
    # (expansion, kernel, first stride, output channels, repeats), Tan & Le 2019, Table 1
    STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
              (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))

    def __init__(self, classes: int = 1000):
        blocks, channels = [], 32
        for expansion, kernel, stride, outputs, repeats in self.STAGES:
            for index in range(repeats):
                blocks.append(MBConv(channels, outputs, kernel, stride if index == 0 else 1, expansion))
                channels = outputs
        super().__init__(blocks, channels, nn.SiLU, classes)


def resnet18() -> nn.Module:
    return ResNet18()


def mobilenet_v2() -> nn.Module:
    return MobileNetV2()


def transformer_encoder() -> nn.Module:
    return TransformerEncoder()


def efficientnet_b0() -> nn.Module:
    return EfficientNetB0()
