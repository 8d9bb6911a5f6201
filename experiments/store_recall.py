"""Store-recall with an LSNN, as LSNN-official's tutorial
`bin/tutorial_storerecall_with_LSNN.py` (seeds-spec §2.8).

Each example is 12 slots of 200 ms. A slot shows a bit (value 0 or 1), and
may also carry a "store" or a "recall" command; at a recall slot the network
must report the bit shown with the most recent store
(`lsnn_data.sample_store_recall`, the original's generator and validity
rules). 100 Poisson input neurons in four groups of 25 (value 0, value 1,
store, recall) fire at 50 Hz while their symbol is shown
(`lsnn_data.poisson_spikes`, drawn on device from the step's key).

Model (`experiments/common/lsnn.py`): 10 LIF + 10 ALIF neurons (beta 1.7,
tau_a = 1200 ms), dense weights without rewiring, a readout w_out [20, 2]
without bias from the spikes filtered with tau_out = 20 ms, averaged over
each slot:

  loss = mean over recall slots of CE(slot mean of out, bit)
         + reg * sum_j (rate_j - 10 Hz)^2,

`recall_error`, the headline metric (lower is better), is the fraction of
recall slots answered wrong. Adam 0.01, x0.3 after 100 steps. A fresh
validation batch is drawn for every evaluation, and `config.early_stop`
ends training once the mean validation recall error of the last 20
evaluations is below 5%, as the original.

Randomness: the symbols of training step `step` come from the data key
(`numpy_rng(data_key, step)`), the validation batch of epoch `epoch` from
the eval key (`numpy_rng(eval_key, epoch)`), and the Poisson spikes from
the loss's key: the step's noise key in training, the eval key in
evaluation (the same uniform draws on each epoch's fresh symbols). The
network's delays, and its signs and DEEP R's stream when rewired, come
from the structure key (`experiments/common/lsnn.py`).

Departure: the original feeds each batch's final network state in as the
next batch's initial state (train, validation and test separately, never
reset); here every example starts from rest. With 2.4 s sequences and
tau_a = 1.2 s this changes only the first slots' adaptation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import plstm
from experiments.common import lsnn, lsnn_data, lsnn_plots
from plstm.train.task import Task, numpy_rng

N_CLASSES = 2
# The key of the figure's example (its symbols and spikes): the same
# example in every run, drawn with the first seed's params.
PLOT_KEY = 0


def make_task(config) -> Task:
  """The store-recall task of `config`: fresh symbol batches, the LSNN of
  `config.model` (no readout bias), Adam with the tutorial's schedule (and
  DEEP R when rewired)."""
  d, n_in = config.data, config.model.n_in
  if not 2 + 1 + d.seq_delay + 1 < d.seq_len:
    raise ValueError(
      "config.data.seq_len must exceed config.data.seq_delay + 4 (the "
      f"original's rule), got {d.seq_len} and {d.seq_delay}."
    )
  net = lsnn.make_network(config, n_in, N_CLASSES, bias=False)

  def sample(key, index: int) -> dict:
    return lsnn_data.sample_store_recall(
      numpy_rng(key, index),
      d.batch_size,
      seq_len=d.seq_len,
      seq_delay=d.seq_delay,
    )

  def train_batch(key, step):
    """The symbols of `step`'s batch, a pure function of (key, step)."""
    return sample(key, step)

  def eval_batches(key, epoch):
    """A fresh validation batch per evaluation, as the original."""
    return [sample(key, epoch)]

  def forward(params, batch, key):
    spikes = lsnn_data.poisson_spikes(
      key, batch["channels"], n_in=n_in, f0=d.f0, slot_ms=d.slot_ms
    )
    _, outputs, out = net.run(params, spikes)
    return spikes, outputs, out

  def slot_logits(out):
    """[B, T, 2] -> the mean over each slot, [B, seq_len, 2]."""
    b, _, o = out.shape
    return jnp.mean(out.reshape(b, d.seq_len, -1, o), axis=2)

  def loss(params, batch, key, *, training):
    """Cross-entropy at recall slots plus the rate regulariser; `key` draws
    the input spikes."""
    del training  # The network is deterministic given its input spikes.
    _, outputs, out = forward(params, batch, key)
    logits = slot_logits(out)
    recall = batch["is_recall"].astype(jnp.float32)
    n_recall = jnp.sum(recall)
    ce = optax.softmax_cross_entropy_with_integer_labels(
      logits, batch["target"]
    )
    # Over the whole batch's recall slots, when its rows are on several
    # devices.
    ce = plstm.parallel.global_mean(jnp.sum(recall * ce), n_recall)
    wrong = (jnp.argmax(logits, -1) != batch["target"]).astype(jnp.float32)
    recall_error = plstm.parallel.global_mean(jnp.sum(recall * wrong), n_recall)
    total = ce + net.rate_loss(outputs.z)
    return total, {
      "loss": total,
      "ce": ce,
      "recall_error": recall_error,
      **net.spike_stats(outputs, params),
    }

  def plot(params, workdir):
    """`lsnn_store_recall.png`: the tutorial's four panels, one example."""
    k_data, k_spikes = jax.random.split(jax.random.key(PLOT_KEY))
    batch = jax.tree.map(lambda a: a[:1], sample(k_data, 0))
    spikes, outputs, out = jax.jit(forward)(params, batch, k_spikes)
    lsnn_plots.plot_store_recall(
      workdir / "lsnn_store_recall.png",
      inputs=np.asarray(spikes[0]),
      z=np.asarray(outputs.z[0]),
      thr=np.asarray(outputs.thr[0]),
      out=np.asarray(jax.nn.softmax(out[0], axis=-1)),
      channels=np.asarray(batch["channels"][0]),
      target=np.asarray(batch["target"][0]),
      is_recall=np.asarray(batch["is_recall"][0]),
      slot_ms=d.slot_ms,
      n_regular=config.model.n_regular,
    )

  return Task(
    init=net.init,
    loss=loss,
    train_batch=train_batch,
    eval_batches=eval_batches,
    optimizer=net.optimizer,
    plot=plot,
  )
