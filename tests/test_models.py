"""The model zoo: every model builds, and the counts match keras.applications and the published figures."""
import keras
import numpy as np
import pytest
from conftest import DEEPER_SIBLINGS, zoo

import models
from bench.cost import facts as model_facts
from bench.cost.facts import facts_of
from models.__main__ import main as models_main
from models.info import depth, parameter_counts

EXPECTED_NAMES = {
    "lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50v2", "resnet101v2", "resnet152v2",
    *(f"resnet{d}{v}" for d in (20, 32, 44, 56, 110) for v in ("", "v2")),
    "googlenet", "inception_v3", "inception_v4", "resnet50_transfer",
    "conv5x5", "conv5x5_bottleneck", "inception3a_naive", "inception3a",
}

KERAS_TWINS = {
    "vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19,
    "resnet50": keras.applications.ResNet50, "resnet101": keras.applications.ResNet101,
    "resnet152": keras.applications.ResNet152, "resnet50v2": keras.applications.ResNet50V2,
    "resnet101v2": keras.applications.ResNet101V2, "resnet152v2": keras.applications.ResNet152V2,
    "inception_v3": keras.applications.InceptionV3,
}
PUBLISHED_PARAMS = {"lenet5": 61_706, "alexnet": 62_378_344}
PAPER_DEPTH = {"lenet5": 5, "alexnet": 8, "vgg16": 16, "vgg19": 19, "resnet18": 18, "resnet50": 50,
               "resnet152v2": 152, "resnet110": 110, "googlenet": 22}


@pytest.fixture(autouse=True)
def _fresh_session():
    yield
    keras.backend.clear_session()


def weight_shapes(model):
    return sorted(tuple(w.shape) for w in model.weights)


def test_registry_holds_every_model_of_the_source_documents():
    assert set(models.names()) == EXPECTED_NAMES


def test_the_quick_loop_builds_a_model_of_every_family():
    assert DEEPER_SIBLINGS < EXPECTED_NAMES
    families = {models.entry(name).family for name in EXPECTED_NAMES}
    assert {models.entry(name).family for name in EXPECTED_NAMES - DEEPER_SIBLINGS} == families


@pytest.mark.parametrize("name", zoo(sorted(EXPECTED_NAMES)))
def test_builds_at_default_input_with_the_reference_counts(name):
    spec = models.entry(name)
    model = models.build(name)
    assert model.name == name
    assert model.input_shape == (None, *spec.input_shape)
    if spec.num_classes is not None:
        assert model.output_shape == (None, spec.num_classes)
    if name in KERAS_TWINS:
        twin = KERAS_TWINS[name](weights=None)
        assert model.count_params() == twin.count_params()
        assert weight_shapes(model) == weight_shapes(twin)
    if name in PUBLISHED_PARAMS:
        assert model.count_params() == PUBLISHED_PARAMS[name]
    if name in PAPER_DEPTH:
        assert depth(model) == PAPER_DEPTH[name]
    # the copy that listing and planning read (models/facts.json; `python -m bench.cost.facts` rewrites it) holds
    assert facts_of(model) == model_facts.load()[name]["default"]


@pytest.mark.parametrize("name", zoo(sorted(EXPECTED_NAMES)))
def test_builds_at_a_custom_input_and_runs(name):
    spec = models.entry(name)
    shape = spec.small_input_shape
    classes = spec.num_classes
    model = models.build(name, input_shape=shape)
    assert facts_of(model) == model_facts.load()[name]["small"]
    out = model(np.random.default_rng(0).random((2, *shape), dtype=np.float32), training=False)
    out = np.asarray(out)
    assert np.isfinite(out).all()
    if classes:
        assert out.shape == (2, classes)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-4)
    else:
        assert out.shape[:3] == (2, *shape[:2])


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "googlenet"])
def test_a_custom_class_count_sets_the_head(name):
    model = models.build(name, input_shape=models.entry(name).small_input_shape, num_classes=7)
    assert model.output_shape == (None, 7)


def test_inception_v4_has_about_42_7_million_parameters():
    assert abs(models.build("inception_v4").count_params() - 42.7e6) < 0.05e6


def test_cost_example_modules_have_the_papers_output_channels():
    assert models.build("conv5x5").output_shape == (None, 28, 28, 32)
    assert models.build("conv5x5_bottleneck").output_shape == (None, 28, 28, 32)
    assert models.build("inception3a").output_shape == (None, 28, 28, 256)  # 64 + 128 + 32 + 32
    assert models.build("inception3a_naive").output_shape == (None, 28, 28, 416)  # 64 + 128 + 32 + 192


def test_transfer_model_trains_only_its_head():
    model = models.build("resnet50_transfer", input_shape=(64, 64, 3))
    head = 2 * 2 * 2048 * 512 + 512 + 512 * 64 + 64 + 64 * 10 + 10
    total, trainable = parameter_counts(model)
    assert trainable == head
    trunk = model.get_layer("resnet50_trunk")
    assert not trunk.trainable and total == trainable + trunk.count_params()


def test_googlenet_auxiliary_classifiers_are_opt_in():
    assert len(models.build("googlenet").outputs) == 1
    model = models.build("googlenet", aux_classifiers=True)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 1000)] * 3


def test_resnet_v1_downsamples_on_the_first_1x1_conv_like_keras():
    conv = models.build("resnet50").get_layer("conv3_block1_1_conv")
    assert conv.strides == (2, 2) and conv.kernel_size == (1, 1)


def test_names_take_wildcards_in_natural_order():
    assert models.names("resnet1*") == ["resnet18", "resnet101", "resnet101v2", "resnet110", "resnet110v2",
                                        "resnet152", "resnet152v2"]
    assert models.names("vgg*") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert models.names("nothing*") == []


def test_unknown_name_names_the_closest_models():
    with pytest.raises(ValueError, match=r"unknown model 'resnet5'.*resnet50"):
        models.build("resnet5")


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_shape=(32, 32)), "three positive integers"),
    (dict(input_shape=(32, 0, 3)), "three positive integers"),
    (dict(num_classes=0), "positive integer"),
    (dict(input_shape=(8, 8, 3)), "too small for inception_v3"),
])
def test_bad_build_arguments_are_rejected_with_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.build("inception_v3", **kwargs)


def test_feature_map_models_take_no_class_count():
    with pytest.raises(ValueError, match="no classifier head"):
        models.build("conv5x5", num_classes=10)


def test_registering_a_name_twice_is_an_error():
    from models.registry import register
    with pytest.raises(ValueError, match="registered twice"):
        register("lenet5", models.entry("lenet5").builder, family="lenet", input_shape=(32, 32, 1),
                 num_classes=10, reference="")


def test_table_lists_models_with_counts_and_depth(capsys):
    assert models_main(["lenet*"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("lenet5"))
    assert row.split()[:7] == ["lenet5", "lenet", "32x32x1", "10", "61,706", "61,706", "5"]


def test_table_with_no_match_exits_2(capsys):
    assert models_main(["nothing*"]) == 2
    assert "no model matches" in capsys.readouterr().err
