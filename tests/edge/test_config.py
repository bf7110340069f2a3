from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import yaml
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
        ("train.lr=fast", "train.lr: expected a number such as 0.003, got 'fast'"),
        ("train.batch_size=1.5", "train.batch_size: expected an integer such as 16, got 1.5"),
        ("verify.baud=fast", "verify.baud: expected an integer such as 921600, got 'fast'"),
        ("train.class_weights=2", "train.class_weights: expected true or false, got 2"),
        ("data.source=3", "data.source: expected a string such as bundled:basicmotions, got 3"),
        (
            "data.split_fractions=0.8",
            r"data.split_fractions: expected a list of numbers such as \[0.85, 0.0, 0.15\], got 0.8",
        ),
        (
            "data.split_fractions=[0.8, 0.2]",
            r"expected 3 values, got 2; e.g. \[0.85, 0.0, 0.15\]",
        ),
        (
            "model.channels=[16, a, 32]",
            r"model.channels: expected a list of integers such as \[16, 32, 32\]",
        ),
        (
            "model.fsq_levels=8",
            r"model.fsq_levels: expected a list of integers such as \[8, 6, 5\]",
        ),
        (
            "data.channels=[[ax]]",
            r"data.channels: expected a list of strings such as \[hand_\*, heart_rate\]",
        ),
        (
            "export.hw_arch=hailo8L",
            "export.hw_arch: 'hailo8L' is not one of hailo8, hailo8l, hailo10h",
        ),
        ("model.fsq_levels=[8, 1]", "every level must be >= 2"),
        ("data.nan_strategy=ignore", "nan_strategy"),
        (
            "model.overflow_fix=some",
            "model.overflow_fix: 'some' is not one of all, first_layer, none",
        ),
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


# Every numeric key's allowed values, written out rather than read from RANGES, so that a bound
# changed in edge/config.py fails here until this table is changed with it.
SPEC_RANGES = {
    "data.window_length": ">= 2",
    "data.window_stride": ">= 1",
    "data.max_nan_fraction": "in [0, 1]",
    "data.target_length": ">= 0",
    "data.cv_folds": ">= 0",
    "data.cv_fold": ">= 0",
    "data.seed": ">= 0",
    "model.kernel_size": ">= 0",
    "model.stem_kernel": ">= -1",
    "model.downsample": ">= 0",
    "model.dilated_stages": ">= -1",
    "model.pooled_stages": ">= -1",
    "model.dropout": "in [0, 1)",
    "model.input_percentile": "in [50, 100]",
    "model.input_dither": ">= 0",
    "augment.jitter": ">= 0",
    "augment.scale": ">= 0",
    "augment.shift": "in [0, 1)",
    "augment.shift_step": ">= 0",
    "augment.magnitude_warp": ">= 0",
    "augment.time_warp": "in [0, 1)",
    "augment.mixup": ">= 0",
    "augment.mask": "in [0, 1)",
    "train.float_epochs": ">= 1",
    "train.qat_epochs": ">= 1",
    "train.batch_size": ">= 1",
    "train.qat_batch_size": ">= 0",
    "train.lr": "> 0",
    "train.qat_lr": ">= 0",
    "train.weight_decay": ">= 0",
    "train.warmup_epochs": ">= 0",
    "train.grad_clip": ">= 0",
    "train.grad_accum": ">= 1",
    "train.label_smoothing": "in [0, 1)",
    "train.min_epoch_steps": ">= 0",
    "train.distill_weight": "in [0, 1]",
    "train.teachers": ">= 1",
    "train.ema_epochs": ">= 0",
    "train.patience": ">= 0",
    "train.seed": ">= 0",
    "train.threads": ">= 0",
    "calibrate.num_windows": ">= 1",
    "calibrate.batch_size": ">= 1",
    "export.opset": "in [13, 21]",
    "export.reference_samples": ">= 1",
    "verify.baud": ">= 1",
    "verify.timeout": "> 0",
    "verify.retries": ">= 0",
    "verify.limit": ">= 0",
    "verify.max_resets": ">= 0",
    "verify.min_agreement": "in [0, 1]",
    "verify.max_lsb": ">= 0",
}


def _bounds(spec: str) -> list[tuple[float, bool]]:
    """(bound, bound itself allowed) for each end of a SPEC_RANGES entry."""
    if spec.startswith(">"):
        return [(float(spec.split()[-1]), spec.startswith(">="))]
    low, high = spec[4:-1].split(", ")
    return [(float(low), spec[3] == "["), (float(high), spec[-1] == "]")]


