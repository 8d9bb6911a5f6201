"""Store-recall with an LSNN, as LSNN-official's tutorial
`bin/tutorial_storerecall_with_LSNN.py` (seeds-spec §2.8).

Each example is 12 slots of 200 ms. A slot shows a bit (value 0 or 1), and
may also carry a "store" or a "recall" command; at a recall slot the network
must report the bit shown with the most recent store
(`lsnn_data.sample_store_recall`, the original's generator and validity
rules). 100 Poisson input neurons in four groups of 25 (value 0, value 1,
store, recall) fire at 50 Hz while their symbol is shown
(`lsnn_data.poisson_spikes`, drawn on device from the step's key).

Model (`experiments/lsnn.py`): 10 LIF + 10 ALIF neurons (beta 1.7,
tau_a = 1200 ms), dense weights without rewiring, a readout w_out [20, 2]
without bias from the spikes filtered with tau_out = 20 ms, averaged over
each slot:

  loss = mean over recall slots of CE(slot mean of out, bit)
         + reg * sum_j (rate_j - 10 Hz)^2,

`recall_error` is the fraction of recall slots answered wrong, and
`accuracy` = 1 - recall_error. Adam 0.01, x0.3 after 100 steps. A fresh
validation batch is drawn for every evaluation, and `config.early_stop`
ends training once the mean validation recall error of the last 20
evaluations is below 5%, as the original.

Departure: the original feeds each batch's final network state in as the
next batch's initial state (train, validation and test separately, never
reset); here every example starts from rest. With 2.4 s sequences and
tau_a = 1.2 s this changes only the first slots' adaptation.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common import lsnn, lsnn_data, lsnn_plots

N_CLASSES = 2


def _sample(config, seed, index: int) -> dict:
  d = config.data
  return lsnn_data.sample_store_recall(
    np.random.default_rng([seed, index]),
    d.batch_size,
    seq_len=d.seq_len,
    seq_delay=d.seq_delay,
  )


def train_batch(config, step: int) -> dict:
  """The symbols of `step`'s batch, a pure function of (seed, step)."""
  return _sample(config, config.seed, step)


def eval_batches(config, epoch: int) -> list[dict]:
  """A fresh validation batch per evaluation, as the original."""
  return [_sample(config, config.seed + 1, epoch)]


def make_optimizer(config):
  """Adam with the tutorial's schedule, and DEEP R when rewired."""
  return lsnn.make_optimizer(config, N_CLASSES, bias=False)


def init_params(config, key: jax.Array) -> dict:
  """Params {"w_in", "w_rec", "w_out"}."""
  d = config.data
  if not 2 + 1 + d.seq_delay + 1 < d.seq_len:
    raise ValueError(
      "config.data.seq_len must exceed config.data.seq_delay + 4 (the "
      f"original's rule), got {d.seq_len} and {d.seq_delay}."
    )
  return lsnn.init_params(config, key, config.model.n_in, N_CLASSES, False)


def _forward(config, params: dict, batch: dict, key: jax.Array):
  spikes = lsnn_data.poisson_spikes(
    key,
    batch["channels"],
    n_in=config.model.n_in,
    f0=config.data.f0,
    slot_ms=config.data.slot_ms,
  )
  _, outputs, out = lsnn.run(config, params, spikes)
  return spikes, outputs, out


def _slot_logits(config, out: jax.Array) -> jax.Array:
  """[B, T, 2] -> the mean over each slot, [B, seq_len, 2]."""
  b, _, o = out.shape
  return jnp.mean(out.reshape(b, config.data.seq_len, -1, o), axis=2)


def loss_fn(config, params: dict, batch: dict, rng: jax.Array, *, training):
  """Cross-entropy at recall slots plus the rate regulariser."""
  del training  # The network is deterministic given its input spikes.
  _, outputs, out = _forward(config, params, batch, rng)
  logits = _slot_logits(config, out)
  recall = batch["is_recall"].astype(jnp.float32)
  n_recall = jnp.sum(recall)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["target"])
  ce = jnp.sum(recall * ce) / n_recall
  wrong = (jnp.argmax(logits, -1) != batch["target"]).astype(jnp.float32)
  recall_error = jnp.sum(recall * wrong) / n_recall
  loss = ce + lsnn.rate_loss(config, outputs.z)
  return loss, {
    "loss": loss,
    "ce": ce,
    "recall_error": recall_error,
    "accuracy": 1 - recall_error,
    **lsnn.spike_stats(config, outputs, params),
  }


def plot(config, params: dict, workdir) -> None:
  """`lsnn_store_recall.png`: the tutorial's four panels, one example."""
  batch = jax.tree.map(lambda a: a[:1], eval_batches(config, 0)[0])
  forward = jax.jit(functools.partial(_forward, config))
  spikes, outputs, out = forward(params, batch, jax.random.key(config.seed))
  lsnn_plots.plot_store_recall(
    workdir / "lsnn_store_recall.png",
    inputs=np.asarray(spikes[0]),
    z=np.asarray(outputs.z[0]),
    thr=np.asarray(outputs.thr[0]),
    out=np.asarray(jax.nn.softmax(out[0], axis=-1)),
    channels=np.asarray(batch["channels"][0]),
    target=np.asarray(batch["target"][0]),
    is_recall=np.asarray(batch["is_recall"][0]),
    slot_ms=config.data.slot_ms,
    n_regular=config.model.n_regular,
  )
