r"""Where the time of a plstm.LSTM training step goes, by ablation.

  python scripts/profile_lstm.py [--shape=64,784,1,128] [--repeats=5]

On one device (`jax.devices()[0]`), each row a jitted training step
(forward and backward, no optimiser) of a sum of the outputs, timed as the
median of `--repeats` runs after a warm-up:
  step: plstm.scan of plstm.LSTM as plstm.train runs it (the CPU loop: the
    whole step in the loop, each step recomputed in the backward pass), in
    float32 and with bfloat16 products (`dtype`; the weights cast once
    before the loop, `cell.prepare`);
  hoisted: `hoist=True` (x W_x + b for the whole sequence first, the loop
    storing its activations for the backward pass instead of recomputing);
  forward: the step's forward pass alone;
  products: the loop's two matrix products alone, h <- h W_h + x_t W_x
    scaled to stay bounded, no gates (float32 and bfloat16 inputs);
  gates: the loop's element-wise maths alone (the LSTM update from
    z = [h, h, h, h] + x_t, no product);
  unroll=k: the step with `lax.scan`'s unroll k, what the loop overhead
    points to.
Each row's share is its time over the step's: products + gates is the
step's work, the rest the loop and the recomputation. XLA fuses across
these pieces, so the shares are estimates, not a partition.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import plstm  # noqa: E402


def _timed(fn, *args, repeats: int) -> float:
  """The median seconds of `fn(*args)` (jitted, compiled first)."""
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _scan(step, carry, xs):
  return jax.lax.scan(step, carry, jnp.swapaxes(xs, 0, 1))


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shape", default="64,784,1,128", help="B,T,I,H")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  b, t, i, h = map(int, args.shape.split(","))
  device = jax.devices()[0]
  rng = np.random.default_rng(0)
  x = jax.device_put(rng.normal(size=(b, t, i)).astype(np.float32), device)
  cell = plstm.LSTM(h)
  params = jax.device_put(cell.init(jax.random.key(0), i), device)

  def lstm_loss(cell, **options):
    def loss(params, x):
      return jnp.sum(plstm.scan(cell, params, x, **options)[1])

    return jax.grad(loss)

  def products(dtype):
    def loss(params, x):
      def step(hs, x_t):
        z = plstm.cell.dot(hs, params["w_h"][:, :h], dtype)
        z = z + plstm.cell.dot(x_t, params["w_x"][:, :h], dtype)
        return 0.5 * z, None

      return jnp.sum(_scan(step, jnp.zeros((b, h)), x)[0])

    return jax.grad(loss)

  def gates(params, x):
    """The LSTM update of `plstm.LSTM.candidate` without its product."""
    del params

    def step(carry, x_t):
      c, hs = carry
      z = jnp.concatenate([hs] * 4, axis=-1) + x_t
      z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
      c = jax.nn.sigmoid(z_f) * c + jax.nn.sigmoid(z_i) * jnp.tanh(z_g)
      return (c, jax.nn.sigmoid(z_o) * jnp.tanh(c)), None

    zeros = jnp.zeros((b, h))
    return jnp.sum(_scan(step, (zeros, zeros), x)[0][1])

  bf16 = plstm.LSTM(h, dtype=jnp.bfloat16)
  rows = {
    "step, float32": (lstm_loss(cell), params, x),
    "step, bfloat16 products": (lstm_loss(bf16), params, x),
    "hoisted, float32": (lstm_loss(cell, hoist=True), params, x),
    "forward, float32": (
      lambda p, x: jnp.sum(plstm.scan(cell, p, x)[1]),
      params,
      x,
    ),
    "products, float32": (products(None), params, x),
    "products, bfloat16": (products(jnp.bfloat16), params, x),
    "gates (element-wise), float32": (jax.grad(gates, argnums=1), params, x),
  }
  for k in (2, 4, 8):
    rows[f"step, float32, unroll={k}"] = (lstm_loss(cell, unroll=k), params, x)
  seconds = {
    name: _timed(fn, *a, repeats=args.repeats)
    for name, (fn, *a) in rows.items()
  }
  base = seconds["step, float32"]
  lines = [
    f"plstm.LSTM training step, B {b}, T {t}, I {i}, H {h}, one "
    f"{device.platform} device ({device.device_kind}); medians of "
    f"{args.repeats}; jax {jax.__version__}",
    "",
    "| part | ms | share of the float32 step |",
    "| --- | ---: | ---: |",
  ]
  for name, s in seconds.items():
    lines.append(f"| {name} | {1e3 * s:.1f} | {s / base:.2f} |")
  text = "\n".join(lines)
  print(text)
  return text


if __name__ == "__main__":
  main()
