"""The LSNN of the original tutorials: a population of LIF and ALIF neurons,
its sparse signed weights, the filtered readout, the firing-rate regulariser,
and Adam with DEEP R rewiring.

Shared by `experiments/smnist_lsnn.py` and `experiments/store_recall.py`:
`make_network(config, n_in, n_out, bias)` reads `config.model` (the
network), `config.rewiring` and `config.optimizer` once and gives the
`Network`'s functions. Follows the LSNN-official tutorials (seeds-spec
§2.4-2.7):

  neurons: n_regular LIF (beta = 0) then n_adaptive ALIF (beta), one
    `plstm.ALIF` population, R = n_regular + n_adaptive, with synaptic
    delays in {0..n_delay-1} (int32 params `d_in`, `d_rec`, fixed; with
    `model.learn_delays` float params trained as the weights are, their
    updates scaled by `model.delay_lr_scale`, and with DEEP R redrawn where
    a synapse reconnects, `plstm.redraw_delays`);
  weights: with rewiring (0 < connectivity < 1) `plstm.weight_sampler`
    draws w_in [I, R], w_rec [R, R] and w_out [R, O] sparse; with
    `neuron_sign` their rows carry Dale's-law signs (input neurons shuffled,
    recurrent ones [-1] * n_inh + [+1] * n_exc, the readout taking the
    recurrent signs). Without rewiring: the cell's dense init and a
    Glorot-uniform w_out (TF's default);
  readout: out_t = exp_convolve(z, exp(-dt / tau_out))_t w_out (+ b_out),
    computed as exp_convolve(z w_out)_t: the filter is linear, so the two
    orders are equal (up to float rounding), and filtering the O outputs
    instead of the R spike trains is R / O times less work;
  regulariser: reg * sum_j (mean rate_j - reg_rate step_ms / 1000)^2, the
    rates per step, a step being `model.step_ms` (1 ms where the config has
    no such field, as in the tutorials);
  optimiser: Adam whose learning rate decays x decay_rate every decay_every
    steps (staircase), then `plstm.deep_r` on w_in, w_rec, w_out.

`learn_delays`, `delay_lr_scale` and `step_ms` are optional fields of
`config.model` (False, 1 and 1 without them).

The numbers that set no shape (tau, thr, dt, tau_a, beta, dampening_factor,
tau_out, reg, reg_rate; rewiring.l1 and temperature; the learning rate and
its schedule) may be JAX scalars, as a packed sweep's are; the neuron
counts, n_delay, n_refractory and the rewiring's connectivity, signs and
proportion_excitatory set the network's structure and must be concrete.

Randomness: the weights come from the init key; the fixed random structure,
the synaptic delays, the input neurons' shuffled signs and DEEP R's stream,
from the structure key (`structure_keys`), so seeds trained together get
their own delays, signs and rewiring.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

import plstm
from experiments.common import precision
from plstm.cell import is_traced
from plstm.train import optimizers

REWIRED = ("w_in", "w_rec", "w_out")


class StructureKeys(NamedTuple):
  """The structure key split by use."""

  signs: jax.Array  # the shuffle of the input neurons' signs
  delays: jax.Array  # the synaptic delays
  # DEEP R's stream (its noise and reconnections; with learned delays split
  # in two, DEEP R's and the reconnected synapses' fresh delays').
  deep_r: jax.Array


def structure_keys(key: jax.Array) -> StructureKeys:
  """`key` (a seed's structure key) split three ways."""
  return StructureKeys(*jax.random.split(key, len(StructureKeys._fields)))


class Network(NamedTuple):
  """An LSNN's functions, built once from a config by `make_network`.

  Attributes:
    cell: the population, a `plstm.ALIF`.
    rewired: whether the weights are sparse and trained with DEEP R.
    rec_sign: the recurrent neurons' signs [R] (not shuffled: the same for
      every seed), or None without Dale's law.
    init: (key, structure_key) -> params {"w_in", "w_rec", "w_out"}
      (+ "b_out" with a bias; + int32 "d_in", "d_rec" when n_delay > 1).
    optimizer: structure_key -> Adam with the schedule, then DEEP R if
      rewired.
    signs: structure_key -> (input signs [I], recurrent signs [R]), or None
      without Dale's law.
    run: (params, inputs [B, T, I]) -> (final carry, LSNNOutput [B, T, R]
      each, readout out [B, T, O]).
    rate_loss: z [B, T, R] -> reg * sum_j (rate_j - f0)^2, rates per ms.
    spike_stats: (outputs, params) -> firing rates in Hz (mean, max over
      neurons) and, when rewired, the connectivity of w_in, w_rec and w_out
      together.
  """

  cell: plstm.ALIF
  rewired: bool
  rec_sign: jax.Array | None
  init: Callable
  optimizer: Callable
  signs: Callable
  run: Callable
  rate_loss: Callable
  spike_stats: Callable


def make_cell(model) -> plstm.ALIF:
  """The population of `model` (a config's `model` block): n_regular LIF
  neurons, then n_adaptive ALIF ones, their delayed products in
  `model.dtype`."""
  m = model
  if m.n_regular < 0 or m.n_adaptive < 0 or m.n_regular + m.n_adaptive == 0:
    raise ValueError(
      "config.model.n_regular and n_adaptive must be >= 0 with a positive "
      f"sum, got {m.n_regular} and {m.n_adaptive}."
    )
  cell = plstm.ALIF(
    m.n_regular + m.n_adaptive,
    tau=m.tau,
    thr=m.thr,
    dt=m.dt,
    n_refractory=m.n_refractory,
    n_delay=m.n_delay,
    tau_a=m.tau_a,
    beta=(0.0,) * m.n_regular + (m.beta,) * m.n_adaptive,
    dampening_factor=m.dampening_factor,
    learn_delays=m.get("learn_delays", False),
  )
  return precision.with_dtype(cell, m)


def is_rewired(rewiring) -> bool:
  """Whether `rewiring` (a config's block) makes the weights sparse and
  trains them with DEEP R."""
  p = rewiring.connectivity
  if not 0 <= p <= 1:
    raise ValueError(
      f"config.rewiring.connectivity must be in [0, 1], got {p} (0 or 1: "
      "dense weights, no rewiring)."
    )
  return 0 < p < 1


def make_network(config, n_in: int, n_out: int, bias: bool) -> Network:
  """The network of `config` with `n_in` inputs and `n_out` readouts
  (`bias`: whether the readout has a bias "b_out", not rewired)."""
  m, r, o = config.model, config.rewiring, config.optimizer
  cell = make_cell(m)
  n_rec = cell.n_rec
  rewired = is_rewired(r)
  dale = rewired and r.neuron_sign
  exp = jnp.exp if is_traced(m.dt, m.tau_out) else math.exp
  decay = exp(-m.dt / m.tau_out)
  step_ms = m.get("step_ms", 1.0)
  f0 = m.reg_rate * step_ms / 1000
  reg, dt = m.reg, m.dt

  rec_sign = (
    plstm.neuron_signs(n_rec, r.proportion_excitatory) if dale else None
  )

  def signs(structure_key):
    if not dale:
      return None
    in_sign = plstm.neuron_signs(
      n_in,
      r.proportion_excitatory,
      shuffle_key=structure_keys(structure_key).signs,
    )
    return in_sign, rec_sign

  def init(key, structure_key):
    k_in, k_rec, k_out = jax.random.split(key, 3)
    delays = cell.delays(structure_keys(structure_key).delays, n_in)
    if rewired:
      pair = signs(structure_key)
      in_sign, rec_sign = (None, None) if pair is None else pair
      p = r.connectivity
      params = {
        "w_in": plstm.weight_sampler(k_in, n_in, n_rec, p, in_sign)[0],
        "w_rec": plstm.weight_sampler(k_rec, n_rec, n_rec, p, rec_sign)[0],
        "w_out": plstm.weight_sampler(k_out, n_rec, n_out, p, rec_sign)[0],
      }
    else:
      # The cell's dense weights; its delays are replaced by those of the
      # structure key.
      params = {k: v for k, v in cell.init(k_in, n_in).items() if k in REWIRED}
      params["w_out"] = jax.nn.initializers.glorot_uniform()(
        k_out, (n_rec, n_out), jnp.float32
      )
    params.update(delays)
    if bias:
      params["b_out"] = jnp.zeros((n_out,), jnp.float32)
    return params

  lr = optimizers.learning_rate(o)
  # The params' names: deep_r's signs mirror them (None where not rewired).
  delays = jax.eval_shape(lambda k: cell.delays(k, n_in), jax.random.key(0))
  names = (*REWIRED, *(("b_out",) if bias else ()), *delays)

  learned = cell.learn_delays and bool(delays)
  if learned:
    is_delay = lambda params: {k: k in delays for k in params}
    scale = optax.masked(optax.scale(m.get("delay_lr_scale", 1.0)), is_delay)

  def optimizer(structure_key):
    tx = optimizers.make(o)
    if learned:
      tx = optax.chain(tx, scale)
    if not rewired:
      return tx
    pair = signs(structure_key)
    fixed = None
    if pair is not None:
      in_sign, rec_sign = pair
      fixed = dict.fromkeys(names)
      fixed["w_in"] = jnp.broadcast_to(in_sign[:, None], (n_in, n_rec))
      fixed["w_rec"] = jnp.broadcast_to(rec_sign[:, None], (n_rec, n_rec))
      fixed["w_out"] = jnp.broadcast_to(rec_sign[:, None], (n_rec, n_out))
    deep_r_key = structure_keys(structure_key).deep_r
    redraw = []
    if learned:
      deep_r_key, redraw_key = jax.random.split(deep_r_key)
      redraw = [plstm.redraw_delays(cell.n_delay, redraw_key)]
    return optax.chain(
      tx,
      plstm.deep_r(
        lr,
        r.connectivity,
        l1=r.l1,
        temperature=r.temperature,
        signs=fixed,
        mask=lambda params: {k: k in REWIRED for k in params},
        key=deep_r_key,
      ),
      *redraw,
    )

  def run(params, inputs, carry=None):
    net = {k: v for k, v in params.items() if k not in ("w_out", "b_out")}
    carry, outputs = plstm.scan(cell, net, inputs, carry=carry)
    out = plstm.exp_convolve(outputs.z @ params["w_out"], decay)
    if bias:
      out = out + params["b_out"]
    return carry, outputs, out

  def rate_loss(z):
    return reg * plstm.firing_rate_loss(z, f0, dt)

  def spike_stats(outputs, params):
    rate = plstm.lsnn.population_rate(outputs.z) / dt * 1000 / step_ms
    stats = {"rate_hz": jnp.mean(rate), "max_rate_hz": jnp.max(rate)}
    if rewired:
      weights = [params[k] for k in REWIRED]
      nonzero = sum(jnp.sum(w != 0) for w in weights)
      stats["connectivity"] = nonzero / sum(w.size for w in weights)
    return stats

  return Network(
    cell,
    rewired,
    rec_sign,
    init,
    optimizer,
    signs,
    run,
    rate_loss,
    spike_stats,
  )


def classify(net: Network, params, batch: dict, outputs, logits) -> tuple:
  """The LSNN classifiers' loss: the weighted cross-entropy of `logits`
  [B, C] against batch["label"] (weights batch["weight"]) plus the rate
  regulariser of the spikes `outputs.z`; and its metrics (loss, ce,
  accuracy, `net.spike_stats`)."""
  weight = batch["weight"]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  ce = jnp.mean(weight * ce)
  correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
  total = ce + net.rate_loss(outputs.z)
  return total, {
    "loss": total,
    "ce": ce,
    "accuracy": jnp.mean(weight * correct),
    **net.spike_stats(outputs, params),
  }
