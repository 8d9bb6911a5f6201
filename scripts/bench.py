r"""Training throughput of plstm beside the libraries researchers would use.

  python scripts/bench.py                  # every table (2-core CPU: ~20 min)
  python scripts/bench.py --only=lstm      # lstm, plstm, snn, sparse, long,
                                           # sweep
  python scripts/bench.py --quick          # tiny shapes, 1 repeat (CI)
  python scripts/bench.py --torch_threads=1   # on a machine shared with
                                              # other jobs (see the flag)
  python scripts/bench.py --cpu_devices=1  # JAX on one CPU device

`pip install -e .[bench]` brings the peers torch and snnTorch; without them
their rows say "not installed".

A step is a full training step: forward, backward and the optimiser's update
(Adam, lr 1e-3; the LSNN rows use the sMNIST experiment's own Adam and
DEEP R). JAX steps are compiled first (the compile time is its own column);
every implementation then takes one warm-up step and `--repeats` timings of
`--steps` steps each, and the table shows the median. The timings of a
block's rows are interleaved (every row's first, then every row's second,
...), so a slow spell on a shared machine falls on all of them alike. `vs`
divides the seconds per step of each row by those of its block's first row,
so `vs` > 1 means the first row is that much faster.

Devices: on a CPU, JAX splits the cores into `--cpu_devices` host devices
(default: one per core this process may use), as `plstm.train` does. A row
named "N devices" is plstm data parallel over every device
(`plstm.parallel.value_and_grad` on `make_mesh()`, the batch split by rows
with `NamedSharding(mesh, P("data"))`: each device differentiates its rows
and the gradients are averaged once per step); it is the first row of its
block, so `vs` reads as how many times faster plstm is on all cores. Rows
named "1 device", and the JAX peers (Flax, cuDNN), run on `jax.devices()[0]`
alone, as jit runs a program by default; torch uses its own threads (one
per core unless `--torch_threads`). A batch that does not divide over the
devices is split over the most devices that divide it (the note says so).

Groups (B batch, T time, I inputs, H hidden units):
  lstm: plstm.LSTM through plstm.scan and flax.linen.RNN(
    OptimizedLSTMCell), each on every device (through the same
    `plstm.parallel.value_and_grad`) and on one, in float32 and with
    bfloat16 matrix products (plstm's `dtype`, Flax's `dtype`; float32
    params); plstm's other loop (`hoist`); torch.nn.LSTM; on a GPU
    jax.experimental.rnn (cuDNN); loss: MSE of a linear readout of the last
    h. Below the table, the bars at each shape, from the same run, each on
    equal footing: plstm.LSTM at least 1.3x as fast as Flax on the same
    devices in the same precision (and as torch.nn.LSTM), and bfloat16 at
    least 1.3x float32 for plstm.LSTM on every device.
  plstm: plstm.PhasedLSTM (training, leak on, peepholes as in the paper)
    on every device and on one, in float32 and bfloat16, against plstm.LSTM
    on one device at the same shape without and with peepholes (the latter
    differs from the Phased LSTM by the time gate alone) and a plain PyTorch
    Phased LSTM.
  snn: the sMNIST LSNN (`experiments/smnist_lsnn.py`, 120 LIF + 100 ALIF,
    n_delay 10, n_refractory 5, B 256, T 840, 80 inputs) with DEEP R on
    every device (float32 and bfloat16) and on one, and on one device
    without DEEP R (with fixed and with learned delays), without delays and
    refractoriness; snnTorch's RLeaky. The bar: learned delays within
    1.2x the seconds per step of fixed ones, both without DEEP R.
  shd: the SHD network (`configs/shd.py:paper`, 128 LIF + 128 ALIF, dense,
    B 256, T 100 bins, I 700) with learned and with fixed delays (D 25),
    and without delays on every device and on one, beside snnTorch's
    RLeaky without delays (the same work: no delays in snnTorch's).
  sparse: evaluation (forward only, one device) of a Phased LSTM at
    r_on = 0.05, dense (plstm.scan) against `plstm.sparse.scan`, which
    updates only open units.
  long: LSTM training (one device) at long T, without and with
    rematerialisation (plstm.scan's `remat_chunk`): seconds per step and
    XLA's peak memory (its buffer assignment, arguments and outputs
    included).
  sweep: packed sweeps, the driver's own pieces (`plstm.train.packing`,
    `plstm.train.steps.compile_steps` on a `plstm.parallel.make_mesh` whose
    model axis holds the devices that divide K, as `--model_devices` would,
    the driver's models and batches): K = 1, 4, 16, 64 models whose learning
    rates differ, trained as one program, on `configs/freq_task.py`
    (small: Phased LSTM, async, B 32, T 125, H 110) and
    `configs/store_recall.py` (small: 10 LIF + 10 ALIF, B 128, 12 slots of
    200 ms). K = 1 is one unpacked model, a sequential run: K sequential
    runs go at its steps/s. Each row gives ms per (packed) step, model-steps
    per second (K / seconds per step) and `x seq`, that over the sequential
    run's; below, the bar: K = 16 packed at least 2x sequential on a CPU,
    10x on an accelerator. Only the train step is timed, on one batch made
    beforehand (`task.train_batch`, put with `parallel.global_batch`). A
    program whose XLA peak memory exceeds 80% of the memory available is
    compiled but not run (its note says so).
"""

import argparse
import datetime
import functools
import json
import math
import os
import platform
import runpy
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import plstm  # noqa: E402
from experiments import shd, smnist_lsnn  # noqa: E402
from experiments.common import lsnn, lsnn_data  # noqa: E402
from plstm import parallel, sparse  # noqa: E402
from plstm.train import packing, steps  # noqa: E402
from plstm.train import task as task_lib  # noqa: E402

