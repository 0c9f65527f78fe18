"""Small PyTorch networks of the shapes users bring (a residual block, an inverted residual with
ReLU6, a Transformer encoder, an LSTM language model), for the importer's tests; also imported
by `dlcb models --torch torch_nets:...` in a subprocess."""

import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + x)


class ResNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.b = Block(16)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.b(self.pool(torch.relu(self.stem(x))))
        return self.fc(torch.flatten(self.gap(x), 1))


class Inverted(nn.Module):
    """MobileNetV2's inverted residual: expand, depthwise 3x3, project, ReLU6 between."""

    def __init__(self):
        super().__init__()
        self.e = nn.Conv2d(16, 96, 1, bias=False)
        self.r = nn.ReLU6(inplace=True)
        self.d = nn.Conv2d(96, 96, 3, padding=1, groups=96, bias=False)
        self.p = nn.Conv2d(96, 16, 1, bias=False)

    def forward(self, x):
        return x + self.p(self.r(self.d(self.r(self.e(x)))))


class Enc(nn.Module):
    def __init__(self, norm_first=False):
        super().__init__()
        self.emb = nn.Embedding(1000, 64)
        self.layers = nn.ModuleList([nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, norm_first=norm_first)
                                     for _ in range(2)])
        self.head = nn.Linear(64, 1000)

    def forward(self, x):
        h = self.emb(x)
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(500, 32)
        self.drop = nn.Dropout(0.3)
        self.lstm = nn.LSTM(32, 64, num_layers=2, batch_first=True)
        self.out = nn.Linear(64, 500)

    def forward(self, x):
        y, _ = self.lstm(self.drop(self.emb(x)))
        return self.out(y)
