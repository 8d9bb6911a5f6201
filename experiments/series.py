r"""One-step forecasting of a univariate series with an LSTM and online SGD.

The seed LSTM tutorial notebook (mike.bowles, after tmramalho's gist): a
window of past values -> LSTM -> Dense(1) -> the next value, squared error,
plain SGD with lr 0.01 one example at a time (seeds-spec §3.9).

Data: `config.data.csv` (a column `data.column` of a UTF-8 CSV file; a
non-numeric first row is taken for a header; a blank line, a missing or
non-finite value or a constant training part is refused by file, line and
column), or, when it is empty, a synthetic series of N = `length` values.
Like a CSV file's, it is a fixed dataset, the same for every seed of a run
(training and validation windows come from one series; `synthetic_seed`
picks another):

  y_t = trend t / N + sum_k A_k sin(2 pi t / P_k + phi_k) + noise e_t,
  phi_k ~ U(0, 2 pi),  e_t ~ N(0, 1)   (default_rng([synthetic_seed, 0])).

The series is standardised with the mean and std of its first
`train_fraction`, whose targets train; the targets after it validate. An
example is the window z_{t-W}, ..., z_{t-1} (W = `window`) and the target
z_t. The LSTM reads the window relative to its last value,
z_{t-W+i} - z_{t-1}, one value per step, and its last h gives the change:

  z_hat_t = z_{t-1} + w^T h_W + b.

Loss and headline metric "mse": the MSE (the notebook's
((t - y)^2).mean(axis=0).sum() for one output), in standardised units.
Baseline: persistence z_hat_t = z_{t-1} ("persistence_mse"), the
zero-output model.

Batches: `batch_size` windows per step, in time order (`shuffle` False:
step s takes windows s B, ..., s B + B - 1, modulo their number; with B = 1
the notebook's online pass) or drawn at random without replacement by
`numpy_rng(data_key, step)` (`shuffle` True). Validation: all
validation windows in batches of `eval_batch_size`, the same each epoch;
the last incomplete batch is dropped.

Notes:
  The notebook's stock data (`stockTT.bin`) is not published; its LSTM
  runs ONE step on all window values as features at once. Here the window
  is a sequence of W steps of one value (what an LSTM is for), relative to
  its last value so that a trend does not take the validation values out of
  the training range, and the prediction is a change. Its weights are
  N(0, 0.01) and biases 0 (`model.init = "notebook"`, the paper variant);
  `"flax"` takes plstm.LSTM's defaults (Flax's initialisers, forget bias 1)
  and a Flax Dense head.
"""

import csv
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import plstm
from plstm.train.task import Task, numpy_rng

INITS = ("flax", "notebook")


def synthetic(
  seed: int,
  length: int,
  periods: tuple,
  amplitudes: tuple,
  trend: float,
  noise: float,
) -> np.ndarray:
  """The synthetic series [N] float64 of the module docstring, drawn from
  default_rng([seed, 0])."""
  rng = np.random.default_rng([seed, 0])
  t = np.arange(length, dtype=np.float64)
  phases = rng.uniform(0.0, 2 * np.pi, len(periods))
  y = trend * t / length + noise * rng.standard_normal(length)
  for p, a, phi in zip(periods, amplitudes, phases, strict=True):
    y += a * np.sin(2 * np.pi * t / p + phi)
  return y


def load_csv(path: str, column: int) -> np.ndarray:
  """Column `column` (0-based) of the CSV file at `path`: [N] float64.

  A first row whose field in that column is not a number is skipped as a
  header. Every other row must hold a finite number there; blank lines are
  refused unless only blank lines follow them. Each problem is a ValueError
  naming the file, and the line and column if it has one.
  """
  file = Path(path)
  if not file.is_file():
    raise ValueError(
      f"config.data.csv: no file {path!r}; pass --config.data.csv=PATH to "
      "a CSV file, or --config.data.csv='' for the synthetic series."
    )
  try:
    with file.open(newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f)
      rows = [(reader.line_num, row) for row in reader]
  except (UnicodeDecodeError, csv.Error) as e:
    raise ValueError(
      f"config.data.csv: {path!r} is not a UTF-8 CSV file ({e})."
    ) from None
  while rows and _blank(rows[-1][1]):  # Blank lines at the end are fine.
    rows.pop()
  if not rows:
    raise ValueError(f"config.data.csv: {path!r} is empty.")
  if not 0 <= column < len(rows[0][1]):
    raise ValueError(
      f"config.data.column must be in [0, {len(rows[0][1])}) for {path!r}, "
      f"got {column}."
    )
  first = rows[0][1][column]
  header = 1 if first.strip() and _number(first) is None else 0
  values = []
  for line, row in rows[header:]:
    where = f"config.data.csv: {path!r}, line {line}"
    if _blank(row):
      raise ValueError(f"{where} is blank; remove it or fill it in.")
    if column >= len(row):
      raise ValueError(
        f"{where} ends before column {column} (config.data.column)."
      )
    value = _number(row[column])
    if value is None or not np.isfinite(value):
      found = repr(row[column]) if row[column].strip() else "nothing"
      raise ValueError(
        f"{where}, column {column} holds {found}, not a finite number; fix "
        "the file or pick another config.data.column."
      )
    values.append(value)
  return np.array(values)


def _blank(row: list[str]) -> bool:
  return not "".join(row).strip()


def _number(text: str) -> float | None:
  try:
    return float(text)
  except ValueError:
    return None