GROUPS = ("lstm", "plstm", "snn", "shd", "sparse", "long", "sweep")
LSTM_SHAPES = ((64, 784, 1, 128), (256, 100, 1, 32), (32, 1000, 2, 110))
LR = 1e-3
FLAX_LSTM = "flax RNN(OptimizedLSTMCell)"
TORCH_LSTM = "torch.nn.LSTM"
# plstm.LSTM on every device against each LSTM peer: at least this many
# times its sequences per second.
LSTM_BAR = 1.3
# plstm.LSTM with bfloat16 products on every device against float32, at
# least this many times its seq/s.
BF16 = "bfloat16"
BF16_BAR = 1.3
# An LSNN step with learned delays against fixed ones: within this many
# times its seconds; the rows compared, per group.
DELAY_BAR = 1.2
DELAY_ROWS = {
  "snn": (
    "plstm LSNN, learned delays, Adam (no rewiring), 1 device",
    "plstm LSNN, Adam (no rewiring), 1 device",
  ),
  "shd": (
    "plstm LSNN, learned delays, 1 device",
    "plstm LSNN, fixed delays, 1 device",
  ),
}
SWEEP_TASKS = ("freq_task", "store_recall")
SWEEP_MODELS = (1, 4, 16, 64)
# K = 16 packed models against 16 sequential runs: at least this many times
# the model-steps per second, on a CPU and on an accelerator.
SWEEP_K = 16
SWEEP_BAR = {"cpu": 2.0, "accelerator": 10.0}
# A program whose peak exceeds this share of the available memory is
# compiled but not run.
MEMORY_SHARE = 0.8


class Timing(NamedTuple):
  """One implementation's result; `step_s` None when it did not run."""

  name: str
  compile_s: float | None
  step_s: float | None
  note: str = ""


class Runner(NamedTuple):
  """What a benchmark times: `step()` runs one training step to the end
  (None: compiled, not to be run); `peak_bytes`, XLA's peak memory for it
  (JAX only)."""

  compile_s: float | None
  step: Callable[[], None] | None
  peak_bytes: int | None = None


def _torch():
  """torch, or None when it is not installed."""
  try:
    import torch
  except ImportError:
    return None
  return torch


def _torch_device(torch) -> str:
  gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
  return "cuda" if gpu else "cpu"


class Job(NamedTuple):
  """A row to time: `make()` builds its runner (compiling a JAX step)."""

  name: str
  make: Callable[[], Runner]
  note: str = ""


def _time_block(
  rows: Sequence[Job | Timing], args, warm: bool = False
) -> list[Timing]:
  """Times a block's jobs with their repeats interleaved (each job's first
  timing, then each job's second, ...), so that a slow spell of a shared
  machine falls on every row of the block alike; other rows pass through.
  With `warm`, each timing follows an untimed step of its own job, so that
  a large program before it does not charge it for cold caches."""
  runners = {}
  for index, row in enumerate(rows):
    if isinstance(row, Job):
      runners[index] = row.make()
      runners[index].step()  # warm-up
  per_step = {index: [] for index in runners}
  for _ in range(args.repeats):
    for index, runner in runners.items():
      if warm:
        runner.step()
      start = time.perf_counter()
      for _ in range(args.steps):
        runner.step()
      per_step[index].append((time.perf_counter() - start) / args.steps)
  return [
    Timing(
      row.name,
      runners[index].compile_s,
      statistics.median(per_step[index]),
      row.note,
    )
    if index in runners
    else row
    for index, row in enumerate(rows)
  ]


def _skip(name: str, note: str) -> Timing:
  return Timing(name, None, None, note)


def _devices(n: int) -> str:
  return "1 device" if n == 1 else f"{n} devices"


def data_mesh(batch_size: int) -> tuple[jax.sharding.Mesh, str]:
  """A mesh of every device on the data axis, or of the most devices
  (the first ones) that divide `batch_size`, and a note saying so."""
  devices = jax.devices()
  n = max(d for d in range(1, len(devices) + 1) if batch_size % d == 0)
  note = ""
  if n < len(devices):
    note = (
      f"B {batch_size} does not divide over {len(devices)} devices: "
      f"split over {_devices(n)}"
    )
  return parallel.make_mesh(devices=devices[:n]), note


def jax_runner(loss: Callable, params, batch, tx, mesh=None) -> Runner:
  """A compiled training step of `loss(params, batch)` with optimiser `tx`,
  on `jax.devices()[0]`, or data parallel over `mesh`: each device
  differentiates its rows of `batch` (split on axis 0) and the gradients
  are averaged once (`plstm.parallel.value_and_grad`)."""
  if mesh is None:
    grad = jax.grad(loss)
    place = functools.partial(jax.device_put, device=jax.devices()[0])
    batch = place(batch)
  else:
    value_and_grad = parallel.value_and_grad(loss, mesh)

    def grad(params, batch):
      return value_and_grad(params, batch)[1]

    place = functools.partial(
      jax.device_put, device=jax.NamedSharding(mesh, jax.P())
    )
    batch = jax.device_put(batch, jax.NamedSharding(mesh, jax.P(parallel.DATA)))
  params = place(params)

  def train_step(params, opt_state, batch):
    grads = grad(params, batch)
    # optax's Adam mixes its int32 count with floats (see plstm.train).
    with jax.numpy_dtype_promotion("standard"):
      updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  state = [params, place(tx.init(params))]
  start = time.perf_counter()
  compiled = (
    jax.jit(train_step, donate_argnums=(0, 1)).lower(*state, batch).compile()
  )
  compile_s = time.perf_counter() - start

  def step():
    state[:] = compiled(*state, batch)
    jax.block_until_ready(state)

  return Runner(compile_s, step, _peak_bytes(compiled))


def jax_eval_runner(fn: Callable, *args) -> Runner:
  """A compiled forward pass `fn(*args)` on `jax.devices()[0]`."""
  args = jax.device_put(args, jax.devices()[0])
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  compile_s = time.perf_counter() - start
  return Runner(compile_s, lambda: jax.block_until_ready(compiled(*args)))


def torch_runner(torch, module, loss: Callable) -> Runner:
  """A training step of `loss()` over `module`'s parameters with Adam."""
  opt = torch.optim.Adam(module.parameters(), lr=LR)
  sync = torch.cuda.synchronize if torch.cuda.is_available() else None

  def step():
    opt.zero_grad(set_to_none=True)
    loss().backward()
    opt.step()
    if sync is not None and next(module.parameters()).is_cuda:
      sync()

  return Runner(None, step)


# LSTM -----------------------------------------------------------------------


def _regression_batch(b, t, i, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(b, t, i)).astype(np.float32)
  y = rng.normal(size=(b, 1)).astype(np.float32)
  return x, y


def _with_readout(cell, input_size: int) -> dict:
  """The cell's params and a fixed linear readout [H, 1] of its last h."""
  return {
    "cell": cell.init(jax.random.key(0), input_size),
    "w_out": jnp.full((cell.hidden_size, 1), 0.1, jnp.float32),
  }


def _mse_of_last(h: jax.Array, params, y: jax.Array) -> jax.Array:
  return jnp.mean(jnp.square(h[:, -1] @ params["w_out"] - y))


