"""The reference models: the Deep Learning Cookbook's eleven, a DeepSpeech2-style RNN model and
BERT-base.

Shapes follow the Caffe definitions the cookbook used: AlexNet is BVLC's (227x227 input, grouped
conv2/4/5, LRN), ResNets put the stride of a downsampling block on its first 1x1 convolution and
follow every convolution by BatchNorm + Scale (the original Caffe models: only ResNet-50's conv1
has a bias, which is what the cookbook's counts hold), Caffe's pooling rounds output sizes up.
Layers of the same shape are one entry with a count (e.g. the blocks of a ResNet stage after
its first). tests/test_models.py
holds every model to the parameter counts and forward MACs of ../shared/CONTEXT.md.
"""

from __future__ import annotations

from itertools import pairwise

from .layers import (
    Model,
    bn,
    concat,
    conv,
    dropout,
    eltwise,
    embedding,
    fc,
    gelu,
    layernorm,
    lrn,
    matmul,
    pool,
    relu,
    rnn,
    softmax,
    tanh,
)

# ResNets ---------------------------------------------------------------------------------------

def _resnet(name: str, blocks: tuple[int, int, int, int], conv1_bias: bool) -> Model:
    layers = [conv("conv1", 3, 224, 224, 64, 7, pad=3, stride=2, bias=conv1_bias),
              bn("bn_conv1", (64, 112, 112)), relu("conv1_relu", (64, 112, 112)),
              pool("pool1", 64, 112, 112, 3, stride=2)]
    size, channels = 56, 64           # after the 3x3/2 max pool
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=2):
        stride = 1 if stage == 2 else 2
        out = 4 * width
        prefix = f"res{stage}"
        # The first block downsamples (stride on its 1x1) and projects the shortcut.
        layers.append(conv(f"{prefix}a_branch1", channels, size, size, out, 1, stride=stride, bias=False))
        layers.append(conv(f"{prefix}a_branch2a", channels, size, size, width, 1, stride=stride, bias=False))
        size //= stride
        layers += [bn(f"bn{stage}a_branch1", (out, size, size)), bn(f"bn{stage}a_branch2a", (width, size, size)),
                   relu(f"{prefix}a_branch2a_relu", (width, size, size))]
        if count > 1:
            layers += [conv(f"{prefix}_branch2a", out, size, size, width, 1, bias=False, count=count - 1),
                       bn(f"bn{stage}_branch2a", (width, size, size), count=count - 1),
                       relu(f"{prefix}_branch2a_relu", (width, size, size), count=count - 1)]
        layers += [conv(f"{prefix}_branch2b", width, size, size, width, 3, pad=1, bias=False, count=count),
                   bn(f"bn{stage}_branch2b", (width, size, size), count=count),
                   relu(f"{prefix}_branch2b_relu", (width, size, size), count=count),
                   conv(f"{prefix}_branch2c", width, size, size, out, 1, bias=False, count=count),
                   bn(f"bn{stage}_branch2c", (out, size, size), count=count),
                   eltwise(f"{prefix}_add", (out, size, size), count=count),
                   relu(f"{prefix}_relu", (out, size, size), count=count)]
        channels = out
    layers += [pool("pool5", 2048, 7, 7, 7, stride=1, mode="avg"), fc("fc1000", 2048, 1000),
               softmax("prob", (1000,))]
    return Model(name, tuple(layers), (3, 224, 224),
                 "He et al. 2015, the original Caffe ResNet-50/101/152 deploy definitions "
                 "(KaimingHe/deep-residual-networks)")


# VGG -------------------------------------------------------------------------------------------

def _vgg(name: str, per_stage: tuple[int, ...]) -> Model:
    layers, channels, size = [], 3, 224
    for stage, (count, width) in enumerate(zip(per_stage, (64, 128, 256, 512, 512)), start=1):
        layers += [conv(f"conv{stage}_1", channels, size, size, width, 3, pad=1),
                   relu(f"relu{stage}_1..{count}", (width, size, size), count=count)]
        if count > 1:
            layers.append(conv(f"conv{stage}_2..{count}", width, size, size, width, 3, pad=1, count=count - 1))
        layers.append(pool(f"pool{stage}", width, size, size, 2))
        channels, size = width, size // 2
    layers += [fc("fc6", 512 * 7 * 7, 4096), relu("relu6", (4096,)), dropout("drop6", (4096,)),
               fc("fc7", 4096, 4096), relu("relu7", (4096,)), dropout("drop7", (4096,)),
               fc("fc8", 4096, 1000), softmax("prob", (1000,))]
    return Model(name, tuple(layers), (3, 224, 224),
                 "Simonyan & Zisserman 2014, configurations D and E (Caffe model zoo)")


