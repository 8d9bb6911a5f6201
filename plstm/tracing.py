"""Hyperparameters that may be traced.

A packed sweep (`plstm.packing`) trains several hyperparameter points as one
program, `jax.vmap`ped over the models, so a config's numbers (a learning
rate, the Phased LSTM's alpha, the LSNN's thr) reach the cells and
optimisers as JAX scalars. Their range checks and the Python branches on
them run only when they are concrete; a traced value takes the branch-free
form of the same computation.
"""

import jax


def is_traced(*values) -> bool:
  """Whether any leaf of `values` is a JAX tracer (a value being traced by
  `jax.jit`, `jax.vmap` or `jax.grad`), which has no concrete value to check
  or branch on."""
  return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(values))