def plstm_lstm(
  shape, peepholes: bool = False, mesh=None, dtype=None, **scan_options
) -> Runner:
  """plstm.LSTM through plstm.scan(..., **scan_options), on one device or
  data parallel over `mesh`, its products in `dtype` (None: float32)."""
  b, t, i, h = shape
  cell = plstm.LSTM(h, peepholes=peepholes, dtype=dtype)
  params = _with_readout(cell, i)
  x, y = _regression_batch(b, t, i)

  def loss(params, batch):
    x, y = batch
    _, hs = plstm.scan(cell, params["cell"], x, **scan_options)
    return _mse_of_last(hs, params, y)

  return jax_runner(loss, params, (x, y), optax.adam(LR), mesh)


def flax_lstm(shape, mesh=None, dtype=None) -> Runner:
  """flax.linen.RNN(OptimizedLSTMCell(dtype=dtype)), float32 params, on one
  device or data parallel over `mesh` (the same helper as plstm's)."""
  b, t, i, h = shape
  rnn = nn.RNN(nn.OptimizedLSTMCell(h, dtype=dtype))
  x, y = _regression_batch(b, t, i)
  # Flax mixes bfloat16 and float32 by standard dtype promotion.
  standard = functools.partial(jax.numpy_dtype_promotion, "standard")
  with standard():
    params = {
      "cell": rnn.init(jax.random.key(0), x),
      "w_out": jnp.full((h, 1), 0.1, jnp.float32),
    }

  def loss(params, batch):
    x, y = batch
    with standard():
      hs = rnn.apply(params["cell"], x).astype(jnp.float32)
    return _mse_of_last(hs, params, y)

  return jax_runner(loss, params, (x, y), optax.adam(LR), mesh)


def cudnn_lstm(shape) -> Runner:
  """jax.experimental.rnn.lstm (cuDNN; GPU only)."""
  from jax.experimental import rnn

  b, t, i, h = shape
  x, y = _regression_batch(b, t, i)
  params = {
    "w": rnn.init_lstm_weight(jax.random.key(0), i, h, 1, False),
    "w_out": jnp.full((h, 1), 0.1, jnp.float32),
  }
  zeros = jnp.zeros((1, b, h), jnp.float32)
  lengths = jnp.full((b,), t, jnp.int32)

  def loss(params, batch):
    x, y = batch
    hs, _, _ = rnn.lstm(
      x, zeros, zeros, params["w"], lengths, i, h, 1, 0.0, False
    )
    return _mse_of_last(hs, params, y)

  return jax_runner(loss, params, (x, y), optax.adam(LR))


def torch_lstm(torch, shape) -> Runner:
  """torch.nn.LSTM (batch first) and a linear readout."""
  b, t, i, h = shape
  device = _torch_device(torch)
  model = torch.nn.ModuleDict(
    {
      "lstm": torch.nn.LSTM(i, h, batch_first=True),
      "out": torch.nn.Linear(h, 1),
    }
  ).to(device)
  x, y = (torch.from_numpy(a).to(device) for a in _regression_batch(b, t, i))

  def loss():
    hs, _ = model["lstm"](x)
    return torch.mean(torch.square(model["out"](hs[:, -1]) - y))

  return torch_runner(torch, model, loss)


def parallel_job(
  name: str, batch_size: int, make: Callable, suffix: str = ""
) -> Job:
  """The row of `make(mesh=...)` data parallel over every device (or the
  most that divide `batch_size`): "`name`, N devices`suffix`"."""
  mesh, note = data_mesh(batch_size)
  n = mesh.shape[parallel.DATA]
  label = f"{name}, {_devices(n)}" + (", data parallel" if n == 1 else "")
  return Job(label + suffix, functools.partial(make, mesh=mesh), note)


def _suffix(dtype: str | None) -> str:
  """A row name's precision: nothing for float32, ", bfloat16"."""
  return f", {dtype}" if dtype else ""


def bench_lstm(args) -> list[tuple[str, list[Timing]]]:
  torch = _torch()
  tables = []
  for shape in _shapes(args, LSTM_SHAPES):
    # The loop plstm.scan does not choose here (see its `hoist`).
    other = jax.default_backend() == "cpu"
    rows = []
    for dtype in (None, BF16):  # each pair on equal footing
      ours = functools.partial(plstm_lstm, shape, dtype=dtype)
      flax_ = functools.partial(flax_lstm, shape, dtype=dtype)
      s = _suffix(dtype)
      rows += [
        parallel_job("plstm.LSTM", shape[0], ours, s),
        parallel_job(FLAX_LSTM, shape[0], flax_, s),
        Job(f"plstm.LSTM, 1 device{s}", ours),
        Job(f"{FLAX_LSTM}, 1 device{s}", flax_),
      ]
      if dtype is None:
        rows.append(
          Job(
            f"plstm.LSTM, 1 device, hoist={other}",
            functools.partial(plstm_lstm, shape, hoist=other),
          )
        )
    name = TORCH_LSTM
    if torch is None:
      rows.append(_skip(name, "not installed"))
    else:
      rows.append(Job(name, functools.partial(torch_lstm, torch, shape)))
    name = "jax.experimental.rnn (cuDNN)"
    if jax.default_backend() == "gpu":
      rows.append(Job(name, functools.partial(cudnn_lstm, shape)))
    else:
      rows.append(_skip(name, "GPU only"))
    tables.append((_shape_label(shape), _time_block(rows, args)))
  return tables


# Phased LSTM ----------------------------------------------------------------


def _timestamps(b: int, t: int) -> np.ndarray:
  """Regular sampling at 1 ms: t = 1, ..., T for every sequence."""
  return np.broadcast_to(np.arange(1, t + 1, dtype=np.float32), (b, t)).copy()


def plstm_phased(shape, mesh=None, dtype=None) -> Runner:
  """plstm.PhasedLSTM through plstm.scan, training (the leak on), on one
  device or data parallel over `mesh`, its products in `dtype`."""
  b, t, i, h = shape
  cell = plstm.PhasedLSTM(h, dtype=dtype)
  params = _with_readout(cell, i)
  x, y = _regression_batch(b, t, i)

  def loss(params, batch):
    x, times, y = batch
    _, hs = plstm.scan(cell, params["cell"], (x, times), training=True)
    return _mse_of_last(hs, params, y)

  batch = (x, _timestamps(b, t), y)
  return jax_runner(loss, params, batch, optax.adam(LR), mesh)


