"""BuildConfig: validation messages (rule, value, fix), YAML loading, unknown keys, overrides."""
from __future__ import annotations

import dataclasses

import pytest

from edgeclf.toolchain.config import BuildConfig, ConfigError


@pytest.mark.parametrize("key, value, message", [
    ("prune.sparsity", 1.2, "--prune must be in [0, 0.95); received 1.2. Use e.g. --prune 0.5."),
    ("prune.sparsity", -0.1, "--prune must be in [0, 0.95); received -0.1."),
    ("prune.sparsity", 0.95, "--prune must be in [0, 0.95); received 0.95."),
    ("train.epochs", 0, "--epochs must be an integer >= 1; received 0. Use e.g. --epochs 20."),
    ("train.batch_size", 0, "--batch-size must be an integer in [1, 4096]; received 0."),
    ("train.learning_rate", 2.0, "--learning-rate must be in (0, 1); received 2.0."),
    ("model.name", "resnet9000", "--model must be one of cnn, efficientnet_b0, mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small, resnet50, resnet_mini, tiny or a tf_keras .keras/.h5 file; received 'resnet9000'."),
    ("model.size", -3, "--size must be a positive integer (pixels); received -3."),
    ("data.val_split", 1.5, "--val-split must be in (0, 1); received 1.5."),
    ("data.source", "", "--data must be a folder or one of digits, mnist, fashion_mnist, cifar10; received ''."),
    ("train.schedule", "linear", "--schedule must be one of plateau, cosine, step; received 'linear'."),
    ("train.label_smoothing", 1.0, "--label-smoothing must be in [0, 1); received 1.0."),
    ("train.fine_tune_epochs", -1, "--fine-tune-epochs must be an integer >= 0; received -1."),
    ("train.fine_tune_layers", -2, "--fine-tune-layers must be an integer >= 0; received -2."),
    ("train.patience", 0, "--patience must be an integer >= 1; received 0."),
    ("train.strategy", "tpu", "--strategy must be one of default, mirrored, multiworker; received 'tpu'."),
    ("train.tensorboard", "", "--tensorboard must be a folder path; received ''."),
    ("data.augment", "heavy", "--augment must be one of none, light, strong; received 'heavy'."),
    ("data.class_weight", "balanced", "--class-weight must be one of none, auto; received 'balanced'."),
    ("data.flip", "yes", "data.flip is a switch (true/false); received 'yes'."),
    ("quantize.calib_size", 0, "--calib-size must be an integer >= 1; received 0."),
    ("seed", -1, "--seed must be an integer >= 0; received -1."),
    ("export.out", "", "--out must be a folder path; received ''."),
])
def test_invalid_values_name_flag_value_and_fix(key, value, message):
    with pytest.raises(ConfigError) as info:
        BuildConfig().override({key: value})
    assert message in str(info.value)


def test_mobilenet_alpha_and_multiworker_resume_are_checked_together_with_their_model_and_strategy():
    with pytest.raises(ConfigError, match=r"--alpha for mobilenet_v2 must be one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4 .*received 0.6"):
        BuildConfig().override({"model.name": "mobilenet_v2", "model.alpha": 0.6})
    with pytest.raises(ConfigError, match="--resume is not supported with --strategy multiworker"):
        BuildConfig().override({"train.resume": True, "train.strategy": "multiworker"})


def test_frozen_and_defaults():
    config = BuildConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3
    assert (config.data.source, config.model.name, config.prune.sparsity, config.quantize.int8) == ("digits", "cnn", 0.0, False)


def test_unknown_keys_suggest_the_closest():
    with pytest.raises(ConfigError, match=r"unknown key 'prune.sparsty'. Did you mean 'prune.sparsity'\?"):
        BuildConfig.from_dict({"prune": {"sparsty": 0.5}})
    with pytest.raises(ConfigError, match=r"unknown key 'quantise'. Did you mean 'quantize'\?"):
        BuildConfig.from_dict({"quantise": {"int8": True}})


def test_yaml_round_trip_and_override(tmp_path):
    path = tmp_path / "build.yaml"
    path.write_text("model:\n  name: tiny\nprune:\n  sparsity: 0.5\ntrain:\n  epochs: 3\n")
    config = BuildConfig.from_yaml(path)
    assert (config.model.name, config.prune.sparsity, config.train.epochs) == ("tiny", 0.5, 3)
    assert config.override({"train.epochs": 7}).train.epochs == 7
    assert BuildConfig.from_dict(__import__("yaml").safe_load(config.to_yaml())) == config


def test_bad_yaml_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read the config file"):
        BuildConfig.from_yaml(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML"):
        BuildConfig.from_yaml(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        BuildConfig.from_yaml(listy)


def test_one_variant_row_decides_selection_order_calibration_and_the_gate():
    from edgeclf.toolchain.export import selected_variants

    everything = BuildConfig().override({"quantize.int8": True, "quantize.float16": True, "quantize.dynamic": True,
                                         "quantize.keep_float": ["conv1"], "quantize.qat": True,
                                         "prune.sparsity": 0.75, "prune.for_backend": "xnnpack"})
    rows = selected_variants(everything)
    assert [v.name for v in rows] == ["float32", "int8", "float16", "dynamic", "int8_mixed", "int8_qat", "float32_sparse"]
    assert [v.name for v in rows if v.int8_weights] == ["int8", "dynamic", "int8_mixed", "int8_qat"]  # --max-drop gates these
    assert [v.name for v in rows if v.needs_calibration] == ["int8", "int8_mixed", "int8_qat"]
    assert [v.name for v in selected_variants(BuildConfig())] == ["float32"]


def test_repeatable_options_take_each_value_and_comma_separated_lists():
    from edgeclf.cli import build as build_command

    ctx = build_command.make_context("build", ["--keep-float", "conv1", "--keep-float", "conv2,conv3",
                                               "--prune-skip", "block_1*", "--candidate-sizes", "32,48",
                                               "--candidate-alphas", "0.5", "--candidate-alphas", "1"])
    assert ctx.params["quantize__keep_float"] == ("conv1", "conv2", "conv3")
    assert ctx.params["prune__skip"] == ("block_1*",)
    assert ctx.params["choice__sizes"] == (32, 48) and ctx.params["choice__alphas"] == (0.5, 1.0)
    assert build_command.make_context("build", []).params["choice__models"][0] == "cnn"  # the default list
