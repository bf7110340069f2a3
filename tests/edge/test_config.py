from __future__ import annotations

from pathlib import Path

import pytest
from edgekit.config import RunConfig, load_config, load_run_config
from edgekit.errors import ConfigError


def test_precedence_defaults_yaml_file_set(tmp_path: Path) -> None:
    assert RunConfig().train.lr == load_config().train.lr
    user = tmp_path / "user.yaml"
    user.write_text("train:\n  lr: 0.01\n  batch_size: 8\n")
    config = load_config(user, ["train.batch_size=4", "model.fsq_levels=[5, 5]"])
    assert (config.train.lr, config.train.batch_size, config.model.fsq_levels) == (0.01, 4, (5, 5))


def test_tiny_preset_by_name() -> None:
    assert load_config("tiny").data.source.startswith("synthetic")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.batch_sise=1", "did you mean 'batch_size'"),
        ("train.learning_rate=1", "valid keys: float_epochs"),
        ("trian.lr=1", "did you mean 'train'"),
        ("train.lr=fast", "train.lr: expected a number"),
        ("train.batch_size=1.5", "train.batch_size: expected an integer"),
        ("model.fsq_levels=[8, 1]", "every level must be >= 2"),
        ("data.nan_strategy=ignore", "nan_strategy"),
        ("noequals", "expected section.key=value"),
    ],
)
def test_bad_keys_and_values_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_config(None, [override])
    assert "\n" not in str(info.value)


def test_bad_yaml_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    config = load_config("tiny", ["train.seed=7"])
    (tmp_path / "config.resolved.yaml").write_text(config.to_yaml())
    assert load_run_config(tmp_path) == config
    assert config.digest() != load_config("tiny").digest()