def torch_phased_lstm_module(torch):
  """A Phased LSTM as a PyTorch user would write it: a loop over time.

  Same equations, gate order, defaults and initialisation as
  `plstm.PhasedLSTM` (peepholes, output peephole on c̃, floor-mod phase);
  `load(params)` copies plstm params into it.
  """

  class PhasedLSTM(torch.nn.Module):
    def __init__(self, input_size, hidden_size, alpha=1e-3):
      super().__init__()
      h = hidden_size
      self.alpha = alpha

      def param(*shape, scale=0.1):
        return torch.nn.Parameter(scale * torch.randn(*shape))

      self.w_x = param(input_size, 4 * h)
      self.w_h = param(h, 4 * h)
      self.b = torch.nn.Parameter(
        torch.cat([torch.full((h,), -0.1), torch.zeros(3 * h)])
      )
      self.p_i, self.p_f, self.p_o = param(h), param(h), param(h)
      self.tau = torch.nn.Parameter(torch.exp(torch.empty(h).uniform_(1, 3)))
      self.shift = torch.nn.Parameter(torch.empty(h).uniform_(0, 100))
      self.r_on = torch.nn.Parameter(torch.full((h,), 0.05))

    def load(self, params):
      with torch.no_grad():
        for name, value in params.items():
          getattr(self, name).copy_(torch.from_numpy(np.array(value)))
      return self

    def forward(self, x, t):
      """x [B, T, I], t [B, T] -> h [B, T, H]."""
      b, steps, _ = x.shape
      c = h = x.new_zeros(b, self.w_h.shape[0])
      # unbind, not z_x[:, step]: the backward of indexing adds a full
      # [B, T, 4H] zero gradient per step, O(T^2).
      z_x = (x @ self.w_x + self.b).unbind(1)
      t = t.unbind(1)
      tau, r_on = self.tau.abs(), self.r_on.abs()
      outputs = []
      for step in range(steps):
        z_i, z_f, z_g, z_o = (z_x[step] + h @ self.w_h).chunk(4, dim=-1)
        i = torch.sigmoid(z_i + self.p_i * c)
        f = torch.sigmoid(z_f + self.p_f * c)
        c_new = f * c + i * torch.tanh(z_g)
        h_new = torch.sigmoid(z_o + self.p_o * c_new) * torch.tanh(c_new)
        phi = torch.remainder(t[step][:, None] - self.shift, tau) / tau
        up = 2 * phi / r_on
        k = torch.where(
          phi <= 0.5 * r_on,
          up,
          torch.where(phi <= r_on, 2 - up, self.alpha * phi),
        )
        c = k * c_new + (1 - k) * c
        h = k * h_new + (1 - k) * h
        outputs.append(h)
      return torch.stack(outputs, dim=1)

  return PhasedLSTM


def torch_phased(torch, shape) -> Runner:
  b, t, i, h = shape
  device = _torch_device(torch)
  model = torch.nn.ModuleDict(
    {
      "cell": torch_phased_lstm_module(torch)(i, h),
      "out": torch.nn.Linear(h, 1, bias=False),
    }
  ).to(device)
  x, y = (torch.from_numpy(a).to(device) for a in _regression_batch(b, t, i))
  times = torch.from_numpy(_timestamps(b, t)).to(device)

  def loss():
    hs = model["cell"](x, times)
    return torch.mean(torch.square(model["out"](hs[:, -1]) - y))

  return torch_runner(torch, model, loss)


def bench_phased(args) -> list[tuple[str, list[Timing]]]:
  torch = _torch()
  tables = []
  for shape in _shapes(args, LSTM_SHAPES):
    rows = [
      parallel_job(
        "plstm.PhasedLSTM", shape[0], functools.partial(plstm_phased, shape)
      ),
      Job("plstm.PhasedLSTM, 1 device", functools.partial(plstm_phased, shape)),
      parallel_job(
        "plstm.PhasedLSTM",
        shape[0],
        functools.partial(plstm_phased, shape, dtype=BF16),
        _suffix(BF16),
      ),
      Job(
        f"plstm.PhasedLSTM, 1 device{_suffix(BF16)}",
        functools.partial(plstm_phased, shape, dtype=BF16),
      ),
      Job("plstm.LSTM, 1 device", functools.partial(plstm_lstm, shape)),
      Job(
        "plstm.LSTM, peepholes, 1 device",
        functools.partial(plstm_lstm, shape, peepholes=True),
      ),
    ]
    name = "PyTorch Phased LSTM (loop)"
    if torch is None:
      rows.append(_skip(name, "not installed"))
    else:
      rows.append(Job(name, functools.partial(torch_phased, torch, shape)))
    tables.append((_shape_label(shape), _time_block(rows, args)))
  return tables


# LSNN -----------------------------------------------------------------------


def lsnn_config(quick: bool, **model):
  """The sMNIST LSNN config (`configs/smnist_lsnn.py`), tiny with `quick`."""
  config = runpy.run_path(str(ROOT / "configs" / "smnist_lsnn.py"))[
    "get_config"
  ]("smoke" if quick else "small")
  if quick:
    config.data.batch_size = 4
  for key, value in model.items():
    if key == "connectivity":
      config.rewiring.connectivity = value
    else:
      setattr(config.model, key, value)
  return config


def _lsnn_batch(config, pixels: int):
  rng = np.random.default_rng(0)
  b = config.data.batch_size
  return {
    "x": rng.uniform(size=(b, pixels, 1)).astype(np.float32),
    "label": rng.integers(0, smnist_lsnn.N_CLASSES, size=(b,)).astype(np.int32),
    "weight": np.ones((b,), np.float32),
  }


def plstm_lsnn(config, pixels: int, mesh=None) -> Runner:
  """One step of the sMNIST LSNN experiment's training (plstm.train's: the
  floating leaves trained, the integer delays carried), on one device or
  data parallel over `mesh`."""
  task = smnist_lsnn.make_task(config)
  keys = task_lib.seed_keys(0)
  params = task.init(keys.init, keys.structure)

  def loss(trained, batch):
    full = plstm.merge(trained, params)
    key = keys.noise
    if mesh is not None:  # each device its own draws, as plstm.train.steps
      key = jax.random.fold_in(key, jax.lax.axis_index(parallel.DATA))
    return task.loss(full, batch, key, training=True)[0]

  tx = task.optimizer(keys.structure)
  trained = plstm.trainable(params)
  return jax_runner(loss, trained, _lsnn_batch(config, pixels), tx, mesh)


