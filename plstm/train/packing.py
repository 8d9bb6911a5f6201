"""Packed sweeps: the points of a hyperparameter sweep and their seeds,
trained as one program along a leading model axis.

`config.pack` is a JSON object of dotted config fields to lists of values,
e.g. '{"optimizer.learning_rate": [3e-4, 1e-3], "model.alpha": [0, 1e-3]}'.
Its points are the product of the lists (the first field varies slowest),
each trained with the seeds config.seed, ..., config.seed + num_seeds - 1:
K = points x seeds models, model m the point m // num_seeds with the seed
m % num_seeds. An empty pack ('', the default) has one point, so
`num_seeds` alone is the case of packing with no field.

Inside the compiled step each model's config holds its values as JAX
scalars (`substitute`), so a packed field must be a number the program
only computes with: a learning rate, alpha, thr. A field that sets a shape
or a branch (a size, a model name, a connectivity) cannot be traced and is
refused before compiling; `scripts/sweep.py` runs such values as separate
processes.
"""

import itertools
import json
import numbers
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

# The driver's own fields (plstm.train), which no model can differ in.
DRIVER_FIELDS = (
  "experiment",
  "metric",
  "mode",
  "seed",
  "num_seeds",
  "steps_per_epoch",
  "num_epochs",
  "target",
  "log_every",
  "checkpoint_every",
  "keep_checkpoints",
  "progress_bar",
  "early_stop",
  "pack",
)

SWEEP_SCRIPT = "scripts/sweep.py"


class Models(NamedTuple):
  """The K models of a run: `points` (each {field: value}) x `seeds`."""

  fields: tuple[str, ...]
  points: list[dict[str, Any]]
  seeds: list[int]

  def __len__(self) -> int:
    return len(self.points) * len(self.seeds)

  @property
  def model_seeds(self) -> list[int]:
    """The seed of each model."""
    return self.seeds * len(self.points)

  @property
  def seed_index(self) -> np.ndarray:
    """[K] int32: each model's index into `seeds` (the batches it sees)."""
    return np.tile(np.arange(len(self.seeds), dtype=np.int32), len(self.points))

  def values(self) -> dict[str, np.ndarray]:
    """{field: [K, ...] float32 or int32}, each model's value of each field
    (a pair such as tau_range as [K, 2])."""
    out = {}
    for field in self.fields:
      column = [p[field] for p in self.points for _ in self.seeds]
      dtype = np.int32 if all(_is_int(v) for v in column) else np.float32
      out[field] = np.asarray(column, dtype)
    return out

  def labels(self) -> list[str]:
    """One label per model: its seed's index with one point, else its
    point's name and seed ('learning_rate=0.001,seed=0')."""
    if len(self.points) == 1:
      return [str(i) for i in range(len(self.seeds))]
    return [f"{n},seed={s}" for n in self.names() for s in self.seeds]

  def names(self) -> list[str]:
    """One name per point, 'learning_rate=0.001,alpha=0' (a field's last
    part, unless two fields share it); '' for the single point of no pack."""
    short = [f.rsplit(".", 1)[-1] for f in self.fields]
    if len(set(short)) < len(short):
      short = list(self.fields)
    return [
      ",".join(
        f"{s}={_show(p[f])}" for s, f in zip(short, self.fields, strict=True)
      )
      for p in self.points
    ]


def _is_int(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _show(v) -> str:
  if isinstance(v, list | tuple):
    return "(" + ",".join(_show(x) for x in v) + ")"
  return f"{v:g}" if isinstance(v, float) else str(v)


def _numeric(v) -> bool:
  if isinstance(v, list | tuple):
    return len(v) > 0 and all(_numeric(x) for x in v)
  return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _get(config, field: str):
  value = config
  for part in field.split("."):
    if not isinstance(value, ml_collections.ConfigDict) or part not in value:
      raise ValueError(f"config.pack: config has no field {field!r}.")
    value = value[part]
  return value


def models(config) -> Models:
  """The models of `config`: its `pack` (parsed and checked) x its seeds.

  Raises:
    ValueError: one line, if the pack is not a JSON object of known,
      numeric, non-driver, non-data fields to non-empty lists of values of
      the field's shape.
  """
  seeds = list(range(config.seed, config.seed + config.num_seeds))
  text = config.get("pack") or ""
  if not text.strip():
    return Models((), [{}], seeds)
  try:
    pack = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"config.pack is not JSON ({e.msg}): {text!r}.") from None
  if not isinstance(pack, dict) or not pack:
    raise ValueError(
      "config.pack must be a JSON object of config fields to lists of "
      "values, e.g. '{\"optimizer.learning_rate\": [1e-3, 3e-3]}'."
    )
  for field, values in pack.items():
    top = field.split(".", 1)[0]
    if field in DRIVER_FIELDS or top in ("data", "pack"):
      what = "the batches" if top == "data" else "the run itself"
      raise ValueError(
        f"config.pack: {field} sets {what}, which packed models share; run "
        f"its values as separate processes with {SWEEP_SCRIPT}."
      )
    current = _get(config, field)
    if not isinstance(values, list) or not values:
      raise ValueError(
        f"config.pack: {field} needs a non-empty list of values, got "
        f"{values!r}."
      )
    if not _numeric(current) or not all(_numeric(v) for v in values):
      raise ValueError(
        f"config.pack: {field} is not a number ({current!r}), so it sets "
        f"the program's structure and cannot be packed; run its values as "
        f"separate processes with {SWEEP_SCRIPT}."
      )
    shape = np.shape(current)
    for v in values:
      if np.shape(v) != shape:
        raise ValueError(
          f"config.pack: {field} values must have the shape of "
          f"{current!r}, got {v!r}."
        )
    pack[field] = [_like(current, v) for v in values]
  fields = tuple(pack)
  points = [
    dict(zip(fields, combo, strict=True))
    for combo in itertools.product(*pack.values())
  ]
  return Models(fields, points, seeds)


def _like(current, value):
  """`value` as the type of the field's `current` value: a float for a
  float field (so 20 packs as 20.0), a tuple for a pair."""
  if isinstance(current, tuple | list):
    return tuple(_like(c, v) for c, v in zip(current, value, strict=True))
  return float(value) if isinstance(current, float) else value


def point_config(config, point: dict[str, Any]) -> ml_collections.ConfigDict:
  """A copy of `config` with the concrete values of `point`: the config of
  the separate run that the point's models equal."""
  out = ml_collections.ConfigDict(config.to_dict())
  out.update_from_flattened_dict(point)
  return out


def substitute(config, values: dict[str, Any]) -> ml_collections.ConfigDict:
  """A copy of `config` with each dotted field of `values` set to its value
  (a JAX scalar inside a traced step; a row of a pair field becomes a
  tuple). `config` itself is unchanged; with no values it is returned."""
  if not values:
    return config
  out = ml_collections.ConfigDict(config.to_dict(), type_safe=False)
  for field, value in values.items():
    *parents, name = field.split(".")
    node = out
    for part in parents:
      node = node[part]
    if np.ndim(value) == 1:
      value = tuple(value[i] for i in range(value.shape[0]))
    node[name] = value
  return out


def structural_error(field: str, error: Exception) -> ValueError:
  """The one line for a packed `field` whose tracing failed with `error`."""
  kind = type(error).__name__
  return ValueError(
    f"config.pack: {field} sets a shape or a branch of the program ({kind} "
    f"when traced), so it cannot be packed; run its values as separate "
    f"processes with {SWEEP_SCRIPT}."
  )


# The errors of tracing a value that the program needs concretely.
TRACE_ERRORS = (jax.errors.JAXTypeError, TypeError)
