"""The command line's help: fast (no torch / SB3 import to build the parser), and its names match the registries."""

from __future__ import annotations

import subprocess
import sys


def test_building_the_parser_imports_neither_torch_nor_sb3():
    code = (
        "import sys\n"
        "from mmrl.cli import build_parser\n"
        "build_parser()\n"
        "heavy = sorted(m for m in ('torch', 'stable_baselines3', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_help_choices_mirror_the_registries():
    from mmrl.cli import choices
    from mmrl.envs.grammar import SPLITS as GRAMMAR_SPLITS
    from mmrl.evaluation.ablation import ABLATIONS
    from mmrl.evaluation.evaluate import DEFAULT_TABLE_ROWS
    from mmrl.evaluation.setup import SPLITS
    from mmrl.extractor.fusion import FUSIONS
    from mmrl.extractor.text_encoders import TEXT_ENCODER_CHOICES
    from mmrl.pretrain.collect import DEMONSTRATORS

    assert tuple(FUSIONS) == choices.FUSION_CHOICES
    assert choices.TEXT_ENCODER_CHOICES == TEXT_ENCODER_CHOICES
    assert choices.SPLIT_CHOICES == SPLITS == GRAMMAR_SPLITS
    assert choices.ABLATION_CHOICES == ABLATIONS
    assert choices.DEFAULT_TABLE_ROWS == DEFAULT_TABLE_ROWS
    assert choices.DEMONSTRATOR_CHOICES == DEMONSTRATORS


def test_train_help_lists_the_fusions_and_text_encoders():
    done = subprocess.run(
        [sys.executable, "-m", "mmrl.cli", "train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "concat, sum, weighted, product, gated, film, cross_attention" in text
    assert "bow, gru, lstm, conv, transformer, hf" in text


def test_no_help_text_prints_a_doubled_percent_sign():
    """argparse formats help with ``%``: a literal "95 %" must be written "95 %%" there and nowhere else, so every
    subcommand's rendered help (the real output of ``mmrl COMMAND --help``) is checked."""
    import argparse

    from mmrl.cli import SUBCOMMANDS, build_parser

    parser = build_parser()
    (subparsers,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    assert set(SUBCOMMANDS) <= set(subparsers.choices)  # every subcommand is checked
    for name, subparser in {"mmrl": parser, **subparsers.choices}.items():
        text = subparser.format_help()
        assert "%%" not in text and "%(" not in text, name
    assert "95 % Wilson" in " ".join(subparsers.choices["evaluate"].format_help().split())
