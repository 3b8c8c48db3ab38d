"""Bad inputs through the CLI (in-process and as ``python -m mmrl.cli``) and the Python API.

Every case asserts the kind of error, a message that says what to do, a non-zero exit status for the CLI, no
traceback on stderr, and that nothing on disk changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import mmrl
from mmrl.cli import main

torch.set_num_threads(1)

ENV_ID = "mmrl/GoTo-5x5-v0"
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------------------------------ helpers
def snapshot(*roots: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and folder under ``roots``: (size, mtime_ns, sha256)."""
    out: dict[str, tuple[int, int, str]] = {}
    for root in roots:
        for path in sorted([root, *root.rglob("*")]):
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            out[str(path)] = (stat.st_size if path.is_file() else 0, stat.st_mtime_ns, digest)
    return out


def assert_clean_error(rc: int, err: str, expected_rc: int, hints: tuple[str, ...]) -> None:
    assert rc == expected_rc, f"exit {rc}, expected {expected_rc}; stderr: {err}"
    assert rc != 0
    assert "Traceback" not in err, err
    assert err.strip().startswith("error:"), err
    assert len(err.strip().splitlines()) == 1, f"expected one error line, got: {err}"
    for hint in hints:
        assert hint in err, f"{hint!r} not in stderr: {err}"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-step PPO run directory on GoTo-5x5 with RGB images (with checkpoints, model.zip, tokenizer.json)."""
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    mmrl.train(
        "ppo",
        ENV_ID,
        timesteps=64,
        n_envs=2,
        run_dir=run_dir,
        progress_bar=False,
        eval_episodes=1,
        checkpoint_freq=0,
        overrides={"n_steps": 32, "batch_size": 32, "n_epochs": 1, "env_kwargs.image_mode": "rgb"},
    )
    return run_dir


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "unknown_key.yaml").write_text("default:\n  bogus_key: 1\n")
    (tmp_path / "wrong_type.yaml").write_text("default:\n  n_steps: hello\n")
    (tmp_path / "negative_lr.yaml").write_text("default:\n  learning_rate: -0.1\n")
    (tmp_path / "python_tag.yaml").write_text(
        "default:\n  learning_rate: !!python/object/apply:os.system ['touch pwned']\n"
    )
    (tmp_path / "empty.zip").write_bytes(b"")
    (tmp_path / "notzip.zip").write_text("this is not a zip archive\n")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("not a run\n")
    return tmp_path


# ------------------------------------------------------------------------------------------------------ CLI cases
TRAIN = ["train", "--algo", "ppo", "--env", ENV_ID, "--no-progress"]

# (id, argv, exit status, substrings the one-line error must contain)
CLI_CASES = [
    (
        "unknown-env",
        ["train", "--algo", "ppo", "--env", "mmrl/GoTo-5x6-v0", "--run-dir", "r"],
        1,
        ("unknown environment id 'mmrl/GoTo-5x6-v0'", "Did you mean 'mmrl/GoTo-5x5-v0'", "mmrl envs"),
    ),
    ("unknown-algo", ["train", "--algo", "sac", "--env", ENV_ID], 2, ("invalid choice: 'sac'", "ppo", "--help")),
    ("missing-algo", ["train", "--env", ENV_ID], 2, ("--algo and --env are required",)),
    (
        "preset-unknown-key",
        [*TRAIN, "--preset", "unknown_key.yaml", "--run-dir", "r"],
        1,
        ("unknown_key.yaml", "unknown key 'bogus_key'", "expected one of", "learning_rate"),
    ),
    (
        "preset-wrong-type",
        [*TRAIN, "--preset", "wrong_type.yaml", "--run-dir", "r"],
        1,
        ("wrong_type.yaml", "'n_steps' must be of type int", "'hello'"),
    ),
    (
        "preset-negative-lr",
        [*TRAIN, "--preset", "negative_lr.yaml", "--run-dir", "r"],
        1,
        ("negative_lr.yaml", "learning_rate must be > 0", "-0.1"),
    ),
    (
        "preset-python-tag",
        [*TRAIN, "--preset", "python_tag.yaml", "--run-dir", "r"],
        1,
        ("python_tag.yaml", "!!python/object", "safe_load"),
    ),
    ("preset-missing", [*TRAIN, "--preset", "nope.yaml", "--run-dir", "r"], 1, ("nope.yaml", "does not exist")),
    ("set-unknown-key", [*TRAIN, "--set", "foo=1", "--run-dir", "r"], 1, ("--set", "unknown key 'foo'")),
    (
        "set-negative-lr",
        [*TRAIN, "--set", "learning_rate=-1", "--run-dir", "r"],
        1,
        ("--set", "learning_rate must be > 0"),
    ),
    ("n-envs-0", [*TRAIN, "--n-envs", "0"], 2, ("--n-envs", "expected a positive integer, got 0")),
    ("timesteps-negative", [*TRAIN, "--timesteps", "-5"], 2, ("--timesteps", "expected a positive integer, got -5")),
    ("timesteps-not-int", [*TRAIN, "--timesteps", "1e3x"], 2, ("--timesteps", "expected a positive integer")),
    (
        "existing-run-dir-without-force",
        [*TRAIN, "--timesteps", "8", "--run-dir", "occupied"],
        1,
        ("occupied", "already exists", "--force"),
    ),
    (
        "force-on-non-run-dir",
        [*TRAIN, "--timesteps", "8", "--run-dir", "occupied", "--force"],
        1,
        ("occupied", "not an mmrl run directory", "refusing to delete"),
    ),
    ("resume-missing", ["train", "--resume", "nope"], 1, ("nope", "does not exist")),
    ("evaluate-missing-model", ["evaluate", "nope.zip", "--episodes", "1"], 1, ("nope.zip", "check the path")),
    (
        "evaluate-empty-model",
        ["evaluate", "empty.zip", "--episodes", "1"],
        1,
        ("empty.zip", "not an SB3 model zip or a QLearning .npz"),
    ),
    (
        "evaluate-non-zip-model",
        ["evaluate", "notzip.zip", "--episodes", "1"],
        1,
        ("notzip.zip", "not an SB3 model zip or a QLearning .npz"),
    ),
    (
        "evaluate-empty-dir",
        ["evaluate", "empty_dir", "--episodes", "1"],
        1,
        ("empty_dir", "not an mmrl run directory", "mmrl train"),
    ),
    ("evaluate-episodes-0", ["evaluate", "empty_dir", "--episodes", "0"], 2, ("--episodes", "positive integer")),
    ("unknown-subcommand", ["fly"], 2, ("invalid choice: 'fly'",)),
]


@pytest.mark.parametrize(("argv", "expected_rc", "hints"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(work: Path, capsys: pytest.CaptureFixture[str], argv, expected_rc, hints) -> None:
    before = snapshot(work)
    rc = main(argv)
    captured = capsys.readouterr()
    assert_clean_error(rc, captured.err, expected_rc, hints)
    assert captured.out == ""
    assert snapshot(work) == before
    assert not (work / "pwned").exists()


def test_cli_truncated_model(work: Path, tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (tiny_run / "model.zip").read_bytes()
    (work / "truncated.zip").write_bytes(data[: len(data) // 2])
    before = snapshot(work, tiny_run)
    rc = main(["evaluate", "truncated.zip", "--episodes", "1"])
    err = capsys.readouterr().err
    assert_clean_error(rc, err, 1, ("truncated.zip", "not an SB3 model zip"))
    assert snapshot(work, tiny_run) == before


@pytest.mark.parametrize(
    ("env_id", "hints"),
    [
        ("mmrl/Foo-v0", ("unknown environment id 'mmrl/Foo-v0'", "Did you mean", "mmrl envs")),
        ("mmrl/VisualQuery-v0", ("does not fit", "Discrete(3)", "Discrete(14)", "trained on")),
    ],
    ids=["unknown-env", "other-action-space"],
)
def test_cli_evaluate_model_for_another_env(work, tiny_run, capsys, env_id, hints) -> None:
    before = snapshot(work, tiny_run)
    rc = main(["evaluate", str(tiny_run), "--env", env_id, "--episodes", "1", "--json", "out.json"])
    err = capsys.readouterr().err
    assert_clean_error(rc, err, 1, hints)
    assert snapshot(work, tiny_run) == before


def test_cli_evaluate_model_for_another_observation_space(work, tiny_run, capsys) -> None:
    """A run whose config says symbolic 7x7 images, holding a model trained on 56x56 RGB images.

    (Channels-last images of the right size are *not* an error: SB3 transposes them itself.)
    """
    other = work / "other_obs"
    shutil.copytree(tiny_run, other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["env_kwargs"] = {**config.get("env_kwargs", {}), "image_mode": "symbolic"}
    (other / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    before = snapshot(work)
    rc = main(["evaluate", str(other), "--episodes", "1", "--json", "out.json"])
    err = capsys.readouterr().err
    assert_clean_error(rc, err, 1, ("does not fit", "observation space", "trained on"))
    assert snapshot(work) == before


def test_cli_existing_run_dir_without_force(work, tiny_run, capsys) -> None:
    before = snapshot(tiny_run)
    rc = main([*TRAIN, "--timesteps", "8", "--run-dir", str(tiny_run)])
    err = capsys.readouterr().err
    assert_clean_error(rc, err, 1, ("already exists", "--force", "--resume"))
    assert snapshot(tiny_run) == before


def test_cli_read_only_run_dir(work: Path, capsys) -> None:
    parent = work / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        probe = parent / ".probe"
        try:
            probe.write_text("x")
        except PermissionError:
            pass
        else:
            probe.unlink()
            pytest.skip("running as root (or a filesystem ignoring modes): chmod 0o555 does not block writes")
        before = snapshot(work)
        rc = main([*TRAIN, "--timesteps", "8", "--run-dir", str(parent / "run")])
        err = capsys.readouterr().err
        assert_clean_error(rc, err, 1, ("readonly",))
        assert "ermission" in err
        assert snapshot(work) == before
    finally:
        parent.chmod(0o755)


@pytest.mark.parametrize(
    ("argv", "expected_rc", "hints"),
    [
        (["train", "--algo", "ppo", "--env", "mmrl/GoTo-5x6-v0"], 1, ("Did you mean 'mmrl/GoTo-5x5-v0'",)),
        (["train", "--algo", "ppo", "--env", ENV_ID, "--n-envs", "0"], 2, ("expected a positive integer, got 0",)),
        (["evaluate", "nope.zip"], 1, ("nope.zip", "check the path")),
    ],
    ids=["unknown-env", "n-envs-0", "missing-model"],
)
def test_cli_subprocess_bad_input(work: Path, argv, expected_rc, hints) -> None:
    before = snapshot(work)
    proc = subprocess.run(
        [sys.executable, "-m", "mmrl.cli", *argv],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env=SUBPROCESS_ENV,
    )
    assert_clean_error(proc.returncode, proc.stderr, expected_rc, hints)
    assert proc.stdout == ""
    assert snapshot(work) == before


def test_cli_ctrl_c_during_evaluation(work: Path, tiny_run: Path) -> None:
    """SIGINT while episodes run: exit 130, 'interrupted' on stderr, no traceback, no (partial) JSON.

    The child imports mmrl's CLI and evaluation modules, then prints ``ready`` and calls ``main``: a SIGINT that lands
    while Python is still importing would print the interpreter's own KeyboardInterrupt traceback, which is not what
    this test is about.
    """
    code = (
        "import sys\n"
        "from mmrl.cli import main\n"
        "import mmrl.cli.evaluate, mmrl.evaluation.evaluate, stable_baselines3\n"
        "print('ready', flush=True)\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    before = snapshot(work, tiny_run)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "evaluate", str(tiny_run), "--episodes", "100000", "--json", "out.json"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=SUBPROCESS_ENV,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.5)
        assert proc.poll() is None, "evaluation finished before the interrupt"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)
    assert "interrupted" in err
    assert "Traceback" not in err, err
    assert "json:" not in out
    assert not (work / "out.json").exists()
    assert not list(work.glob(".out.json*")), "a temporary JSON file was left behind"
    assert snapshot(work, tiny_run) == before


# ------------------------------------------------------------------------------------------------------ API cases
@pytest.mark.parametrize(
    ("name", "content", "kind", "hints"),
    [
        ("missing.level", None, "LevelFileError", ("missing.level", "not found")),
        ("bad_key.level", "map:\n  ###\n  #>#\n  ###\nfoo: 3\n", "LevelFileError", ("bad_key.level:5:", "unknown key")),
        (
            "ragged.level",
            "map:\n  #####\n  #>..#\n  ###\nmissions:\n  - go to the red ball\n",
            "LevelFileError",
            ("ragged.level:4:", "map rows must all have 5 characters"),
        ),
        (
            "bad_glyph.level",
            "map:\n  #####\n  #>.Z#\n  #####\nmissions:\n  - go to the red ball\n",
            "LevelFileError",
            ("bad_glyph.level:3:", "unknown map character 'Z'", "add it to the legend"),
        ),
        ("binary.level", b"\xff\xfe\x00map", "LevelFileError", ("binary.level", "not a UTF-8 text file")),
    ],
    ids=["missing", "unknown-key", "ragged-map", "unknown-glyph", "binary"],
)
def test_malformed_level_file(tmp_path: Path, name, content, kind, hints) -> None:
    from mmrl.envs.level_file import LevelFileError, parse_level

    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    before = snapshot(tmp_path)
    with pytest.raises(LevelFileError) as info:
        parse_level(path)
    assert type(info.value).__name__ == kind
    assert isinstance(info.value, ValueError), "LevelFileError should be a ValueError (the CLI reports those)"
    for hint in hints:
        assert hint in str(info.value), str(info.value)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("make", "kind", "hints"),
    [
        (lambda d, run: d / "nope.zip", FileNotFoundError, ("no policy at",)),
        (lambda d, run: _write(d / "empty.zip", b""), ValueError, ("not a policy bundle directory",)),
        (lambda d, run: _write(d / "notzip.zip", b"hello"), ValueError, ("not a policy bundle directory",)),
        (
            lambda d, run: _write(d / "truncated.zip", (run / "model.zip").read_bytes()[:2000]),
            ValueError,
            ("not a policy bundle directory",),
        ),
        (lambda d, run: _mkdir(d / "empty_dir"), ValueError, ("without manifest.json",)),
        (lambda d, run: run / "model.zip", ValueError, ("refusing to load", "trust=True", "mmrl export")),
    ],
    ids=["missing", "empty", "non-zip", "truncated", "empty-dir", "sb3-zip-without-trust"],
)
def test_load_policy_bad_file(tmp_path: Path, tiny_run: Path, make, kind, hints) -> None:
    path = make(tmp_path, tiny_run)
    before = snapshot(tmp_path, tiny_run)
    with pytest.raises(kind) as info:
        mmrl.load_policy(path)
    for hint in hints:
        assert hint in str(info.value), str(info.value)
    assert snapshot(tmp_path, tiny_run) == before


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("config", "hints"),
    [
        ({}, ("'mode' key",)),
        ("not a dict", ("must be a dict",)),
        ({"mode": "bogus"}, ("unknown tokenizer mode 'bogus'", "'words' or 'hashing'")),
        ({"words": ["go"], "max_length": 4}, ("'mode' key",)),
        ({"mode": "words", "words": ["go"], "max_length": 4, "on_overflow": "wrap"}, ("on_overflow", "'truncate'")),
    ],
    ids=["empty", "not-a-dict", "unknown-mode", "no-mode", "bad-on-overflow"],
)
def test_tokenizer_bad_config(config, hints) -> None:
    from mmrl.tokenizer import Tokenizer

    with pytest.raises(ValueError) as info:
        Tokenizer.from_config(config)
    for hint in hints:
        assert hint in str(info.value), str(info.value)


def test_env_tokenizer_refuses_text_over_the_token_limit() -> None:
    env = gym.make(ENV_ID)
    tokenizer = env.unwrapped.tokenizer
    assert tokenizer.on_overflow == "error"
    text = " ".join(["go"] * (tokenizer.max_length + 1))
    with pytest.raises(ValueError, match=r"keeps at most 16.*Raise max_length or use on_overflow='truncate'"):
        tokenizer.encode(text)
    assert len(tokenizer.encode(" ".join(["go"] * tokenizer.max_length))) == tokenizer.max_length


def test_tokenize_text_wrapper_truncates_with_a_warning() -> None:
    from mmrl.tokenizer import Tokenizer
    from mmrl.wrappers import TokenizeText  # noqa: F401  (the wrapper documents: truncate with a warning)

    tokenizer = Tokenizer(["go", "to", "the"], max_length=4)
    assert tokenizer.on_overflow == "truncate"
    with pytest.warns(UserWarning, match="truncated"):
        tokens = tokenizer.encode("go to the go to the")
    assert tokens.tolist() == [tokenizer.word_id(w) for w in ["go", "to", "the", "go"]]


def test_out_of_vocabulary_words_map_to_unk() -> None:
    from mmrl.tokenizer import PAD_ID, UNK_ID, Tokenizer

    assert (PAD_ID, UNK_ID) == (0, 1)
    tokenizer = Tokenizer(["go", "to", "the"], max_length=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokens = tokenizer.encode("go to the zebra")
    assert tokens.tolist() == [tokenizer.word_id("go"), tokenizer.word_id("to"), tokenizer.word_id("the"), UNK_ID, 0]
    assert tokenizer.word_id("zebra") == UNK_ID


@pytest.mark.parametrize(
    ("action", "hints"),
    [
        (-1, ("outside the action space Discrete(3)", "valid actions are 0..2")),
        (3, ("outside the action space Discrete(3)", "valid actions are 0..2")),
        (2.5, ("must be integers",)),
        ("left", ("must be integers",)),
        (None, ("must be integers",)),
        (np.array([1, 2]), ("expected 1 action",)),
    ],
    ids=["negative", "too-large", "float", "string", "none", "vector"],
)
def test_env_invalid_action(action, hints) -> None:
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    state = env.unwrapped.get_state()
    with pytest.raises(ValueError) as info:
        env.step(action)
    for hint in hints:
        assert hint in str(info.value), str(info.value)
    after = env.unwrapped.get_state()
    assert _equal_states(state, after), "a refused action changed the env state"


def _equal_states(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal_states(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal_states(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _bad_image_obs():
    env = gym.make(ENV_ID, channels_first=True)
    obs, _ = env.reset(seed=0)
    return obs


@pytest.mark.parametrize("loader", ["sb3", "loaded_policy"])
@pytest.mark.parametrize(
    ("mutate", "hints"),
    [
        (lambda obs: {**obs, "image": np.zeros((5, 5, 3), np.uint8)}, ("Unexpected observation shape (5, 5, 3)",)),
        # (a channels-last (56, 56, 3) image is accepted: SB3's predict transposes it itself)
        (
            lambda obs: {**obs, "image": obs["image"][:1]},
            ("Unexpected observation shape (1, 56, 56)", "(3, 56, 56)"),
        ),
        (lambda obs: {**obs, "mission": obs["mission"][:8]}, ("Unexpected observation shape (8,)",)),
    ],
    ids=["tiny-image", "one-channel", "short-mission"],
)
def test_predict_wrong_observation_shape(tiny_run: Path, loader, mutate, hints) -> None:
    if loader == "sb3":
        from stable_baselines3 import PPO

        model = PPO.load(tiny_run / "model.zip", device="cpu")
    else:
        model = mmrl.load_policy(tiny_run / "model.zip", trust=True)
    obs = mutate(_bad_image_obs())
    with pytest.raises(ValueError) as info:
        model.predict(obs, deterministic=True)
    for hint in hints:
        assert hint in str(info.value), str(info.value)


def test_loaded_policy_missing_observation_key(tiny_run: Path) -> None:
    policy = mmrl.load_policy(tiny_run / "model.zip", trust=True)
    obs = _bad_image_obs()
    with pytest.raises(ValueError, match=r"observation key 'mission' is missing"):
        policy.predict({"image": obs["image"]})


def _extractor_space(image_shape=(3, 56, 56)):
    from gymnasium import spaces

    return spaces.Dict(
        {
            "image": spaces.Box(0, 255, image_shape, np.uint8),
            "mission": spaces.Box(0, 54, (16,), np.int64),
        }
    )


@pytest.mark.parametrize(
    ("image", "hints"),
    [
        (torch.zeros(2, 3, 28, 28), ("observation key 'image'", "(B, 3, 56, 56)", "(2, 3, 28, 28)")),
        (torch.zeros(2, 56, 56, 3), ("observation key 'image'", "(B, 3, 56, 56)", "(2, 56, 56, 3)")),
        (torch.zeros(2, 1, 56, 56), ("observation key 'image'", "(B, 3, 56, 56)", "(2, 1, 56, 56)")),
    ],
    ids=["wrong-size", "channels-last", "one-channel"],
)
def test_extractor_forward_wrong_image(image, hints) -> None:
    extractor = mmrl.MultimodalExtractor(_extractor_space())
    with pytest.raises(ValueError) as info:
        extractor({"image": image, "mission": torch.zeros(2, 16)})
    for hint in hints:
        assert hint in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "hints"),
    [
        ({"fusion": "bogus"}, ("unknown fusion 'bogus'", "valid choices")),
        ({"text_encoder": "bert"}, ("unknown text_encoder 'bert'", "valid choices")),
        ({"features_dim": 0}, ("features_dim must be a positive int",)),
        ({"image_keys": ["rgb"]}, ("'rgb' is not in the observation space",)),
    ],
    ids=["fusion", "text-encoder", "features-dim", "image-key"],
)
def test_extractor_bad_construction(kwargs, hints) -> None:
    with pytest.raises(ValueError) as info:
        mmrl.MultimodalExtractor(_extractor_space(), **kwargs)
    for hint in hints:
        assert hint in str(info.value), str(info.value)


def test_api_train_unknown_env_and_algo(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"Did you mean 'mmrl/GoTo-5x5-v0'"):
        mmrl.train("ppo", "mmrl/GoTo-5x6-v0", run_dir=tmp_path / "r", progress_bar=False)
    with pytest.raises(ValueError, match=r"sac"):
        mmrl.train("sac", ENV_ID, run_dir=tmp_path / "r", progress_bar=False)
    assert snapshot(tmp_path) == before