def series(config) -> np.ndarray:
  """The raw series [N] float64 of `config.data`."""
  d = config.data
  if d.csv:
    y = load_csv(d.csv, d.column)
    source = f"column {d.column} of {d.csv!r}"
  else:
    if d.column:
      raise ValueError(
        f"config.data.column is set ({d.column}) but config.data.csv is '', "
        "the synthetic series, which reads no file; unset one "
        "(--config.data.column=0 or --config.data.csv=PATH)."
      )
    y = synthetic(
      d.synthetic_seed,
      d.length,
      tuple(d.periods),
      tuple(d.amplitudes),
      d.trend,
      d.noise,
    )
    source = "the synthetic series"
  num_train = int(d.train_fraction * len(y))
  num_windows = num_train - d.window
  needed = d.batch_size if d.shuffle else 1  # distinct windows per batch
  if num_windows < needed or len(y) - num_train < d.eval_batch_size:
    raise ValueError(
      f"config.data: {source} has {len(y)} values: {num_train} to train, "
      f"{max(num_windows, 0)} windows of window = {d.window} (it needs "
      f"{needed}), and "
      f"{len(y) - num_train} to validate (it needs eval_batch_size = "
      f"{d.eval_batch_size}); use a longer series or change "
      "config.data.train_fraction, window, batch_size or eval_batch_size."
    )
  if y[:num_train].min() == y[:num_train].max():
    raise ValueError(
      f"config.data: {source} is constant ({y[0]}) over its {num_train} "
      "training values, so it cannot be standardised; pick another series."
    )
  return y


def standardised(config) -> tuple[np.ndarray, int]:
  """(z [N] float32, the number of training values n): the series less the
  mean of y_0, ..., y_{n-1}, over their std."""
  y = series(config)
  n = int(config.data.train_fraction * len(y))
  z = (y - y[:n].mean()) / y[:n].std()
  return z.astype(np.float32), n


def windows(z: np.ndarray, window: int, targets: np.ndarray) -> dict:
  """{"window" [B, W], "target" [B]} for the target indices [B]."""
  rows = targets[:, None] + np.arange(-window, 0)
  return {"window": z[rows], "target": z[targets]}


def make_cell(model) -> plstm.LSTM:
  """The LSTM of `model` (a config's `model` block), initialised as
  `model.init` says."""
  if model.init not in INITS:
    raise ValueError(
      f"config.model.init must be one of {INITS}, got {model.init!r}."
    )
  if model.init == "notebook":
    normal = jax.nn.initializers.normal(0.01)
    return plstm.LSTM(
      model.hidden,
      forget_bias=0.0,
      kernel_init=normal,
      recurrent_kernel_init=normal,
    )
  return plstm.LSTM(model.hidden)


def init_params(model, cell, key: jax.Array) -> dict:
  """Params {"rnn", "head": {"w" [H, 1], "b" [1]}}."""
  k_rnn, k_head = jax.random.split(key)
  head_init = (
    jax.nn.initializers.normal(0.01)
    if model.init == "notebook"
    else jax.nn.initializers.lecun_normal()
  )
  return {
    "rnn": cell.init(k_rnn, 1),
    "head": {
      "w": head_init(k_head, (model.hidden, 1), jnp.float32),
      "b": jnp.zeros((1,), jnp.float32),
    },
  }


def predict(cell, params: dict, window):
  """z_hat [B] from windows [B, W]."""
  last = window[:, -1]
  _, h = plstm.scan(cell, params["rnn"], (window - last[:, None])[..., None])
  head = params["head"]
  return last + (h[:, -1] @ head["w"] + head["b"])[:, 0]


def loss_fn(cell, params: dict, batch: dict, key: jax.Array, *, training):
  """The MSE, and {"loss", "mse"} (the same number) and "persistence_mse";
  `key` is unused (the model draws no randomness)."""
  del key, training
  window, target = batch["window"], batch["target"]
  mse = jnp.mean((predict(cell, params, window) - target) ** 2)
  return mse, {
    "loss": mse,
    "mse": mse,
    "persistence_mse": jnp.mean((window[:, -1] - target) ** 2),
  }


def make_task(config) -> Task:
  """Forecasting the series of `config.data` with the LSTM of
  `config.model`, trained by the optimiser of `config.optimizer`
  (`plstm.train.optimizers.default_config`)."""
  d = config.data
  cell = make_cell(config.model)
  z, n = standardised(config)  # Reports a missing file or too short a series.
  train_targets = np.arange(d.window, n)  # the training targets t >= W
  val_targets = np.arange(n, len(z))
  count = len(val_targets) // d.eval_batch_size
  evals = [
    windows(z, d.window, chunk)
    for chunk in np.split(val_targets[: count * d.eval_batch_size], count)
  ]

  def train_batch(key, step):
    if d.shuffle:
      rng = numpy_rng(key, step)
      picked = rng.choice(len(train_targets), d.batch_size, replace=False)
    else:
      picked = (step * d.batch_size + np.arange(d.batch_size)) % len(
        train_targets
      )
    return windows(z, d.window, train_targets[picked])

  def eval_batches(key, epoch):
    del key, epoch  # Every validation window, the same each epoch.
    return evals

  return Task(
    init=lambda key, _: init_params(config.model, cell, key),
    loss=functools.partial(loss_fn, cell),
    train_batch=train_batch,
    eval_batches=eval_batches,
  )