def _range_cases() -> list[tuple[str, str, bool]]:
    """`(key, YAML value, allowed)`: each bound (allowed or not) and the value just outside it, plus
    NaN and infinity for float keys (an integer key can't be given them: the type check refuses
    those first)."""
    cases = []
    for key, spec in SPEC_RANGES.items():
        section, name = key.split(".")
        is_int = type(getattr(getattr(RunConfig(), section), name)) is int
        for index, (bound, closed) in enumerate(_bounds(spec)):
            outward = -1 if index == 0 else 1
            step = 1 if is_int else 1e-3
            for value, allowed in ((bound, closed), (bound + outward * step, False)):
                cases.append((key, str(int(value)) if is_int else repr(value), allowed))
            if not closed:  # just inside an open bound
                cases.append((key, repr(bound - outward * step), True))
        if not is_int:
            cases += [(key, ".nan", False), (key, ".inf" if spec[0] == ">" else "-.inf", False)]
    return cases


def test_every_numeric_key_has_a_spec_range() -> None:
    from edgekit.config import RANGES

    assert {key: str(allowed) for key, allowed in RANGES.items()} == SPEC_RANGES


@pytest.mark.parametrize(("key", "raw", "allowed"), _range_cases())
def test_every_numeric_key_is_range_checked(key: str, raw: str, allowed: bool) -> None:
    if allowed:
        load_config(None, [f"{key}={raw}"])
        return
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"{key}={raw}"])
    message = str(info.value)
    assert message.startswith(f"{key}: must be {SPEC_RANGES[key]}") and f"e.g. {key}=" in message
    assert "\n" not in message


