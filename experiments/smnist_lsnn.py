"""Sequential MNIST with an LSNN and DEEP R, as LSNN-official's tutorial
`bin/tutorial_sequential_mnist_with_LSNN.py` (seeds-spec §2.7).

Data: the batches of `experiments/smnist.py` (MNIST IDX files or tfds,
pixel / 255, one per ms), turned on device into 80 threshold-crossing
input channels over 784 + 56 steps (`lsnn_data.encode_threshold_crossings`):
39 thresholds with an onset and an offset channel each, a "touch" channel
for pixels at 1, and an output-cue channel on for the last 56 ms.

Model (`experiments/lsnn.py`): 120 LIF + 100 ALIF neurons, 12% connectivity
with Dale's law and DEEP R, readout from the spikes filtered with
tau_out = 20 ms. The class scores are the readout averaged over the last
28 ms (the original averages 30 bins of 28 steps and keeps the last):

  loss = CE(mean_{t >= 812} out_t, label) + reg * sum_j (rate_j - 10 Hz)^2.

Metrics: loss (the cross-entropy alone is `ce`), accuracy, firing rates and,
when rewired, the connectivity of w_in, w_rec and w_out together.

Departures: the original validates on 256 images of MNIST's validation
split every 400 steps and tests at the end; here the evaluation set is the
test set (or a fixed random subset of it, `config.data.eval_size`), as in
`experiments/smnist.py`. Its learning rate decays every 2500 steps only
once an epoch has been completed, which at batch 256 is always the case.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common import lsnn, lsnn_data, lsnn_plots
from experiments import smnist

N_CLASSES = 10
BIN = 28  # ms: the readout is averaged over the last BIN steps

train_batch = smnist.train_batch
eval_batches = smnist.eval_batches


def _check(config):
  if config.model.n_in != 80 or config.data.cue_steps < BIN:
    raise ValueError(
      "configs/smnist_lsnn.py: the encoding needs config.model.n_in = 80 and "
      f"config.data.cue_steps >= {BIN}, got {config.model.n_in} and "
      f"{config.data.cue_steps}."
    )


def make_optimizer(config):
  """Adam with the tutorial's schedule, and DEEP R when rewired."""
  return lsnn.make_optimizer(config, N_CLASSES, bias=True)


def init_params(config, key: jax.Array) -> dict:
  """Params {"w_in", "w_rec", "w_out", "b_out"}."""
  _check(config)
  return lsnn.init_params(config, key, config.model.n_in, N_CLASSES, True)


def _forward(config, params: dict, batch: dict):
  spikes = lsnn_data.encode_threshold_crossings(
    batch["x"][..., 0], config.model.n_in, config.data.cue_steps
  )
  _, outputs, out = lsnn.run(config, params, spikes)
  return spikes, outputs, out


def loss_fn(config, params: dict, batch: dict, rng: jax.Array, *, training):
  """Weighted cross-entropy of the last bin plus the rate regulariser."""
  del rng, training  # The network is deterministic.
  _, outputs, out = _forward(config, params, batch)
  logits = jnp.mean(out[:, -BIN:], axis=1)
  weight = batch["weight"]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  ce = jnp.mean(weight * ce)
  correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
  loss = ce + lsnn.rate_loss(config, outputs.z)
  return loss, {
    "loss": loss,
    "ce": ce,
    "accuracy": jnp.mean(weight * correct),
    **lsnn.spike_stats(config, outputs, params),
  }


def plot(config, params: dict, workdir) -> None:
  """`lsnn_smnist.png`: the tutorial's five panels for one test digit."""
  batch = jax.tree.map(lambda a: a[:1], eval_batches(config, 0)[0])
  forward = jax.jit(functools.partial(_forward, config))
  spikes, outputs, out = forward(params, batch)
  m = config.model
  pair = lsnn.neuron_signs(config, m.n_in)
  n_rec = m.n_regular + m.n_adaptive
  rec_sign = np.ones(n_rec) if pair is None else np.asarray(pair[1])
  probs = jax.nn.softmax(out[0], axis=-1)
  lsnn_plots.plot_smnist(
    workdir / "lsnn_smnist.png",
    inputs=np.asarray(spikes[0]),
    z=np.asarray(outputs.z[0]),
    thr=np.asarray(outputs.thr[0]),
    out=np.asarray(probs),
    n_regular=m.n_regular,
    rec_sign=rec_sign,
    label=int(batch["label"][0]),
    prediction=int(jnp.argmax(jnp.mean(out[0, -BIN:], axis=0))),
  )
