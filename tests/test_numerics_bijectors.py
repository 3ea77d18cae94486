"""Property tests: every bijector family, fuzzed over wide ranges, against a float64 reference.

One hypothesis test per family: 50 examples x R = 20 cases = 1000 cases per family (the reliability
issue's minimum; `CASES`, `EXAMPLES`). An example draws a batch of R independent cases (every input
with a leading axis of R; a family's function is vmapped over it and jitted once: fixed shapes), and
each case is checked on its own. A case draws the inputs, the conditioner's outputs (a constant
conditioner returning drawn values: the bijector is tested, not a network) and the parameters, with
magnitudes from 1e-6 to 1e4 (and zeros, the strategies' boundaries included). For finite input,
forward and inverse values, both log-dets, and the gradients of `sum(c * out) + log_det` with
respect to every input must be finite and agree with the same bijector run in float64
(`jax.enable_x64(True)`, on the same float32 values) within a float32 round-off bound: 32 unit
round-offs (64 for gradients) of the magnitudes each result is computed from, written out per family
in `experiments/fuzz_bijectors.py` (`bounds`), e.g. |z| e^s (1 + |s|) + |t| + |x| for an affine
x = z e^s + t, and Higham's componentwise bounds for products and inverses of the 1x1 convolution's
triangular factors. The bijectors' float32 matmuls run at full precision (conftest.py sets
JAX_DEFAULT_MATMUL_PRECISION=highest; the 1x1 convolution asks for it itself).
"""

from __future__ import annotations

import math

import numpy as np
from fuzz_bijectors import FAMILIES, Spec, check_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

CASES = 1000  # per family, at least
R = 20  # cases per hypothesis example, checked in one batch
EXAMPLES = math.ceil(CASES / R)


def _elements(spec: Spec):
    """Floats up to 10^hi in magnitude; hypothesis's float strategy favours zeros, tiny values
    (subnormals included), the bounds and other awkward floats over uniform draws."""
    if spec.unit:
        return st.floats(0.0, 1.0, width=32)
    hi = float(np.float32(10.0**spec.hi))
    return st.floats(-hi if spec.signed else 0.0, hi, width=32)


def _explicit_fraction(size: int) -> float:
    """The fraction of entries hnp.arrays draws explicitly over its fill value, on average."""
    return min(max(0.1 * size, math.sqrt(size)), size) / size


def _rows(elements, size: int):
    """R rows of `size` values, each row drawn as hnp.arrays draws one (size,) array: a background
    value of the row's own (from `elements`) with, on average, hnp.arrays's share of the entries
    drawn explicitly (from `elements`) over it. One (R, size) hnp.arrays draws too few explicit
    entries per row (10%, not a (size,) array's sqrt(size) / size) and one background for every row;
    so the explicit entries come from `layers` sparse (R, size) arrays (NaN where not drawn: the
    elements are never NaN) laid over per-row backgrounds."""
    background = hnp.arrays(np.float32, (R, 1), elements=elements, fill=st.nothing())
    target = _explicit_fraction(size)
    if target >= 1.0:
        return background
    per_layer = _explicit_fraction(R * size)
    layers = math.ceil(math.log1p(-target) / math.log1p(-per_layer))
    sparse = hnp.arrays(np.float32, (R, size), elements=elements, fill=st.just(np.float32(np.nan)))

    def lay(drawn):
        rows = np.broadcast_to(drawn[0], (R, size))
        for layer in drawn[1:]:
            rows = np.where(np.isnan(layer), rows, layer)
        return rows

    return st.tuples(background, *[sparse] * layers).map(lay)


def cases_strategy(family):
    """Draws R cases: one (R, size) array per group of inputs sharing a role (e.g. every config's
    `shift`), each case's row sliced to each config's shape: fewer values to draw, the same coverage
    of ranges."""
    groups: dict[str, list] = {}
    for name, spec in family.specs.items():
        groups.setdefault(name.rsplit("_", 1)[-1], []).append((name, spec))
    strategies = {}
    for role, members in groups.items():
        size = max(int(np.prod(spec.shape, dtype=np.int64)) for _, spec in members)
        strategies[role] = _rows(_elements(members[0][1]), max(size, 1))

    def expand(drawn):
        return {
            name: drawn[role][:, : int(np.prod(spec.shape, dtype=np.int64))].reshape((R,) + spec.shape)
            for role, members in groups.items()
            for name, spec in members
        }

    return st.fixed_dictionaries(strategies).map(expand)


def _make_test(key):
    family = FAMILIES[key]()
    configs = st.just(None) if family.configs == [None] else st.sampled_from(range(len(family.configs)))

    @settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
    @given(cases_strategy(family), configs)
    def test(cases, config):
        for i, report in enumerate(check_batch(family, cases, config)):
            case = {k: v[i] for k, v in cases.items()}
            assert report["nonfinite_values"] == 0, (report, config, case)
            assert report["nonfinite_grads"] == 0, (report, config, case)
            assert report["worst_ratio"] <= 1.0, (str(report), config, case)

    return test


test_affine_coupling_tanh_and_sigmoid_vector_image_and_split = _make_test("coupling")
test_maf_and_iaf_autoregressive_affine = _make_test("autoregressive")
test_actnorm = _make_test("actnorm")
test_invertible_1x1_conv_lu = _make_test("conv1x1")
test_scaled_sigmoid_logit = _make_test("sigmoid")
test_planar = _make_test("planar")
