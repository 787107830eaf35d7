"""The whole check catalogue against every built-in implementation and torch's own paths.

At the standard profile (set ADAM_CONFORMANCE_PROFILE to change it; Triton under its CPU
interpreter runs at quick, see `TRITON_AT_QUICK`), on the CPU (set ADAM_CONFORMANCE_DEVICE=cuda
to run it on a GPU). torch's fused path
is certified without `noncontiguous`: with a gradient laid out unlike its parameter it
is wrong, which tests/test_torch_deviations.py shows on its minimal Case.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from conformance import resolve
from conformance.checks import CATALOGUE, CheckSkipped, run_check
from conformance.run.target import Target
from conformance.vocabulary import PROFILES
from impls import triton_fused
from tests.known import BUILTINS, CUDA_BUILTINS, DEVICE

PROFILE = os.environ.get("ADAM_CONFORMANCE_PROFILE", "standard")
#: Under Triton's interpreter (no GPU) a launch takes ~0.1 s and a block is 16384 elements, so
#: no drawn Case (1024 elements at most, at standard) spans two blocks: the standard profile's
#: extra examples would rerun quick's one-block path at ten times the cost. Unless a profile is
#: asked for, the interpreted Triton built-ins run at quick; tests/test_golden_parity.py still
#: runs them through every golden trace, the 100000-element MLP's seven blocks included.
TRITON_AT_QUICK = triton_fused.INTERPRETED and "ADAM_CONFORMANCE_PROFILE" not in os.environ


#: The whole catalogue runs on every built-in in CI; the fast inner loop (``-m "not slow"``) runs
#: it on eager alone, which reaches every check: the other built-ins are marked slow.
FAST = ("eager",)

pytestmark = pytest.mark.catalogue


def target(name: str) -> Target:
    impl = resolve(name)
    if name.startswith("torch-fused"):
        impl = impl.without(["noncontiguous"])
    profile = "quick" if TRITON_AT_QUICK and name.startswith("triton") else PROFILE
    return Target(impl, impl.spec, DEVICE, PROFILES[profile])


@pytest.mark.parametrize("check_id", sorted(CATALOGUE))
@pytest.mark.parametrize("name", [pytest.param(name, marks=() if name in FAST else pytest.mark.slow)
                                  for name in BUILTINS + CUDA_BUILTINS])
def test_passes_every_check_it_claims(name, check_id):
    chk, tgt = CATALOGUE[check_id], target(name)
    if DEVICE not in tgt.impl.devices:
        pytest.skip(f"{name} runs on {', '.join(tgt.impl.devices)} only")
    if chk.unmet(tgt):
        pytest.skip(f"{name}: {chk.unmet(tgt)}")
    try:
        run_check(chk, tgt)
    except CheckSkipped as e:
        pytest.skip(str(e))


def test_every_check_has_a_stable_id_a_statement_and_known_needs():
    from conformance.report.certificate import SCHEMA_PATH
    from conformance.vocabulary import EDGES, FEATURES

    id_pattern = json.loads(SCHEMA_PATH.read_text())["$defs"]["check"]["properties"]["id"]["pattern"]
    assert len(CATALOGUE) >= 18
    for check_id, chk in CATALOGUE.items():
        assert re.match(id_pattern, check_id), f"{check_id} breaks the report schema's id pattern"
        kind, _, name = check_id.partition(".")
        assert kind in ("parity", "invariant", "contract", "cuda", "sharded") and name and name == name.lower()
        assert (kind == "cuda") == (chk.device == "cuda")
        assert (kind == "sharded") == chk.sharded
        assert chk.statement.endswith(".") and len(chk.statement) > 30
        assert chk.needs <= set(FEATURES) | set(EDGES)


def test_profiles_grow():
    quick, standard, thorough = PROFILES["quick"], PROFILES["standard"], PROFILES["thorough"]
    assert quick.examples < standard.examples and thorough.examples >= 10 * standard.examples
