"""Target resolution, claims read from signatures, `list`, and every bad-input case."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import conformance
from conformance import FEATURES, Implementation, TargetError, resolve
from conformance.front.cli import main
from conformance.registry import registered
from conformance.vocabulary import DEFAULT_CLAIMS
from tests.known import BUILTINS, CUDA_BUILTINS, SHARDED_BUILTINS, THIRDPARTY


def test_every_builtin_is_registered_through_the_entry_point_group():
    assert sorted(registered()) == sorted(BUILTINS + CUDA_BUILTINS + SHARDED_BUILTINS + THIRDPARTY)


@pytest.mark.parametrize("name", BUILTINS + CUDA_BUILTINS + SHARDED_BUILTINS)
def test_builtins_resolve_with_their_spec(name):
    impl = resolve(name)
    assert isinstance(impl, Implementation)
    assert impl.name == name
    assert impl.spec == ("adamw" if name.endswith("-adamw") else "adam")
    assert impl.claims <= set(FEATURES)
    # AdamW forms take no decoupled_weight_decay keyword, as torch.optim.AdamW.
    assert ("decoupled_weight_decay" in impl.claims) == (impl.spec == "adam")


def test_claims_are_read_from_a_plain_callables_signature(user_module):
    user_module(
        "partial_adam",
        """
        class PartialAdam:
            def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
                pass
            def step(self):
                pass

        def any_kwargs(params, lr, betas, eps, **kwargs):
            pass
        """,
    )
    claims = resolve("partial_adam:PartialAdam").claims
    assert "weight_decay" in claims
    assert not {"amsgrad", "maximize", "decoupled_weight_decay"} & claims
    assert "closure" not in claims  # step() takes no closure
    assert {"complex", "float16", "noncontiguous"} <= claims  # behaviours: claimed by default
    assert resolve("partial_adam:any_kwargs").claims == set(DEFAULT_CLAIMS)  # declared promises never assumed


def test_a_subclass_of_torch_adamw_defaults_to_the_adamw_spec():
    assert resolve("torch.optim:AdamW").spec == "adamw"
    assert resolve("torch.optim:Adam").spec == "adam"


def test_an_implementation_object_is_taken_as_is(user_module):
    user_module(
        "impl_obj",
        """
        import torch
        from conformance import Implementation
        IMPL = Implementation(name="mine", factory=torch.optim.Adam, claims={"amsgrad"}, spec="adam")
        """,
    )
    impl = resolve("impl_obj:IMPL")
    assert impl.name == "mine" and impl.claims == {"amsgrad"}


def test_without_disclaims_features():
    impl = resolve("eager").without(["complex", "float16"])
    assert not {"complex", "float16"} & impl.claims


BAD_TARGETS = {
    "unknown name": ("egar", "unknown implementation 'egar'", "did you mean eager"),
    "module does not import": ("broken_mod:Adam", "does not import", "ZeroDivisionError"),
    "module not found": ("no_such_pkg.optim:Adam", "does not import", "installed"),
    "missing attribute": ("bad_targets:Adm", "has no attribute 'Adm'", "did you mean Adam"),
    "not callable": ("bad_targets:NUMBER", "not callable", "optimizer class or factory"),
    "takes no params": ("bad_targets:no_params", "takes no positional argument", "(params, lr="),
    "keyword-only params": ("bad_targets:keyword_only", "takes no positional argument", "(params, lr="),
    "lacks Adam keywords": ("torch.optim:SGD", "does not accept betas, eps", "constructor form"),
    "empty attribute": ("bad_targets:", "expected package.module:attr", "mypkg.optim:MyAdam"),
}


@pytest.fixture
def bad_modules(user_module):
    user_module("broken_mod", "1 / 0\n")
    user_module(
        "bad_targets",
        """
        import torch
        Adam = torch.optim.Adam
        NUMBER = 3
        def no_params():
            pass
        def keyword_only(*, params, lr, betas, eps):
            pass
        """,
    )


@pytest.mark.parametrize("case", sorted(BAD_TARGETS))
def test_bad_targets_exit_2_with_one_line_saying_what_and_how(case, bad_modules, capsys):
    target, what, how = BAD_TARGETS[case]
    with pytest.raises(TargetError):
        resolve(target)
    assert main(["list", target]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert what in err and how in err


@pytest.mark.e2e
def test_a_bad_target_gives_no_traceback_from_the_console_script(tmp_path):
    (tmp_path / "broken_mod.py").write_text("raise RuntimeError('boom')\n")
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "list", "broken_mod:Adam"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "RuntimeError: boom" in result.stderr and "Traceback" not in result.stderr


def test_python_m_conformance_runs_the_command_line_and_exits_with_its_code(user_module, monkeypatch, capsys):
    """conformance/__main__.py, run in this process as `python -m conformance list boom_mod:Adam`
    runs it (the test above runs it end to end): exit 2 with one line, no traceback."""
    user_module("boom_mod", "raise RuntimeError('boom')\n")
    monkeypatch.setattr(sys, "argv", ["conformance", "list", "boom_mod:Adam"])
    with pytest.raises(SystemExit) as exited:  # run_module would meet pytest's import hook: the plugin's package
        runpy.run_path(str(Path(conformance.__file__).with_name("__main__.py")), run_name="__main__")
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert "RuntimeError: boom" in err and "Traceback" not in err


def test_list_shows_every_implementation_with_claims_and_where_it_runs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["implementation", "spec", "runs", "here"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert sorted(rows) == sorted(BUILTINS + CUDA_BUILTINS + SHARDED_BUILTINS + THIRDPARTY)
    assert "cannot load" in rows["apex-fusedadam"] and "pip install 'apex'" in rows["apex-fusedadam"]
    assert "all features" in rows["eager"] and "declares" not in rows["eager"]
    assert "declares capturable" in rows["torch-capturable"] and "declares allocation_free" in rows["torch-fused"]
    assert "all but complex" in rows["torch-fused"]
    assert "all but tensor_lr" in rows["torch-foreach"]
    assert "Triton" in rows["triton"] and ("interpreter on CPU" in rows["triton"] or "CUDA" in rows["triton"])


def test_list_of_a_user_target_shows_what_the_suite_reads_of_it(capsys):
    assert main(["list", "torch.optim:Adam"]) == 0
    out = capsys.readouterr().out
    assert "torch.optim:Adam" in out and "all features" in out
