"""Sequential MNIST with an LSNN and DEEP R, as LSNN-official's tutorial
`bin/tutorial_sequential_mnist_with_LSNN.py` (seeds-spec §2.7).

Data: the batches of `experiments/smnist.py` (`smnist.make_data`: MNIST
IDX files or tfds, pixel / 255, one per ms; training batches from the data
key, a fixed evaluation set), turned on device into 80 threshold-crossing
input channels over 784 + 56 steps (`lsnn_data.encode_threshold_crossings`):
39 thresholds with an onset and an offset channel each, a "touch" channel
for pixels at 1, and an output-cue channel on for the last 56 ms.

Model (`experiments/common/lsnn.py`): 120 LIF + 100 ALIF neurons, 12%
connectivity with Dale's law and DEEP R, readout from the spikes filtered
with tau_out = 20 ms. The class scores are the readout averaged over the
last 28 ms (the original averages 30 bins of 28 steps and keeps the last):

  loss = CE(mean_{t >= 812} out_t, label) + reg * sum_j (rate_j - 10 Hz)^2.

Metrics: loss (the cross-entropy alone is `ce`), accuracy (the headline),
firing rates and, when rewired, the connectivity of w_in, w_rec and w_out
together. The network is deterministic: the loss uses no key. Its delays,
the input neurons' shuffled signs and DEEP R's stream come from the
structure key.

Departures: the original validates on 256 images of MNIST's validation
split every 400 steps and tests at the end; here the evaluation set is the
test set (or a fixed random subset of it, `config.data.eval_size`), as in
`experiments/smnist.py`. Its learning rate decays every 2500 steps only
once an epoch has been completed, which at batch 256 is always the case.
"""

import jax
import jax.numpy as jnp
import numpy as np

from experiments import smnist
from experiments.common import lsnn, lsnn_data, lsnn_plots
from plstm.train.task import Task

N_CLASSES = 10
BIN = 28  # ms: the readout is averaged over the last BIN steps


def make_task(config) -> Task:
  """The sMNIST task of `config`: `smnist`'s batches encoded as spikes, the
  LSNN of `config.model` with a readout bias, Adam with the tutorial's
  schedule and DEEP R when rewired."""
  m = config.model
  if m.n_in != 80 or config.data.cue_steps < BIN:
    raise ValueError(
      "configs/smnist_lsnn.py: the encoding needs config.model.n_in = 80 and "
      f"config.data.cue_steps >= {BIN}, got {m.n_in} and "
      f"{config.data.cue_steps}."
    )
  net = lsnn.make_network(config, m.n_in, N_CLASSES, bias=True)
  train_batch, eval_batches = smnist.make_data(config.data)
  cue_steps = config.data.cue_steps

  def forward(params, batch):
    spikes = lsnn_data.encode_threshold_crossings(
      batch["x"][..., 0], m.n_in, cue_steps
    )
    _, outputs, out = net.run(params, spikes)
    return spikes, outputs, out

  def loss(params, batch, key, *, training):
    """Weighted cross-entropy of the last bin plus the rate regulariser."""
    del key, training  # The network is deterministic.
    _, outputs, out = forward(params, batch)
    logits = jnp.mean(out[:, -BIN:], axis=1)
    return lsnn.classify(net, params, batch, outputs, logits)

  def plot(params, workdir):
    """`lsnn_smnist.png`: the tutorial's five panels for one test digit (the
    evaluation set's first, which no key draws)."""
    batches = eval_batches(jax.random.key(0), 0)
    batch = jax.tree.map(lambda a: a[:1], batches[0])
    spikes, outputs, out = jax.jit(forward)(params, batch)
    n_rec = net.cell.n_rec
    rec_sign = np.ones(n_rec) if net.rec_sign is None else net.rec_sign
    lsnn_plots.plot_smnist(
      workdir / "lsnn_smnist.png",
      inputs=np.asarray(spikes[0]),
      z=np.asarray(outputs.z[0]),
      thr=np.asarray(outputs.thr[0]),
      out=np.asarray(jax.nn.softmax(out[0], axis=-1)),
      n_regular=m.n_regular,
      rec_sign=np.asarray(rec_sign),
      label=int(batch["label"][0]),
      prediction=int(jnp.argmax(jnp.mean(out[0, -BIN:], axis=0))),
    )

  return Task(
    init=net.init,
    loss=loss,
    train_batch=train_batch,
    eval_batches=eval_batches,
    optimizer=net.optimizer,
    plot=plot,
  )