def test_the_readmes_config_hash_is_the_defaults() -> None:
    """README shows `edgekit check` on the bundled run; a changed default must change it too."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    shown = {line.split()[-1] for line in readme.splitlines() if line.startswith("config hash ")}
    assert shown == {RunConfig().digest()} == {load_config().digest()}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=.nan", "train.lr: must be > 0"),
        ("train.lr=-0.001", "train.lr: must be > 0"),
        ("train.label_smoothing=2", "train.label_smoothing: must be in [0, 1)"),
        ("train.threads=-4", "train.threads: must be >= 0"),
        ("train.ema_epochs=-1", "train.ema_epochs: must be >= 0"),
        ("train.qat_epochs=0", "train.qat_epochs: must be >= 1"),
        ("model.kernel_size=-1", "model.kernel_size: must be >= 0"),
        ("data.window_stride=0", "data.window_stride: must be >= 1"),
        ("model.fsq_levels=[1000, 1000, 1000]", "least common multiple"),
        ("model.fsq_levels=[8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]", "the codebook (the product of the levels, "
                                                              "8589934592) must be at most 2"),
        ("data.split_fractions=[0.5, 0.5, .nan]", "summing to 1"),
        ("data.split_fractions=[0.85, -0.1, 0.25]", "train and test positive, val positive or 0"),
        ("data.split_fractions=[0.85, 0.15, 0]", "train and test positive, val positive or 0"),
        ("data.split_fractions=[0.85, 0, 0.15]; train.checkpoint=best", "train.checkpoint=best "
                                                                       "selects on validation"),
        ("model.channels=[16, 32]", "give 3 positive widths"),
        ("train.checkpoint=final", "train.checkpoint"),
        ("data.cv_folds=1", "data.cv_folds: 0 (the val cut of data.split_fractions) or at least 2"),
        ("data.cv_folds=5", "data.cv_folds: cross-validates the source's own train split, so it needs "
                            "data.split_mode=official, got group"),
        ("data.split_mode=official; data.cv_folds=5; data.cv_fold=5", "data.cv_fold: must be below "
                                                                    "data.cv_folds (5), got 5"),
        ("data.cv_fold=1", "data.cv_fold: must be below data.cv_folds (0), got 1"),
        ("train.teachers=3", "train.teachers=3 trains teachers only to distill from them, but "
                             "train.distill_weight=0; set train.distill_weight"),
        ("model.fsq_levels=[256]", "least common multiple"),  # 128 steps: one more than int8 has
        ("data.split_fractions=[0.5, 0.5]", "data.split_fractions: expected 3 values, got 2"),
        ("data.split_fractions=[0.4, 0.2, 0.2, 0.2]", "expected 3 values, got 4"),
        ("data.split_fractions=[0, 0.5, 0.5]", "train and test positive"),
        ("model.channels=[0, 32, 32]", "give 3 positive widths"),
        ("model.channels=[16, 32, 32, 32]", "give 3 positive widths"),
        ("data.split_mode=time; data.cv_folds=5", "needs data.split_mode=official, got time"),
        ("train.lr.x=1", "train.lr: expected a number such as 0.003, got {'x': 1}"),
        ("seed=1", "unknown config key 'seed'; valid keys: data, model, augment, train"),
        ("data.split_fractions=[0.5, 0.5, 0.5]", "must be 3 numbers summing to 1"),
        ("data.split_fractions=[1.0, 0.5, 0.5]", "must be 3 numbers summing to 1"),
        ("train.teachers=2", "train.teachers=2 trains teachers only to distill from them"),
        ("model.fsq_levels=[1, 8]", "every level must be >= 2"),
        (f"model.fsq_levels=[{', '.join(['2'] * 33)}]", "the codebook (the product of the levels, 8589934592)"),
        ("data.split_mode=official; data.cv_folds=5; data.cv_fold=6", "must be below data.cv_folds (5), got 6"),
    ],
)  # fmt: skip
def test_listed_bad_values_are_refused(override: str, message: str) -> None:
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        load_config(None, override.split("; "))


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.teachers=2", "train.distill_weight=0.5"],
        ["model.fsq_levels=[2, 2]"],
        ["model.channels=[1, 8, 8]"],
        [
            f"model.fsq_levels=[{', '.join(['2'] * 32)}]"
        ],  # a codebook of 2^32: the most a uint32 holds
        ["data.split_mode=official", "data.cv_folds=5", "data.cv_fold=4"],
    ],
)
def test_listed_edge_values_are_accepted(overrides: list[str]) -> None:
    load_config(None, overrides)


def test_defaults_and_range_edges_are_accepted() -> None:
    config = load_config(
        None,
        ["train.label_smoothing=0", "train.threads=0", "verify.min_agreement=1", "model.fsq_levels=[255]",
         "export.opset=13", "augment.shift=0.99", "train.patience=0", "data.split_fractions=[0.85, 0, 0.15]"],
    )  # fmt: skip
    assert config.data.split_fractions == (0.85, 0.0, 0.15)
    assert config.model.fsq_levels == (255,)  # lcm 127: the largest exact int8 code grid


def test_a_retired_key_names_its_replacement_and_old_runs_still_load(tmp_path: Path) -> None:
    """`export.calib_windows` sized a second calibration set; `calibrate.num_windows` is the one size."""
    with pytest.raises(
        ConfigError, match="'export.calib_windows' was replaced by 'calibrate.num_windows'"
    ):
        load_config(None, ["export.calib_windows=64"])
    run = tmp_path / "old-run"
    run.mkdir()
    written = load_config(None, ["calibrate.num_windows=77"]).to_dict()
    written["export"]["calib_windows"] = 1024  # what runs before the change hold
    (run / "config.resolved.yaml").write_text(yaml.safe_dump(written))
    assert load_run_config(run).calibrate.num_windows == 77


def test_a_run_written_before_normalize_and_row_layout_loads_as_it_was_made(
    tmp_path: Path,
) -> None:
    from edgekit.data.prepare import data_config_digest

    run = tmp_path / "old-run"
    run.mkdir()
    written = load_config(None, []).to_dict()
    written["data"]["split_fractions"] = [
        0.7,
        0.15,
        0.15,
    ]  # every run before the keys had a val cut
    for key in ("normalize", "row_layout", "cv_folds", "cv_fold"):
        del written["data"][key]  # runs before the keys
    (run / "config.resolved.yaml").write_text(yaml.safe_dump(written))
    old = load_run_config(run)
    assert (old.data.normalize, old.data.row_layout) == ("global", "halves")
    assert load_config(None, []).data.normalize == "auto"
    for key in ("checkpoint", "distill_weight", "teachers", "qat_batch_size"):
        del written["train"][key]
    (run / "config.resolved.yaml").write_text(yaml.safe_dump(written))
    train = load_run_config(run).train
    assert (train.checkpoint, train.distill_weight, train.teachers) == ("best", 0.0, 1)
    assert train.qat_batch_size == 0  # QAT batched like float, as every run before the key
    added = ("normalize", "row_layout", "cv_folds", "cv_fold")
    before_the_key = {k: v for k, v in dataclasses.asdict(old.data).items() if k not in added}
    assert (
        data_config_digest(old.data)
        == hashlib.sha256(json.dumps(before_the_key, sort_keys=True).encode()).hexdigest()[:16]
    )  # so its saved data/ still belongs to it


@pytest.mark.parametrize(
    ("raw", "name"), [("true", "true"), ("false", "false"), ("auto", "auto"), ("True", "true")]
)
def test_a_switch_reads_yamls_booleans_as_their_names(raw: str, name: str) -> None:
    """model.handcrafted_filters: auto | true | false, so configs written with YAML booleans (runs
    from before `auto`, the sweep space's choices) keep their meaning."""
    assert load_config(None, [f"model.handcrafted_filters={raw}"]).model.handcrafted_filters == name
    assert load_config(None, []).model.handcrafted_filters == "auto"


def test_a_switch_refuses_anything_else_in_one_line() -> None:
    with pytest.raises(
        ConfigError, match="model.handcrafted_filters: 'yes please' is not one of auto, true, false"
    ):
        load_config(None, ["model.handcrafted_filters=yes please"])
    with pytest.raises(ConfigError, match="model.handcrafted_filters: 1 is not one of"):
        load_config(None, ["model.handcrafted_filters=1"])


def test_runs_written_before_auto_detectors_load_as_they_were_made(tmp_path: Path) -> None:
    run = tmp_path / "old-run"
    run.mkdir()
    written = load_config(None, []).to_dict()
    for stored, expected in ((True, "true"), (False, "false"), (None, "false")):
        if stored is None:
            del written["model"]["handcrafted_filters"]  # runs before the key
        else:
            written["model"]["handcrafted_filters"] = stored  # runs of the boolean key
        (run / "config.resolved.yaml").write_text(yaml.safe_dump(written))
        assert load_run_config(run).model.handcrafted_filters == expected


def test_default_yaml_only_overrides() -> None:
    """configs/default.yaml holds no value that repeats a dataclass default."""
    from edgekit.config import preset_path, read_yaml

    defaults = RunConfig().to_dict()
    repeated = [f"{section}.{key}" for section, keys in read_yaml(preset_path("default")).items()
                for key, value in keys.items() if defaults[section][key] == value]  # fmt: skip
    assert repeated == []


def test_every_section_is_frozen() -> None:
    """A config is shared by every stage of a run: none may change it under the others."""
    config = RunConfig()
    for section in dataclasses.fields(config):
        part = getattr(config, section.name)
        name = dataclasses.fields(part)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(part, name, getattr(part, name))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train = config.train  # type: ignore[misc]
    from edgekit.config import RANGES

    with pytest.raises(dataclasses.FrozenInstanceError):  # one Range is shared by many keys
        RANGES["train.lr"].low = -1  # type: ignore[misc]


def test_the_resolved_yaml_keeps_the_sections_in_pipeline_order() -> None:
    lines = RunConfig().to_yaml().splitlines()
    sections = [line[:-1] for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert sections == ["data", "model", "augment", "train", "calibrate", "export", "verify"]


def test_a_run_written_before_every_added_key_loads_as_it_was_made(tmp_path: Path) -> None:
    """Each key added since runs were first written takes the behaviour those runs had."""
    written = load_config(None, ["data.split_fractions=[0.7, 0.15, 0.15]"]).to_dict()
    before = {
        "data.normalize": "global",
        "data.row_layout": "halves",
        "data.cv_folds": 0,
        "data.cv_fold": 0,
        "model.dilated_stages": 0,
        "model.pooled_stages": 0,
        "model.input_percentile": 99.999,
        "model.input_dither": 0.0,
        "model.stem_kernel": 0,
        "model.handcrafted_filters": "false",
        "augment.shift_mode": "hold",
        "augment.mask": 0.0,
        "augment.shift_step": 1,
        "train.checkpoint": "best",
        "train.distill_weight": 0.0,
        "train.teachers": 1,
        "train.ema_epochs": 0.0,
        "train.qat_batch_size": 0,
    }
    for key in before:
        section, name = key.split(".")
        del written[section][name]
    (tmp_path / "config.resolved.yaml").write_text(yaml.safe_dump(written))
    loaded = load_run_config(tmp_path)
    for key, value in before.items():
        section, name = key.split(".")
        assert getattr(getattr(loaded, section), name) == value, key


def test_a_run_config_whose_section_is_not_a_mapping_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.resolved.yaml").write_text("train: 5\nexport: [1]\n")
    with pytest.raises(ConfigError, match="train: expected a mapping, got 5"):
        load_run_config(tmp_path)


def test_a_yaml_error_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 0.1\n  seed: [1\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML \(line 4\); fix the syntax"):
        load_config(bad)


def test_a_set_value_may_hold_equals_signs_and_text_yaml_cannot_read() -> None:
    """Only the first `=` splits; a value YAML cannot parse is taken as the text typed."""
    config = load_config(None, ["data.source=csv:/data/run=3/x.csv", "export.hw_arch=hailo8l"])
    assert config.data.source == "csv:/data/run=3/x.csv"
    assert load_config(None, ["data.source=[unclosed"]).data.source == "[unclosed"
    assert load_config(None, ["data.channels=acc_*, gyro_x"]).data.channels == ("acc_*", "gyro_x")


def test_cross_validation_is_a_val_split_of_its_own() -> None:
    from edgekit.config import DataConfig, has_val_split

    assert has_val_split(DataConfig(split_fractions=(0.85, 0.0, 0.15), cv_folds=5))
    assert not has_val_split(DataConfig(split_fractions=(0.85, 0.0, 0.15), cv_folds=0))
    assert has_val_split(DataConfig(split_fractions=(0.7, 0.15, 0.15), cv_folds=0))
    load_config(None, ["data.split_mode=official", "data.cv_folds=5", "train.checkpoint=best"])