# AlexNets --------------------------------------------------------------------------------------

def _alexnet_classifier(flat: int) -> list:
    return [fc("fc6", flat, 4096), relu("relu6", (4096,)), dropout("drop6", (4096,)),
            fc("fc7", 4096, 4096), relu("relu7", (4096,)), dropout("drop7", (4096,)),
            fc("fc8", 4096, 1000), softmax("prob", (1000,))]


ALEXNET = Model("AlexNet", (
    conv("conv1", 3, 227, 227, 96, 11, stride=4), relu("relu1", (96, 55, 55)), lrn("norm1", (96, 55, 55)),
    pool("pool1", 96, 55, 55, 3, stride=2),
    conv("conv2", 96, 27, 27, 256, 5, pad=2, groups=2), relu("relu2", (256, 27, 27)), lrn("norm2", (256, 27, 27)),
    pool("pool2", 256, 27, 27, 3, stride=2),
    conv("conv3", 256, 13, 13, 384, 3, pad=1), relu("relu3", (384, 13, 13)),
    conv("conv4", 384, 13, 13, 384, 3, pad=1, groups=2), relu("relu4", (384, 13, 13)),
    conv("conv5", 384, 13, 13, 256, 3, pad=1, groups=2), relu("relu5", (256, 13, 13)),
    pool("pool5", 256, 13, 13, 3, stride=2),
    *_alexnet_classifier(256 * 6 * 6),
), (3, 227, 227), "BVLC AlexNet (Caffe models/bvlc_alexnet), Krizhevsky et al. 2012 with grouped convolutions")

ALEXNET_OWT = Model("AlexNetOWT", (
    conv("conv1", 3, 224, 224, 64, 11, pad=2, stride=4), relu("relu1", (64, 55, 55)),
    pool("pool1", 64, 55, 55, 3, stride=2),
    conv("conv2", 64, 27, 27, 192, 5, pad=2), relu("relu2", (192, 27, 27)),
    pool("pool2", 192, 27, 27, 3, stride=2),
    conv("conv3", 192, 13, 13, 384, 3, pad=1), relu("relu3", (384, 13, 13)),
    conv("conv4", 384, 13, 13, 256, 3, pad=1), relu("relu4", (256, 13, 13)),
    conv("conv5", 256, 13, 13, 256, 3, pad=1), relu("relu5", (256, 13, 13)),
    pool("pool5", 256, 13, 13, 3, stride=2),
    *_alexnet_classifier(256 * 6 * 6),
), (3, 224, 224), "Krizhevsky 2014, 'One weird trick' (torchvision's alexnet)")


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
# The max pool before a module that halves the spatial size (after 3b and 4e).
_POOL_BEFORE = {"4a": "pool3/3x3_s2", "5a": "pool4/3x3_s2"}