def snntorch_lsnn(torch, config, pixels: int) -> Runner:
  """snnTorch: Linear(80, R) into RLeaky(R, all-to-all recurrence), the
  spikes low-pass filtered into Linear(R, 10), the same loss terms."""
  import snntorch

  device = _torch_device(torch)
  m = config.model
  n_rec = m.n_regular + m.n_adaptive
  batch = _lsnn_batch(config, pixels)
  spikes = lsnn_data.encode_threshold_crossings(
    jnp.asarray(batch["x"][..., 0]), m.n_in, config.data.cue_steps
  )
  x = torch.from_numpy(np.array(spikes)).to(device)
  label = torch.from_numpy(batch["label"].astype(np.int64)).to(device)
  model = torch.nn.ModuleDict(
    {
      "w_in": torch.nn.Linear(m.n_in, n_rec, bias=False),
      "lif": snntorch.RLeaky(
        beta=math.exp(-m.dt / m.tau), linear_features=n_rec
      ),
      "w_out": torch.nn.Linear(n_rec, smnist_lsnn.N_CLASSES),
    }
  ).to(device)
  decay = math.exp(-m.dt / m.tau_out)
  f0 = m.reg_rate / 1000

  def loss():
    spk, mem = model["lif"].init_rleaky()
    filtered = x.new_zeros(x.shape[0], n_rec)
    outs = []
    rate = 0.0
    for step in range(x.shape[1]):
      spk, mem = model["lif"](model["w_in"](x[:, step]), spk, mem)
      filtered = decay * filtered + (1 - decay) * spk
      rate = rate + spk.mean(0)
      if step >= x.shape[1] - smnist_lsnn.BIN:
        outs.append(model["w_out"](filtered))
    logits = torch.stack(outs).mean(0)
    reg = m.reg * torch.sum(torch.square(rate / x.shape[1] - f0))
    return torch.nn.functional.cross_entropy(logits, label) + reg

  return torch_runner(torch, model, loss)


def _snntorch_job(name: str, make: Callable) -> Job | Timing:
  """The row of `make(torch)`, or "not installed" without torch and
  snnTorch."""
  torch = _torch()
  try:
    import snntorch  # noqa: F401
  except ImportError:
    torch = None
  if torch is None:
    return _skip(name, "not installed")
  return Job(name, lambda: make(torch))


def bench_lsnn(args) -> list[tuple[str, list[Timing]]]:
  """The sMNIST LSNN and snnTorch, the first variant also on every device;
  `--quick` runs one variant, without DEEP R (whose compilation alone takes
  seconds)."""
  pixels = 16 if args.quick else 784
  full = lsnn_config(args.quick)
  variants = {
    "plstm LSNN, Adam + DEEP R": {},
    "plstm LSNN, Adam (no rewiring)": {"connectivity": 0.0},
    "plstm LSNN, learned delays, Adam (no rewiring)": {
      "connectivity": 0.0,
      "learn_delays": True,
    },
    "plstm LSNN, Adam, n_delay 1, n_refractory 0": {
      "connectivity": 0.0,
      "n_delay": 1,
      "n_refractory": 0,
    },
  }
  if args.quick:
    variants = {k: v for k, v in variants.items() if "no rewiring" in k}
  rows = []
  for name, changes in variants.items():
    config = lsnn_config(args.quick, **changes)
    make = functools.partial(plstm_lsnn, config, pixels)
    if not rows:
      b = config.data.batch_size
      rows.append(parallel_job(name, b, make))
      bf16 = lsnn_config(args.quick, dtype=BF16, **changes)
      half = functools.partial(plstm_lsnn, bf16, pixels)
      rows.append(parallel_job(name, b, half, _suffix(BF16)))
    rows.append(Job(f"{name}, 1 device", make))
  rows.append(
    _snntorch_job(
      "snnTorch RLeaky, Adam",
      lambda torch: snntorch_lsnn(torch, full, pixels),
    )
  )
  m = full.model
  t = pixels + full.data.cue_steps
  label = (
    f"B {full.data.batch_size}, T {t}, I {m.n_in}, "
    f"R {m.n_regular + m.n_adaptive}"
  )
  return [(label, _time_block(rows, args))]


def shd_config(quick: bool, **model):
  """The SHD network (`configs/shd.py:paper`: 128 LIF + 128 ALIF, dense,
  n_delay 25, learned delays, B 256, T 100, I 700), tiny with `quick`."""
  config = runpy.run_path(str(ROOT / "configs" / "shd.py"))["get_config"](
    "smoke" if quick else "paper"
  )
  for key, value in model.items():
    setattr(config.model, key, value)
  return config


def _shd_batch(config):
  """Spike counts of a 700-channel input at about 2% per bin."""
  rng = np.random.default_rng(0)
  b, t, n = config.data.batch_size, config.data.n_bins, config.model.n_in
  return {
    "x": (rng.uniform(size=(b, t, n)) < 0.02).astype(np.float32),
    "label": rng.integers(0, 20, size=(b,)).astype(np.int32),
    "weight": np.ones((b,), np.float32),
  }


def plstm_shd(config, mesh=None) -> Runner:
  """One training step of `experiments/shd.py`'s loss and optimiser."""
  net = lsnn.make_network(config, config.model.n_in, 20, bias=True)
  keys = task_lib.seed_keys(0)
  params = net.init(keys.init, keys.structure)
  loss_fn = shd.make_loss(net)

  def loss(trained, batch):
    return loss_fn(plstm.merge(trained, params), batch, None, training=True)[0]

  tx = net.optimizer(keys.structure)
  return jax_runner(loss, plstm.trainable(params), _shd_batch(config), tx, mesh)


def snntorch_shd(torch, config) -> Runner:
  """snnTorch at the SHD network's work without delays: Linear(700, R)
  into RLeaky(R, all-to-all recurrence), the spikes low-pass filtered into
  Linear(R, 20), their mean over time, cross-entropy and the rate term."""
  import snntorch

  device = _torch_device(torch)
  m = config.model
  n_rec = m.n_regular + m.n_adaptive
  batch = _shd_batch(config)
  x = torch.from_numpy(batch["x"]).to(device)
  label = torch.from_numpy(batch["label"].astype(np.int64)).to(device)
  model = torch.nn.ModuleDict(
    {
      "w_in": torch.nn.Linear(m.n_in, n_rec, bias=False),
      "lif": snntorch.RLeaky(
        beta=math.exp(-m.dt / m.tau), linear_features=n_rec
      ),
      "w_out": torch.nn.Linear(n_rec, 20),
    }
  ).to(device)
  decay = math.exp(-m.dt / m.tau_out)
  f0 = m.reg_rate * m.step_ms / 1000

  def loss():
    spk, mem = model["lif"].init_rleaky()
    filtered = x.new_zeros(x.shape[0], n_rec)
    logits, rate = 0.0, 0.0
    for step in range(x.shape[1]):
      spk, mem = model["lif"](model["w_in"](x[:, step]), spk, mem)
      filtered = decay * filtered + (1 - decay) * spk
      rate = rate + spk.mean(0)
      logits = logits + model["w_out"](filtered)
    logits = logits / x.shape[1]
    reg = m.reg * torch.sum(torch.square(rate / x.shape[1] - f0))
    return torch.nn.functional.cross_entropy(logits, label) + reg

  return torch_runner(torch, model, loss)


