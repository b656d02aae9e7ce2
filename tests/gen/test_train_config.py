"""gen train refuses impossible numbers up front, in one line naming the flag.

NaN passes every `<` comparison, so a check written as `if x < 0` lets it through to the
optimiser (`ValueError: Invalid learning rate`) or into a run that silently does nothing.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from gen_helpers import make_prepared, tiny_overrides
from helpers import one_line_error

from classify.core.errors import UserError
from gen.commands.train import train_command
from gen.train.config import GanTrainConfig
from gen.train.recipes import resolve_config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("gencfg"))


BAD = [
    ("--lr", "nan"), ("--lr", "0"), ("--lr", "inf"), ("--gamma", "-5"), ("--gamma", "nan"),
    ("--target", "nan"), ("--target", "1.5"), ("--ema-kimg", "0"), ("--ema-kimg", "nan"),
    ("--freeze-d", "-1"), ("--channel-base", "0"), ("--channel-max", "0"), ("--map", "0"), ("--z-dim", "0"),
    ("--style-mixing", "nan"), ("--pl-weight", "-1"),
    ("--ada-kimg", "0"), ("--ada-interval", "0"), ("--d-reg-interval", "0"), ("--conv-clamp", "0"),
    ("--res", "65536"),  # was a MemoryError while building the networks
]


@pytest.mark.parametrize("flag, value", BAD)
def test_bad_number_is_one_line_naming_the_flag(data_dir, tmp_path, flag, value):
    result = CliRunner().invoke(train_command, ["--data", str(data_dir), "--class", "bad",
                                                "--out", str(tmp_path / "r"), "--preset", "cpu-tiny",
                                                "--batch", "4", "--dry-run", flag, value])
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert one_line_error(result, after_output=True).startswith(f"Error: {flag} "), result.output
    assert not (tmp_path / "r").exists()


def test_zero_gpus_is_refused_by_the_config(data_dir, tmp_path):
    with pytest.raises(UserError, match=r"--gpus 0 must be >= 1"):
        resolve_config(tiny_overrides(data_dir, tmp_path / "r", gpus=0))


def test_unset_optional_numbers_and_sane_values_pass():
    GanTrainConfig(conv_clamp=None, ema_rampup=None, gamma=0.0, freeze_d=2, target=0.6,
                   pl_weight=0.0).validate()