def _googlenet() -> Model:
    layers = [conv("conv1/7x7_s2", 3, 224, 224, 64, 7, pad=3, stride=2), relu("conv1/relu_7x7", (64, 112, 112)),
              pool("pool1/3x3_s2", 64, 112, 112, 3, stride=2), lrn("pool1/norm1", (64, 56, 56)),
              conv("conv2/3x3_reduce", 64, 56, 56, 64, 1), relu("conv2/relu_3x3_reduce", (64, 56, 56)),
              conv("conv2/3x3", 64, 56, 56, 192, 3, pad=1), relu("conv2/relu_3x3", (192, 56, 56)),
              lrn("conv2/norm2", (192, 56, 56)), pool("pool2/3x3_s2", 192, 56, 56, 3, stride=2)]
    for name, cin, size, n1, r3, n3, r5, n5, proj in _INCEPTION:
        if name in _POOL_BEFORE:
            layers.append(pool(_POOL_BEFORE[name], cin, 2 * size, 2 * size, 3, stride=2))
        prefix = f"inception_{name}"
        for branch, c_in, k, r in (("1x1", cin, n1, 1), ("3x3_reduce", cin, r3, 1), ("3x3", r3, n3, 3),
                                   ("5x5_reduce", cin, r5, 1), ("5x5", r5, n5, 5)):
            layers += [conv(f"{prefix}/{branch}", c_in, size, size, k, r, pad=r // 2),
                       relu(f"{prefix}/relu_{branch}", (k, size, size))]
        layers += [pool(f"{prefix}/pool", cin, size, size, 3, stride=1, pad=1),
                   conv(f"{prefix}/pool_proj", cin, size, size, proj, 1),
                   relu(f"{prefix}/relu_pool_proj", (proj, size, size)),
                   concat(f"{prefix}/output", (n1 + n3 + n5 + proj, size, size))]
    layers += [pool("pool5/7x7_s1", 1024, 7, 7, 7, stride=1, mode="avg"), dropout("pool5/drop_7x7_s1", (1024,)),
               fc("loss3/classifier", 1024, 1000), softmax("prob", (1000,))]
    return Model("GoogLeNet", tuple(layers), (3, 224, 224),
                 "Szegedy et al. 2014 (table 1); BVLC GoogLeNet deploy definition without the auxiliary heads")


# Fully-connected and text models ---------------------------------------------------------------

ACOUSTIC = Model("EnglishAcoustic", (
    fc("fc1", 540, 2048), relu("relu1", (2048,)),
    fc("fc2..5", 2048, 2048, count=4), relu("relu2..5", (2048,), count=4),
    fc("fc6", 2048, 8192), softmax("prob", (8192,)),
), (540,), "Deep Learning Cookbook: 540 -> 5 x FC-2048 (ReLU) -> FC-8192 -> softmax")

# Input 1 x 59 x 128 (59 words, 128-wide embeddings); filters span the whole embedding.
TEXTCNN = Model("TextCNN", (
    conv("conv_1x128", 1, 59, 128, 128, 1, 128), conv("conv_3x128", 1, 59, 128, 128, 3, 128, pad=(1, 0)),
    conv("conv_5x128", 1, 59, 128, 128, 5, 128, pad=(2, 0)),
    concat("concat", (384, 59, 1)), relu("relu", (384, 59, 1)), pool("pool", 384, 59, 1, (59, 1)),
    fc("fc", 384, 10), softmax("prob", (10,)),
), (1, 59, 128), "Deep Learning Cookbook's TextCNN: three parallel convolutions over 59 x 128 embeddings")

_MNIST_SIZES = (784, 2500, 2000, 1500, 1000, 500, 10)
DEEP_MNIST = Model("DeepMNIST", tuple(
    layer for i, (a, b) in enumerate(pairwise(_MNIST_SIZES), start=1)
    for layer in ((fc(f"fc{i}", a, b),) + ((relu(f"relu{i}", (b,)),) if b != 10 else (softmax("prob", (b,)),)))
), (784,), "Deep Learning Cookbook: fully connected 784-2500-2000-1500-1000-500-10 (Ciresan et al. 2010)")


# DeepSpeech2-style speech model ----------------------------------------------------------------

# The structure of Amodei et al. 2016 (arXiv:1512.02595): 2-D convolutions over the spectrogram
# with BatchNorm and a clipped ReLU (counted as a ReLU), a stack of bidirectional GRU layers, a
# fully-connected layer to the 29 characters (a-z, space, apostrophe, CTC blank). The front end
# is deepspeech.pytorch's DeepSpeech2 (as tabulated in PLOS Biology 21(12):e3002366, 2023,
# table 5): 32 filters of 41x11, stride 2x2, pad 20x5, then 32 of 21x11, stride 2x1, pad 10x5;
# like it we sum the two directions of each recurrent layer. The recurrent stack is our choice
# (the paper varies its depth): 5 bidirectional GRU layers of 800 units. One sample is one
# utterance of 7 s: 700 frames of 10 ms, 161 frequency bins (20 ms windows at 16 kHz), so 350
# steps after the time stride of 2. Convolutions have no bias (BatchNorm follows); the
# sequence-wise BatchNorm of the recurrent layers is left out.
_DS2_FRAMES, _DS2_BINS, _DS2_HIDDEN, _DS2_RNN_LAYERS, _DS2_CHARACTERS = 700, 161, 800, 5, 29


def _deepspeech2() -> Model:
    conv1 = conv("conv1", 1, _DS2_BINS, _DS2_FRAMES, 32, 41, 11, pad=(20, 5), stride=(2, 2), bias=False)
    _, bins1, steps1 = conv1.output_tensor()
    conv2 = conv("conv2", 32, bins1, steps1, 32, 21, 11, pad=(10, 5), stride=(2, 1), bias=False)
    channels, bins2, steps = conv2.output_tensor()
    hidden, deeper = _DS2_HIDDEN, _DS2_RNN_LAYERS - 1
    layers = [conv1, bn("conv1_bn", (32, bins1, steps1)), relu("conv1_clipped_relu", (32, bins1, steps1)),
              conv2, bn("conv2_bn", (channels, bins2, steps)), relu("conv2_clipped_relu", (channels, bins2, steps)),
              # each direction is one unidirectional layer; the directions' outputs are summed
              rnn("gru1", channels * bins2, hidden, steps, cell="gru", count=2),
              eltwise("gru1_sum", (steps, hidden)),
              rnn(f"gru2..{_DS2_RNN_LAYERS}", hidden, hidden, steps, cell="gru", count=2 * deeper),
              eltwise(f"gru2..{_DS2_RNN_LAYERS}_sum", (steps, hidden), count=deeper),
              fc("fc", hidden, _DS2_CHARACTERS, tokens=steps), softmax("prob", (steps, _DS2_CHARACTERS))]
    return Model("DeepSpeech2", tuple(layers), (1, _DS2_BINS, _DS2_FRAMES),
                 "Amodei et al. 2016 (arXiv:1512.02595): 2 conv + 5 bidirectional GRU-800 + FC-29, "
                 "7 s utterance (700 frames x 161 bins)")


DEEPSPEECH2 = _deepspeech2()


# BERT-base -------------------------------------------------------------------------------------

# Devlin et al. 2018 (arXiv:1810.04805) BERT-base, the bert-base-uncased checkpoint's shapes
# (Hugging Face BertModel: 30522-token vocabulary, 512 positions, 2 token types, hidden 768,
# 12 layers of 12 heads of 64, feed-forward 3072, GELU, pooler on the first token). One sample
# is one sequence of 128 tokens: fully-connected layers run over 128 rows per sample.
_BERT_SEQ, _BERT_HIDDEN, _BERT_LAYERS, _BERT_HEADS, _BERT_FFN = 128, 768, 12, 12, 3072


def _bert_base() -> Model:
    seq, hidden, heads, ffn, count = _BERT_SEQ, _BERT_HIDDEN, _BERT_HEADS, _BERT_FFN, _BERT_LAYERS
    head_dim = hidden // heads
    tokens = (seq, hidden)
    layers = [embedding("word_embeddings", 30522, hidden, seq), embedding("position_embeddings", 512, hidden, seq),
              embedding("token_type_embeddings", 2, hidden, seq), eltwise("embeddings_sum", tokens, operands=3),
              layernorm("embeddings_layernorm", tokens), dropout("embeddings_dropout", tokens)]
    layers += [fc(f"attention_{name}", hidden, hidden, tokens=seq, count=count) for name in ("query", "key", "value")]
    layers += [matmul("attention_scores", seq, seq, head_dim, heads=heads, trans_b=True, count=count),   # Q K^T
               softmax("attention_softmax", (heads, seq, seq), count=count),     # scaled and masked alike
               dropout("attention_probs_dropout", (heads, seq, seq), count=count),
               matmul("attention_context", seq, head_dim, seq, heads=heads, count=count),           # P V
               fc("attention_output", hidden, hidden, tokens=seq, count=count),
               dropout("attention_output_dropout", tokens, count=count),
               eltwise("attention_residual", tokens, count=count),
               layernorm("attention_layernorm", tokens, count=count),
               fc("intermediate", hidden, ffn, tokens=seq, count=count),
               gelu("intermediate_gelu", (seq, ffn), count=count),
               fc("output", ffn, hidden, tokens=seq, count=count),
               dropout("output_dropout", tokens, count=count),
               eltwise("output_residual", tokens, count=count),
               layernorm("output_layernorm", tokens, count=count),
               fc("pooler", hidden, hidden), tanh("pooler_tanh", (hidden,))]
    return Model("BERT-base", tuple(layers), (seq,),
                 "Devlin et al. 2018 (arXiv:1810.04805), bert-base-uncased shapes (Hugging Face), sequence length 128")


BERT_BASE = _bert_base()


MODELS: dict[str, Model] = {model.name: model for model in (
    ALEXNET, ALEXNET_OWT, _googlenet(), _vgg("VGG16", (2, 2, 3, 3, 3)), _vgg("VGG19", (2, 2, 4, 4, 4)),
    _resnet("ResNet50", (3, 4, 6, 3), conv1_bias=True), _resnet("ResNet101", (3, 4, 23, 3), conv1_bias=False),
    _resnet("ResNet152", (3, 8, 36, 3), conv1_bias=False),
    ACOUSTIC, TEXTCNN, DEEP_MNIST, DEEPSPEECH2, BERT_BASE,
)}