def bench_shd(args) -> list[tuple[str, list[Timing]]]:
  """The SHD network with learned delays against fixed ones and against
  none; without delays, the work of snnTorch's RLeaky, on every device and
  on one."""
  learned = shd_config(args.quick)
  d = learned.model.n_delay
  fixed = shd_config(args.quick, learn_delays=False)
  none = shd_config(args.quick, learn_delays=False, n_delay=1)
  b = learned.data.batch_size
  rows = [
    Job(
      "plstm LSNN, learned delays, 1 device",
      functools.partial(plstm_shd, learned),
    ),
    Job(
      "plstm LSNN, fixed delays, 1 device",
      functools.partial(plstm_shd, fixed),
    ),
    parallel_job(
      "plstm LSNN, no delays", b, functools.partial(plstm_shd, none)
    ),
    Job("plstm LSNN, no delays, 1 device", functools.partial(plstm_shd, none)),
  ]
  rows.append(
    _snntorch_job(
      "snnTorch RLeaky (no delays), Adam",
      lambda torch: snntorch_shd(torch, none),
    )
  )
  m = learned.model
  label = (
    f"B {b}, T {learned.data.n_bins}, I {m.n_in}, "
    f"R {m.n_regular + m.n_adaptive}, D {d}"
  )
  return [(label, _time_block(rows, args))]


# Sparse inference -----------------------------------------------------------


def bench_sparse(args) -> list[tuple[str, list[Timing]]]:
  b, t, i, h = (4, 200, 1, 64) if args.quick else (32, 1000, 1, 512)
  cell = plstm.PhasedLSTM(h, r_on=0.05)
  params = cell.init(jax.random.key(0), i)
  x, _ = _regression_batch(b, t, i)
  times = _timestamps(b, t)
  units = sparse.open_units(cell, params, times)

  def dense(params, x, times):
    return plstm.scan(cell, params, (x, times))[1]

  def sparse_eval(params, x, times, units):
    return sparse.scan(cell, params, (x, times), units)[1]

  open_mean = float(np.mean(np.sum(units < h, axis=1)))
  rows = [
    Job(
      "plstm.sparse.scan",
      lambda: jax_eval_runner(sparse_eval, params, x, times, units),
      f"M = {units.shape[1]}, mean open {open_mean:.1f}",
    ),
    Job("plstm.scan (dense)", lambda: jax_eval_runner(dense, params, x, times)),
  ]
  label = f"{_shape_label((b, t, i, h))}, r_on 0.05, eval"
  return [(label, _time_block(rows, args))]


# Long sequences -------------------------------------------------------------


def _size(n: int) -> str:
  return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _peak_bytes(compiled) -> int | None:
  stats = compiled.memory_analysis()
  if stats is None:
    return None
  return (
    stats.temp_size_in_bytes
    + stats.argument_size_in_bytes
    + stats.output_size_in_bytes
  )


def bench_long(args) -> list[tuple[str, list[Timing]]]:
  """Without remat at a T that fits; with remat there and at 10x that T,
  where plain `plstm.scan` is compiled for its peak memory but not run."""
  b, i, h = (2, 1, 8) if args.quick else (16, 1, 128)
  steps = (100, 400) if args.quick else (10_000, 100_000)
  tables = []
  for t in steps:
    rows = []
    # The largest divisor of T up to sqrt(T): least memory for remat.
    root = max(d for d in range(1, math.isqrt(t) + 1) if t % d == 0)
    for chunk in (None, root):
      name = "plstm.scan" if chunk is None else f"remat_chunk={chunk}"
      runner = plstm_lstm((b, t, i, h), remat_chunk=chunk)
      peak = runner.peak_bytes
      note = "" if peak is None else f"peak {_size(peak)}"
      if t == steps[0] or chunk is not None:
        rows.append(Job(name, lambda r=runner: r, note))
      else:
        rows.append(Timing(name, runner.compile_s, None, note + ", not run"))
    tables.append((_shape_label((b, t, i, h)), _time_block(rows, args)))
  return tables


# Packed sweeps --------------------------------------------------------------


class SweepRow(NamedTuple):
  """A row of the sweep group: `models` (K) trained as one program."""

  models: int
  timing: Timing


def sweep_config(name: str, quick: bool, models: int):
  """`configs/<name>.py` (small; smoke with `quick`), one seed, its
  learning rate packed as `models` values around its own (none for 1)."""
  config = runpy.run_path(str(ROOT / "configs" / f"{name}.py"))["get_config"](
    "smoke" if quick else "small"
  )
  config.num_seeds = 1
  if models > 1:
    lr = config.optimizer.learning_rate
    rates = [float(f"{v:.4g}") for v in np.geomspace(lr / 3, lr * 3, models)]
    config.pack = json.dumps({"optimizer.learning_rate": rates})
  return config


def driver_model(config) -> tuple[task_lib.Task, Callable]:
  """The task of `config` and `plstm.train`'s models of it
  (`steps.model_of`)."""
  model = steps.model_of(config, task_lib.experiment(config))
  return model({}).task, model


