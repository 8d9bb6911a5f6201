"""The LSNN of the original tutorials: a population of LIF and ALIF neurons,
its sparse signed weights, the filtered readout, the firing-rate regulariser,
and Adam with DEEP R rewiring.

Shared by `experiments/smnist_lsnn.py` and `experiments/store_recall.py`;
it reads `config.model` (the network), `config.rewiring` and
`config.optimizer`. Follows the LSNN-official tutorials (seeds-spec §2.4-2.7):

  neurons: n_regular LIF (beta = 0) then n_adaptive ALIF (beta), one
    `plstm.ALIF` population, R = n_regular + n_adaptive;
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
  regulariser: reg * sum_j (mean rate_j - reg_rate / 1000)^2;
  optimiser: Adam whose learning rate decays x decay_rate every decay_every
    steps (staircase), then `plstm.deep_r` on w_in, w_rec, w_out.

Departures: the synaptic delays are drawn from `delay_seed = config.seed`,
the same for every seed trained together with `config.num_seeds`, and so are
the neuron signs and DEEP R's seed (the optimiser is built once per run).
"""

import math

import jax
import jax.numpy as jnp
import optax

import plstm

REWIRED = ("w_in", "w_rec", "w_out")


def make_cell(config) -> plstm.ALIF:
  """The population: n_regular LIF neurons, then n_adaptive ALIF ones."""
  m = config.model
  if m.n_regular < 0 or m.n_adaptive < 0 or m.n_regular + m.n_adaptive == 0:
    raise ValueError(
      "config.model.n_regular and n_adaptive must be >= 0 with a positive "
      f"sum, got {m.n_regular} and {m.n_adaptive}."
    )
  return plstm.ALIF(
    m.n_regular + m.n_adaptive,
    tau=m.tau,
    thr=m.thr,
    dt=m.dt,
    n_refractory=m.n_refractory,
    n_delay=m.n_delay,
    tau_a=m.tau_a,
    beta=(0.0,) * m.n_regular + (m.beta,) * m.n_adaptive,
    dampening_factor=m.dampening_factor,
    delay_seed=config.seed,
  )


def rewired(config) -> bool:
  """Whether the weights are sparse and trained with DEEP R."""
  p = config.rewiring.connectivity
  if not 0 <= p <= 1:
    raise ValueError(
      f"config.rewiring.connectivity must be in [0, 1], got {p} (0 or 1: "
      "dense weights, no rewiring)."
    )
  return 0 < p < 1


def neuron_signs(config, n_in: int):
  """(input signs [I], recurrent signs [R]) as the tutorial, or None."""
  if not (rewired(config) and config.rewiring.neuron_sign):
    return None
  p = config.rewiring.proportion_excitatory
  n_rec = config.model.n_regular + config.model.n_adaptive
  in_sign = plstm.neuron_signs(
    n_in, p, shuffle_key=jax.random.key(config.seed + 3)
  )
  return in_sign, plstm.neuron_signs(n_rec, p)


def init_params(config, key: jax.Array, n_in: int, n_out: int, bias: bool):
  """{"w_in", "w_rec", "w_out"} (+ "b_out" with `bias`)."""
  cell = make_cell(config)
  n_rec = cell.n_rec
  k_in, k_rec, k_out = jax.random.split(key, 3)
  if rewired(config):
    p = config.rewiring.connectivity
    signs = neuron_signs(config, n_in)
    in_sign, rec_sign = (None, None) if signs is None else signs
    params = {
      "w_in": plstm.weight_sampler(k_in, n_in, n_rec, p, in_sign)[0],
      "w_rec": plstm.weight_sampler(k_rec, n_rec, n_rec, p, rec_sign)[0],
      "w_out": plstm.weight_sampler(k_out, n_rec, n_out, p, rec_sign)[0],
    }
  else:
    params = cell.init(k_in, n_in)
    params["w_out"] = jax.nn.initializers.glorot_uniform()(
      k_out, (n_rec, n_out), jnp.float32
    )
  if bias:
    params["b_out"] = jnp.zeros((n_out,), jnp.float32)
  return params


def run(config, params: dict, inputs: jax.Array, carry=None):
  """Spikes through the network: (final carry, LSNNOutput [B, T, R] each,
  readout out [B, T, O])."""
  cell = make_cell(config)
  net = {"w_in": params["w_in"], "w_rec": params["w_rec"]}
  carry, outputs = plstm.scan(cell, net, inputs, carry=carry)
  decay = math.exp(-config.model.dt / config.model.tau_out)
  out = plstm.exp_convolve(outputs.z @ params["w_out"], decay)
  if "b_out" in params:
    out = out + params["b_out"]
  return carry, outputs, out


def rate_loss(config, z: jax.Array) -> jax.Array:
  """reg * sum_j (rate_j - f0)^2, rates in spikes per ms."""
  f0 = config.model.reg_rate / 1000
  return config.model.reg * plstm.firing_rate_loss(z, f0, config.model.dt)


def make_optimizer(
  config, n_out: int, bias: bool
) -> optax.GradientTransformation:
  """Adam with a staircase-decayed learning rate, then DEEP R if rewired
  (`n_out` readouts; `bias`: whether the params hold "b_out", not rewired)."""
  o = config.optimizer
  lr = optax.exponential_decay(
    o.learning_rate, o.decay_every, o.decay_rate, staircase=True
  )
  tx = optax.adam(lr)
  if not rewired(config):
    return tx
  r = config.rewiring
  signs = None
  n_in = config.model.n_in
  pair = neuron_signs(config, n_in)
  if pair is not None:
    in_sign, rec_sign = pair
    n_rec = rec_sign.shape[0]
    signs = {
      "w_in": jnp.broadcast_to(in_sign[:, None], (n_in, n_rec)),
      "w_rec": jnp.broadcast_to(rec_sign[:, None], (n_rec, n_rec)),
      "w_out": jnp.broadcast_to(rec_sign[:, None], (n_rec, n_out)),
    }
    if bias:
      signs["b_out"] = None  # deep_r wants the params' structure
  mask = lambda params: {k: k in REWIRED for k in params}
  return optax.chain(
    tx,
    plstm.deep_r(
      lr,
      r.connectivity,
      l1=r.l1,
      temperature=r.temperature,
      signs=signs,
      mask=mask,
      seed=config.seed,
    ),
  )


def spike_stats(config, outputs, params) -> dict:
  """Firing rates in Hz (mean, max over neurons) and the connectivity."""
  rate = jnp.mean(outputs.z, axis=(0, 1)) / config.model.dt * 1000
  stats = {"rate_hz": jnp.mean(rate), "max_rate_hz": jnp.max(rate)}
  if rewired(config):
    weights = [params[k] for k in REWIRED]
    nonzero = sum(jnp.sum(w != 0) for w in weights)
    stats["connectivity"] = nonzero / sum(w.size for w in weights)
  return stats
