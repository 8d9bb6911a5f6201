"""The computation dtype of a config's cells, `config.model.dtype`."""

import jax.numpy as jnp

import plstm

DTYPES = ("float32", "bfloat16")


def with_dtype(cell, model):
  """`cell` computing its matrix products in `model.dtype` (a config's
  `model` block): float32, the params' own dtype, leaves it as it is;
  bfloat16 casts the products' inputs (`plstm.cell.with_precision`).

  Raises:
    ValueError: if `model.dtype` is not one of `DTYPES`.
  """
  if model.dtype not in DTYPES:
    raise ValueError(
      f"config.model.dtype must be one of {DTYPES}, got {model.dtype!r}."
    )
  if model.dtype == "float32":
    return cell
  return plstm.cell.with_precision(cell, dtype=jnp.dtype(model.dtype))