def _available_bytes() -> int | None:
  """The memory a program may take: the first device's limit on an
  accelerator, the host's available memory on a CPU (None if unknown)."""
  if jax.default_backend() != "cpu":
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("bytes_limit")
  try:
    for line in Path("/proc/meminfo").read_text().splitlines():
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def sweep_runner(config) -> tuple[Runner, str, str]:
  """The driver's compiled train step of `config`'s models on
  `make_mesh()` (its data axis the devices that divide the batch), a note
  and the label of its shape; the runner's step is None when its XLA peak
  memory does not fit."""
  models = packing.models(config)
  task, model = driver_model(config)
  # Packed models split over the devices (`--model_devices`), which beat
  # splitting each batch at K = 4 and 16 on the 2-core CPU; one model
  # splits its batch.
  split = math.gcd(len(models), jax.device_count())
  if split > 1:
    mesh, note = parallel.make_mesh(split), f"models on {_devices(split)}"
  else:
    mesh, note = data_mesh(config.data.batch_size)
  data = jax.NamedSharding(mesh, jax.P(None, parallel.DATA))
  init_state, train_step, _ = steps.compile_steps(model, models, mesh)
  seed_keys = [task_lib.seed_keys(s) for s in models.seeds]
  batch = parallel.global_batch(
    steps.stack([task.train_batch(k.data, 0) for k in seed_keys]), data
  )
  label = _sweep_label(config, batch, mesh.size)
  state = [init_state()]
  start = time.perf_counter()
  compiled = train_step.lower(state[0], batch).compile()
  compile_s = time.perf_counter() - start
  peak = _peak_bytes(compiled)
  notes = [note] if note else []
  if peak is not None:
    if jax.default_backend() == "cpu":  # host devices share its memory
      peak *= mesh.size
    notes.append(f"peak {_size(peak)}")
    available = _available_bytes()
    if available is not None and peak > MEMORY_SHARE * available:
      notes.append(f"> {MEMORY_SHARE:.0%} of {_size(available)} available")
      return Runner(compile_s, None, peak), ", ".join(notes), label

  def step():
    state[0], metrics = compiled(state[0], batch)
    jax.block_until_ready((state[0], metrics))

  return Runner(compile_s, step, peak), ", ".join(notes), label


def _sweep_label(config, batch, devices: int) -> str:
  """'<experiment>: B, T, I, H (or R: LSNN neurons), N devices'."""
  d, m = config.data, config.model
  if "x" in batch:  # sampled inputs [S, B, T, I]
    b, t, i = batch["x"].shape[1:]
    shape = f"B {b}, T {t}, I {i}, H {m.hidden}, {d.condition}"
  else:  # store-recall's slots, spikes drawn in the loss
    shape = (
      f"B {d.batch_size}, T {d.seq_len * d.slot_ms}, I {m.n_in}, "
      f"R {m.n_regular + m.n_adaptive}"
    )
  name = config.experiment.rsplit(".", 1)[-1]
  return f"{name}: {shape}, {_devices(devices)}"


def bench_sweep(args) -> list[tuple[str, list[SweepRow]]]:
  """Per task, K packed models against one unpacked model (K = 1); every
  program is compiled before the block's timings, and one that does not
  fit in memory is not run."""
  counts = (1, 4) if args.quick else SWEEP_MODELS
  tables = []
  for task in SWEEP_TASKS:
    rows = []
    for k in counts:
      runner, note, label = sweep_runner(sweep_config(task, args.quick, k))
      name = (
        "K = 1, no pack (a sequential run)" if k == 1 else f"K = {k} packed"
      )
      if runner.step is None:
        rows.append(Timing(name, runner.compile_s, None, note + ", not run"))
      else:
        rows.append(Job(name, lambda r=runner: r, note))
    # Rows differ up to 64x in size: a one-model step timed right after a
    # 64-model one took twice its warm time here.
    timings = _time_block(rows, args, warm=True)
    tables.append(
      (label, [SweepRow(k, t) for k, t in zip(counts, timings, strict=True)])
    )
  return tables


def sweep_report(group: str, tables: list[tuple[str, list[SweepRow]]]) -> str:
  """A Markdown table of the sweep rows (`x seq`: model-steps/s over the
  block's K = 1 row's) and the bar at K = SWEEP_K."""
  lines = [
    f"| {group} | models | compile s | ms/step | model-steps/s | x seq "
    "| note |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- |",
  ]
  kind = "cpu" if jax.default_backend() == "cpu" else "accelerator"
  bar = SWEEP_BAR[kind]
  verdicts = []
  for label, rows in tables:
    ref = next((r.timing.step_s for r in rows if r.models == 1), None)
    ratio_at = {}
    for row in rows:
      t = row.timing
      ms = None if t.step_s is None else 1e3 * t.step_s
      rate = None if t.step_s is None else row.models / t.step_s
      ratio = None if rate is None or ref is None else rate * ref
      ratio_at[row.models] = ratio
      lines.append(
        f"| {label} | {t.name} | {_fmt(t.compile_s, '.1f')} | "
        f"{_fmt(ms, '.1f')} | {_fmt(rate, '.1f')} | {_fmt(ratio, '.2f')} | "
        f"{t.note} |"
      )
    task = label.split(":", 1)[0]
    if SWEEP_K not in ratio_at:
      verdicts.append(f"{task}: K = {SWEEP_K} not run (--quick)")
    elif ratio_at[SWEEP_K] is None:
      verdicts.append(f"{task}: K = {SWEEP_K} not timed")
    else:
      r = ratio_at[SWEEP_K]
      met = "met" if r >= bar else "not met"
      verdicts.append(f"{task}: {r:.2f}x ({met})")
  lines.append("")
  lines.append(
    f"Bar: K = {SWEEP_K} packed models >= {bar:g}x the model-steps/s of "
    f"{SWEEP_K} sequential runs ({kind}): " + "; ".join(verdicts) + "."
  )
  return "\n".join(lines)


# Report ---------------------------------------------------------------------


def _shapes(args, shapes: Sequence[tuple]) -> Sequence[tuple]:
  return ((4, 12, 1, 8),) if args.quick else shapes


def _shape_label(shape) -> str:
  return "B {}, T {}, I {}, H {}".format(*shape)


def _cpu_model() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _versions() -> str:
  names = {"jax": jax, "flax": flax, "optax": optax, "numpy": np}
  parts = [f"python {platform.python_version()}"]
  parts += [f"{n} {m.__version__}" for n, m in names.items()]
  torch = _torch()
  parts.append(f"torch {torch.__version__}" if torch else "torch -")
  try:
    import snntorch

    parts.append(f"snntorch {snntorch.__version__}")
  except ImportError:
    parts.append("snntorch -")
  return ", ".join(parts)


def _usable_cores() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def header() -> str:
  devices = jax.devices()
  torch = _torch()
  threads = f", torch threads {torch.get_num_threads()}" if torch else ""
  return (
    f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
    f"{_cpu_model()}, {os.cpu_count()} cores{threads}; JAX on "
    f"{len(devices)} {devices[0].platform} device"
    f"{'s' if len(devices) > 1 else ''} ({devices[0].device_kind}); "
    f"{_versions()}"
  )


def _fmt(value: float | None, spec: str) -> str:
  return "-" if value is None else format(value, spec)


