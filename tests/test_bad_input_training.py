"""Bad input to the training pieces (optimizer, loop, evaluator, checkpointer): a ValueError that names
the argument (in backticks), raised before any training step runs; and unusual-but-valid settings that
must be accepted.

`CASES` is a table of (function, description, thunk, expected): `expected` is a substring of the
ValueError's message, or "accepted" (the thunk must return without error).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_training import MODEL, fresh_state, moons, nll

from dgmjax.training import Checkpointer, TrainState, make_evaluator, make_optimizer, make_schedule, train

KEY = jax.random.PRNGKey(0)
TEST = {"x": np.zeros((10, 2), np.float32)}


def train_with(batches=None, state=None, **kw):
    settings = dict(num_steps=2, key=KEY, verbose=False)
    settings.update(kw)
    return train(nll, state if state is not None else fresh_state(2), batches or moons(), **settings)


def evaluate_with(eval_fn, arrays=TEST, key=KEY):
    return make_evaluator(eval_fn, arrays, 4, key)(fresh_state(2))


per_example = lambda k, p, b: {"nll": -MODEL.apply(p, b["x"])}
nan_params = lambda: TrainState.create(
    params=jax.tree_util.tree_map(lambda a: a * jnp.nan, fresh_state(2).params), tx=optax.sgd(0.1))
empty_batches = lambda step: {"x": jnp.zeros((0, 2))}


CASES = [
    # make_optimizer / make_schedule: every setting range-checked
    ("make_optimizer", "b1 = 1.5", lambda: make_optimizer(num_steps=10, b1=1.5), "`b1`"),
    ("make_optimizer", "b2 = 1 (Adam's bias correction divides by zero)",
     lambda: make_optimizer(num_steps=10, b2=1.0), "`b2`"),
    ("make_optimizer", "negative b2", lambda: make_optimizer(num_steps=10, b2=-0.1), "`b2`"),
    ("make_optimizer", "negative weight decay", lambda: make_optimizer(num_steps=10, weight_decay=-1e-4),
     "`weight_decay`"),
    ("make_optimizer", "NaN weight decay", lambda: make_optimizer(num_steps=10, weight_decay=float("nan")),
     "`weight_decay`"),
    ("make_optimizer", "infinite learning rate", lambda: make_optimizer(float("inf"), num_steps=10),
     "`learning_rate`"),
    ("make_optimizer", "learning rate as a string", lambda: make_optimizer("1e-3", num_steps=10),
     "`learning_rate`"),
    ("make_optimizer", "negative clip norm", lambda: make_optimizer(num_steps=10, grad_clip_norm=-1.0),
     "`grad_clip_norm`"),
    ("make_optimizer", "b1 = 0 and clip norm 0 (no momentum, no clipping)",
     lambda: make_optimizer(num_steps=10, b1=0.0, grad_clip_norm=0), "accepted"),
    ("make_schedule", "negative end rate (gradient ascent)",
     lambda: make_schedule(1e-3, num_steps=10, end_learning_rate_factor=-0.5), "`end_learning_rate_factor`"),
    ("make_schedule", "end rate above the peak", lambda: make_schedule(1e-3, num_steps=10,
                                                                       end_learning_rate_factor=2.0),
     "`end_learning_rate_factor`"),
    ("make_schedule", "float warmup", lambda: make_schedule(1e-3, num_steps=10, warmup_steps=2.5),
     "`warmup_steps`"),
    ("make_schedule", "numpy int warmup", lambda: make_schedule(1e-3, num_steps=10, warmup_steps=np.int64(2)),
     "accepted"),
    # train: settings, key, state and batches, checked before the first step
    ("train", "an int key", lambda: train_with(key=0), "`key`"),
    ("train", "a batch of keys", lambda: train_with(key=jax.random.split(KEY, 2)), "`key`"),
    ("train", "checkpoint_every without a workdir", lambda: train_with(checkpoint_every=5),
     "`checkpoint_every`"),
    ("train", "max_steps_per_run without a workdir", lambda: train_with(max_steps_per_run=1),
     "`max_steps_per_run`"),
    ("train", "max_checkpoints = 0", lambda: train_with(max_checkpoints=0), "`max_checkpoints`"),
    ("train", "NaN initial parameters", lambda: train_with(state=nan_params()), "`state`"),
    ("train", "an empty batch", lambda: train_with(batches=empty_batches), "`batches(0)`"),
    ("train", "a typed key", lambda: train_with(key=jax.random.key(0)), "accepted"),
    # make_evaluator: the evaluator's contract
    ("make_evaluator", "(B, 1) per-example values", lambda: evaluate_with(
        lambda k, p, b: {"nll": -MODEL.apply(p, b["x"])[:, None]}), "`eval_fn`"),
    ("make_evaluator", "a scalar value", lambda: evaluate_with(
        lambda k, p, b: {"nll": -jnp.mean(MODEL.apply(p, b["x"]))}), "`eval_fn`"),
    ("make_evaluator", "not a mapping", lambda: evaluate_with(lambda k, p, b: -MODEL.apply(p, b["x"])),
     "`eval_fn`"),
    ("make_evaluator", "an empty split", lambda: evaluate_with(per_example, {"x": np.zeros((0, 2))}),
     "`arrays`"),
    ("make_evaluator", "a key named 'mask'", lambda: evaluate_with(
        per_example, {"x": TEST["x"], "mask": np.ones(10, bool)}), "`arrays`"),
    ("make_evaluator", "an int key", lambda: evaluate_with(per_example, key=3), "`key`"),
    ("make_evaluator", "per-example values", lambda: evaluate_with(per_example), "accepted"),
    # Checkpointer
    ("Checkpointer", "max_to_keep = 0", lambda: Checkpointer("unused", max_to_keep=0), "`max_to_keep`"),
]


@pytest.mark.parametrize("function, description, thunk, expected", CASES,
                         ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input(function, description, thunk, expected):
    if expected == "accepted":
        thunk()
    else:
        with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            thunk()
