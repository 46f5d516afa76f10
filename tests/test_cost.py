"""The cost model: hand-counted figures, TensorFlow's own count for every model, and the describe command."""
import json
import os
import subprocess
import sys

import keras
import pytest
from conftest import zoo
from keras import layers
from tfcount import tensorflow_flops, tensorflow_mac_flops

import models
from bench.cost.counts import model_cost
from bench.cost.describe import main as describe_main


@pytest.fixture(autouse=True)
def _fresh_session():
    yield
    keras.backend.clear_session()


@pytest.mark.parametrize("name, macs", [
    ("conv5x5", 28 * 28 * 32 * 5 * 5 * 192),  # 120,422,400: the source document's figure
    ("conv5x5_bottleneck", 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16),  # 12,443,648
    ("lenet5", 416_520),
    ("alexnet", 1_135_256_096),
])
def test_macs_match_the_hand_counts(name, macs):
    assert model_cost(models.build(name)).macs == macs


def test_flop_conventions_on_a_hand_made_model():
    inputs = keras.Input((8, 8, 2))
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)  # 8x8x4 = 256 outputs, 18 MACs each
    x = layers.BatchNormalization()(x)
    y = layers.MaxPooling2D(2)(x)  # 4x4x4 = 64 outputs, 4 comparisons each
    y = layers.Add()([y, y])
    y = layers.GlobalAveragePooling2D()(y)  # 64 inputs summed
    outputs = layers.Dense(3, activation="softmax")(y)  # 12 MACs
    cost = model_cost(keras.Model(inputs, outputs))
    by_type = {layer.type: layer.flops for layer in cost.layers}
    assert cost.macs == 256 * 18 + 12
    assert by_type == {"InputLayer": 0, "Conv2D": 2 * 256 * 18 + 256 + 256, "BatchNormalization": 2 * 256,
                       "MaxPooling2D": 64 * 4, "Add": 64, "GlobalAveragePooling2D": 64, "Dense": 24 + 3 + 3 * 3}
    first_conv_input_gradient = 2 * 256 * 18  # never computed: the input is not a variable
    assert cost.training_flops == 3 * cost.flops - first_conv_input_gradient
    assert cost.activation_bytes == 4 * (256 + 256 + 64 + 64 + 4 + 3)


def test_unknown_layer_types_are_reported_not_silently_zero():
    class Scale(layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((4,))
    cost = model_cost(keras.Model(inputs, layers.Dense(2)(Scale(name="scale")(inputs))))
    assert cost.unknown_layers == ("scale (Scale)",)


def test_nested_trunk_is_counted_layer_by_layer():
    shape = (64, 64, 3)
    transfer = model_cost(models.build("resnet50_transfer", input_shape=shape))
    trunk = model_cost(models.build("resnet50", input_shape=shape))
    head_macs = 2 * 2 * 2048 * 512 + 512 * 64 + 64 * 10
    assert transfer.macs == trunk.macs - 2048 * 1000 + head_macs
    assert any(layer.name == "resnet50_trunk/conv1_conv" for layer in transfer.layers)
    # The frozen trunk comes first, so only the head pays for a backward pass, and its first layer's input
    # (the trunk's output) needs no gradient.
    head = [layer for layer in transfer.layers if not layer.name.startswith("resnet50_trunk/")]
    first_trainable = next(layer for layer in head if layer.trainable_params)
    assert transfer.training_flops == transfer.flops + 2 * sum(layer.flops for layer in head) - 2 * first_trainable.macs


def test_a_lone_convolution_trains_at_twice_its_forward_plus_bias_and_activation():
    cost = model_cost(models.build("conv5x5"))
    conv = next(layer for layer in cost.layers if layer.type == "Conv2D")
    elementwise = conv.flops - 2 * conv.macs  # bias add and ReLU: one FLOP each per output element
    assert elementwise == 2 * 28 * 28 * 32
    assert cost.training_flops == 2 * cost.flops + elementwise


def test_activation_memory_follows_the_compute_dtype():
    float32 = model_cost(models.build("lenet5")).activation_bytes
    keras.config.set_dtype_policy("mixed_float16")
    try:
        half = model_cost(models.build("lenet5")).activation_bytes
    finally:
        keras.config.set_dtype_policy("float32")
    assert half * 2 == float32 == 33_976


def test_resnet50_agrees_with_tensorflows_count_of_keras_resnet50():
    ours = models.build("resnet50")
    counts = tensorflow_flops(ours)
    assert counts == tensorflow_flops(keras.applications.ResNet50(weights=None))
    assert counts["Conv2D"] + counts["MatMul"] == 2 * model_cost(ours).macs


@pytest.mark.parametrize("name", zoo(models.names()))
def test_tensorflow_counts_twice_our_macs(name):
    # At each model's small input: the count is exact at any size, and tracing a small graph is quick.
    model = models.build(name, input_shape=models.entry(name).small_input_shape)
    assert tensorflow_mac_flops(model) == 2 * model_cost(model).macs


def test_describe_json_has_the_batch_1_figures(capsys):
    assert describe_main(["lenet5", "conv5x5*", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == ["lenet5", "conv5x5", "conv5x5_bottleneck"]
    assert records[0]["macs"] == 416_520 and records[0]["params"] == 61_706
    assert {"name", "input_shape", "params", "trainable_params", "macs", "flops"} <= set(records[0])
    assert records[1]["input_shape"] == [28, 28, 192]


def test_describe_layers_table_and_input_shape(capsys):
    assert describe_main(["lenet5", "--layers", "--input-shape", "28,28,1"]) == 0
    out = capsys.readouterr().out
    assert "conv1        Conv2D            24x24x6" in out
    assert "lenet5 (28x28x1), per sample" in out


@pytest.mark.parametrize("argv, message", [
    (["resnet5"], "unknown model 'resnet5'; did you mean"),
    (["nothing*"], "no model matches 'nothing*'"),
    (["lenet5", "--input-shape", "32,32"], "--input-shape must be three positive integers"),
    (["lenet5", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
@pytest.mark.slow
def test_describe_bad_input_is_one_line_and_exit_2(argv, message):
    done = subprocess.run([sys.executable, "-m", "bench.describe", *argv], capture_output=True, text=True,
                          env=dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1"))  # oneDNN's start-up line, as on AVX-512
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