def table(group: str, tables: list[tuple[str, list[Timing]]]) -> str:
  """A Markdown table; `vs` = this row's s/step / the block's first row's."""
  lines = [
    f"| {group} | implementation | compile s | ms/step | seq/s | vs | note |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- |",
  ]
  for label, rows in tables:
    ref = rows[0].step_s
    batch = int(label.split(",")[0].split()[1])
    for row in rows:
      ms = None if row.step_s is None else 1e3 * row.step_s
      seqs = None if row.step_s is None else batch / row.step_s
      vs = None if row.step_s is None or ref is None else row.step_s / ref
      lines.append(
        f"| {label} | {row.name} | {_fmt(row.compile_s, '.1f')} | "
        f"{_fmt(ms, '.1f')} | {_fmt(seqs, '.1f')} | {_fmt(vs, '.2f')} | "
        f"{row.note} |"
      )
  return "\n".join(lines)


def _versus(by_name: dict, ours: str, theirs: str, bar: float) -> str:
  """ "`ours` vs `theirs`: their s/step over ours (met or not met)"."""
  a, b = by_name.get(ours), by_name.get(theirs)
  if a is None or b is None or a.step_s is None or b.step_s is None:
    missing = next((r for r in (a, b) if r is None or r.step_s is None), None)
    why = missing.note if missing is not None and missing.note else "not timed"
    return f"{ours} vs {theirs}: not run ({why})"
  ratio = b.step_s / a.step_s
  return (
    f"{ours} vs {theirs}: {ratio:.2f}x ({'met' if ratio >= bar else 'not met'})"
  )


def lstm_bars(tables: list[tuple[str, list[Timing]]]) -> str:
  """For each shape, on equal footing: plstm.LSTM against Flax on the same
  devices in the same precision and against torch.nn.LSTM (at least
  LSTM_BAR times as fast), and plstm.LSTM's bfloat16 products against its
  float32 on every device (BF16_BAR)."""
  lines = [
    f"Bars (this run): plstm.LSTM >= {LSTM_BAR:g}x the peer's seq/s on the "
    f"same devices in the same precision; bfloat16 >= {BF16_BAR:g}x float32:"
  ]
  for label, rows in tables:
    by_name = {r.name: r for r in rows}
    every = rows[0].name.removeprefix("plstm.LSTM, ")  # "2 devices"
    pairs = [
      (f"plstm.LSTM, {d}{s}", f"{FLAX_LSTM}, {d}{s}", LSTM_BAR)
      for s in ("", _suffix(BF16))
      for d in (every, "1 device")
    ]
    pairs.append((rows[0].name, TORCH_LSTM, LSTM_BAR))
    pairs.append((f"{rows[0].name}{_suffix(BF16)}", rows[0].name, BF16_BAR))
    lines.append(f"- {label}:")
    lines += [f"  - {_versus(by_name, *pair)}" for pair in pairs]
  return "\n".join(lines)


def lstm_report(group: str, tables: list[tuple[str, list[Timing]]]) -> str:
  return table(group, tables) + "\n\n" + lstm_bars(tables)


def delay_report(group: str, tables: list[tuple[str, list[Timing]]]) -> str:
  """The table, and the bar of learned delays: a step within DELAY_BAR
  times the fixed delays' (their s/step over ours >= 1 / DELAY_BAR)."""
  learned, fixed = DELAY_ROWS[group]
  lines = [
    f"Bar (this run): learned delays within {DELAY_BAR:g}x the fixed ones' "
    f"s/step (the ratio: fixed's s/step over learned's, >= "
    f"{1 / DELAY_BAR:.2f}):"
  ]
  for label, rows in tables:
    by_name = {r.name: r for r in rows}
    lines.append(
      f"- {label}: {_versus(by_name, learned, fixed, 1 / DELAY_BAR)}"
    )
  return table(group, tables) + "\n\n" + "\n".join(lines)


BENCHES = {
  "lstm": bench_lstm,
  "plstm": bench_phased,
  "snn": bench_lsnn,
  "shd": bench_shd,
  "sparse": bench_sparse,
  "long": bench_long,
  "sweep": bench_sweep,
}
# How a group's results become Markdown (`table` unless named here).
REPORTS = {
  "lstm": lstm_report,
  "snn": delay_report,
  "shd": delay_report,
  "sweep": sweep_report,
}


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--only",
    default=",".join(GROUPS),
    help=f"comma-separated groups among {', '.join(GROUPS)}",
  )
  parser.add_argument("--quick", action="store_true", help="tiny shapes, CI")
  parser.add_argument("--repeats", type=int, help="timings (default 5; 1)")
  parser.add_argument("--steps", type=int, default=1, help="steps per timing")
  parser.add_argument(
    "--torch_threads",
    type=int,
    help="torch.set_num_threads (default torch's: one per core); 1 on a "
    "shared machine, where spinning threads slow torch down many times",
  )
  parser.add_argument(
    "--cpu_devices",
    type=int,
    default=_usable_cores(),
    help="host devices JAX splits the CPU into (default: one per core this "
    "process may use, here %(default)s), as plstm.train does",
  )
  args = parser.parse_args(argv)
  if args.cpu_devices < 1:
    parser.error(f"--cpu_devices must be >= 1, got {args.cpu_devices}")
  args.only = [g.strip() for g in args.only.split(",") if g.strip()]
  unknown = sorted(set(args.only) - set(GROUPS))
  if unknown:
    parser.error(f"--only: unknown groups {unknown}; use {', '.join(GROUPS)}")
  if args.repeats is None:
    args.repeats = 1 if args.quick else 5
  return args


def main(argv: Sequence[str] | None = None) -> str:
  """Runs the groups of `argv` and prints (and returns) the Markdown."""
  args = parse(argv)
  try:  # before any JAX computation starts a backend
    jax.config.update("jax_num_cpu_devices", args.cpu_devices)
  except RuntimeError:
    sys.exit(
      f"bench.py: error: --cpu_devices={args.cpu_devices}, but JAX's CPU "
      f"backend has already started with {jax.local_device_count('cpu')}."
    )
  torch = _torch()
  if torch is not None and args.torch_threads:
    torch.set_num_threads(args.torch_threads)
  parts = [header()]
  print(parts[0], flush=True)
  for group in args.only:
    parts.append(REPORTS.get(group, table)(group, BENCHES[group](args)))
    print("\n" + parts[-1], flush=True)
  return "\n\n".join(parts)


if __name__ == "__main__":
  main()
