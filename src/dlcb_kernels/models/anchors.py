"""Anchor layers: shapes the models suite measures besides the chosen models' own, so that the
predictor's fitted models interpolate where a model it has not measured is likely to fall.

A table measured for a few CNNs holds thin GEMMs only (an fc layer's rows are the batch: 4 to
64), no depthwise convolution and no dropout rate but 0.5; a Transformer's token-major GEMMs
(1024 rows at batch 8 x 128 tokens) were then extrapolated from them 34% to 54% too slow, and
the rate of a dropout could not be told from its size; and PyTorch's CPU weight gradient of a
5x5 depthwise convolution (EfficientNet, MnasNet, MobileNetV3) runs at 0.4-4% of the roofline
(85 ms for one 28x28x240 layer at batch 8, against 3x3 depthwise ones at 23-45%), a cliff only a
5x5 depthwise record shows (EfficientNet-B0's training step was predicted 45% short from the
other models' records). A convolution whose kernel spans its whole input row (a text CNN's
window over word embeddings: one input channel, output rows one pixel wide) ran at 0.23-0.31 of
the roofline against 0.8-1.0 for the same work with wide output rows (PyTorch's direct kernels
keep a row's outputs in registers; a 5x128 window over 59x128 embeddings took 10.9 ms, the same
convolution transposed 4.4 ms), a regime no image CNN reaches. And attention's per-head GEMMs
(128x64x128 for a 4-head Transformer encoder over 128 tokens) are small but square: fitted from
the CNNs' fc layers, as small in FLOPs but thin (rows = batch), they came out 1.4 to 8 times
too slow. The anchors are one layer of each common family the zoo lacks, at one batch (the
text window at two sizes: one record alone did not outweigh the image convolutions around it):
token-major fc layers from 512 to 2048 wide, a ResNet-like 3x3 and 1x1 convolution, depthwise
3x3 convolutions (stride 1 and 2) and a 5x5 one, a single-channel first layer (grayscale input),
windows of 4 and 2 tokens over 256- and 512-wide embeddings, attention's scores and context
GEMMs (4 heads of 32 over 256 tokens), and dropout at rates 0.1 and 0.5 on the same tensor.
They are measured in the passes the models suite measures (inference forward, or forward and
both backward passes in training). `dlcb bench --suite models --no-anchors` leaves them out.
"""

from __future__ import annotations

from .layers import Layer, Model, conv, fc, matmul

ANCHOR_BATCH = 8
ANCHOR_TOKENS = 128   # fc rows per sample: 1024-row GEMMs at the anchor batch
LEAD = "lead"         # not an anchor: its problems are not measured


def _anchor_layers() -> tuple[Layer, ...]:
    # The first layer with weights computes no input gradient (the model input needs none,
    # models.layers.without_input_gradient): a small one leads so that every anchor after it is
    # measured in all its passes.
    layers = [fc(LEAD, 16, 16)]
    layers += [fc(f"fc{width}_tokens", width, width, tokens=ANCHOR_TOKENS) for width in (512, 1024, 2048)]
    layers += [conv("conv3x3_64", 64, 56, 56, 64, 3, pad=1, bias=False),
               conv("conv1x1_256_128", 256, 28, 28, 128, 1, bias=False),
               conv("depthwise3x3_96", 96, 56, 56, 96, 3, pad=1, groups=96, bias=False),
               conv("depthwise3x3_240_s2", 240, 28, 28, 240, 3, pad=1, stride=2, groups=240, bias=False),
               conv("depthwise5x5_144", 144, 28, 28, 144, 5, pad=2, groups=144, bias=False),
               conv("grayscale5x5_32", 1, 28, 28, 32, 5, pad=2),
               conv("embedding_window4_96", 1, 64, 256, 96, 4, 256),
               conv("embedding_window2_64", 1, 32, 512, 64, 2, 512)]
    # Attention's per-head GEMMs (scores Q K^T and context P V, 4 heads of 32 over 256 tokens)
    layers += [matmul("attention_scores_256", 256, 256, 32, heads=4, trans_b=True),
               matmul("attention_context_256", 256, 32, 256, heads=4)]
    layers += [Layer(f"dropout_{rate:g}", "dropout", (ANCHOR_TOKENS, 1024), rate=rate) for rate in (0.1, 0.5)]
    return tuple(layers)


ANCHORS = Model("(anchors)", _anchor_layers(), (16,))
