"""Property tests: every bijector family, fuzzed over wide ranges, against a float64 reference.

One hypothesis test per family (the session profile in conftest.py: 1000 derandomized cases). A
case draws the inputs, the conditioner's outputs (a constant conditioner returning drawn values:
the bijector is tested, not a network) and the parameters, with magnitudes from 1e-6 to 1e4 (and
zeros, the strategies' boundaries included). For finite input, forward and inverse values, both
log-dets, and the gradients of `sum(c * out) + log_det` with respect to every input must be finite
and agree with the same bijector run in float64 (`jax.enable_x64(True)`, on the same float32
values) within a float32 round-off bound: 32 unit round-offs (64 for gradients) of the magnitudes
each result is computed from, written out per family in `experiments/fuzz_bijectors.py` (`bounds`),
e.g. |z| e^s (1 + |s|) + |t| + |x| for an affine x = z e^s + t, and Higham's componentwise bounds
for products and inverses of the 1x1 convolution's triangular factors. The bijectors' float32
matmuls run at full precision (conftest.py sets JAX_DEFAULT_MATMUL_PRECISION=highest; the 1x1
convolution asks for it itself). Each family's function is jitted once (fixed shapes).
"""

from __future__ import annotations

import numpy as np
from fuzz_bijectors import FAMILIES, Spec, check
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def _elements(spec: Spec):
    """Floats up to 10^hi in magnitude; hypothesis's float strategy favours zeros, tiny values
    (subnormals included), the bounds and other awkward floats over uniform draws."""
    if spec.unit:
        return st.floats(0.0, 1.0, width=32)
    hi = float(np.float32(10.0**spec.hi))
    return st.floats(-hi if spec.signed else 0.0, hi, width=32)


def case_strategy(family):
    """Draws one array per group of inputs sharing a role (e.g. every config's `shift`), sliced to
    each config's shape: fewer values to draw, the same coverage of ranges."""
    groups: dict[str, list] = {}
    for name, spec in family.specs.items():
        groups.setdefault(name.rsplit("_", 1)[-1], []).append((name, spec))
    strategies = {}
    for role, members in groups.items():
        size = max(int(np.prod(spec.shape, dtype=np.int64)) for _, spec in members)
        strategies[role] = hnp.arrays(np.float32, max(size, 1), elements=_elements(members[0][1]))

    def expand(drawn):
        return {
            name: drawn[role][: int(np.prod(spec.shape, dtype=np.int64))].reshape(spec.shape)
            for role, members in groups.items()
            for name, spec in members
        }

    return st.fixed_dictionaries(strategies).map(expand)


def _make_test(key):
    family = FAMILIES[key]()
    configs = st.just(None) if family.configs == [None] else st.sampled_from(range(len(family.configs)))

    @given(case_strategy(family), configs)
    def test(case, config):
        report = check(family, case, config)
        assert report["nonfinite_values"] == 0, (report, case)
        assert report["nonfinite_grads"] == 0, (report, case)
        assert report["worst_ratio"] <= 1.0, (str(report), case)

    return test


test_affine_coupling_tanh_and_sigmoid_vector_image_and_split = _make_test("coupling")
test_maf_and_iaf_autoregressive_affine = _make_test("autoregressive")
test_actnorm = _make_test("actnorm")
test_invertible_1x1_conv_lu = _make_test("conv1x1")
test_scaled_sigmoid_logit = _make_test("sigmoid")
test_planar = _make_test("planar")
