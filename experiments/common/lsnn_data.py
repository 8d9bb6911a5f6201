"""Inputs of the two LSNN tutorials of LSNN-official (seeds-spec §2.7, §2.8).

Sequential MNIST (`bin/tutorial_sequential_mnist_with_LSNN.py`,
`find_onset_offset` and `get_data_dict` with `crs_thr=True`):
  encode_threshold_crossings: pixels [B, T] in [0, 1], one per ms, to
    threshold-crossing spikes [B, T + cue_steps, n_in] with an output cue.

Store-recall (`bin/tutorial_storerecall_utils.py`):
  sample_store_recall: symbol sequences, their four input channels, targets
    and recall slots, in NumPy from a np.random.Generator;
  store_recall_from_symbols: the channels, targets and recall slots of given
    symbol sequences (with the original's random distractors);
  is_valid_store_recall: the original's `validity_test`;
  poisson_spikes: the channels of each slot as Poisson spike trains, in jax.

Symbols: 0 and 1 are the values, STORE = 2 and RECALL = 3. Shapes: B batch,
T time steps of 1 ms, L symbol slots, I = n_in input neurons.

Departures: the original draws from NumPy's global generator (and its spikes
from an unseeded RandomState); here every draw comes from the rng or key
passed in, so a batch is reproducible. Outside recall slots the original's
target holds the input symbol, which is never read; here it is 0.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

STORE = 2
RECALL = 3
N_GROUPS = 4  # input groups: value 0, value 1, store, recall


@functools.partial(jax.jit, static_argnames=("n_in", "cue_steps"))
def encode_threshold_crossings(
  pixels: jax.Array, n_in: int = 80, cue_steps: int = 56
) -> jax.Array:
  """Threshold-crossing spikes of pixel sequences, plus an output-cue channel.

  With K = n_in // 2 thresholds thr_k = k / (K - 1), k = 0, ..., K - 1 (the
  original's `np.linspace(0, 1, n_in // 2)`), and y = pixels[b]:

    channel 2k     (onset of thr_k,  k < K - 1):  1 at t if y_t < thr_k <= y_t+1
    channel 2k + 1 (offset of thr_k, k < K - 1):  1 at t if y_t >= thr_k > y_t+1
    channel 2K - 2 (touch, thr = 1):              1 at t if y_t == 1
    channel 2K - 1 (output cue):                  1 on the last cue_steps steps

  for t < T; the last pixel step never has an onset or offset, and the
  cue_steps steps after the image are silent but for the cue. n_in = 80 gives
  39 * 2 + 1 + 1 = 80 channels over 784 + 56 = 840 steps; the thr = 0
  channels are always silent.

  Args:
    pixels: [B, T] float in [0, 1]; the original feeds uint8 / 255, T = 784.
    n_in: the number of channels, 2K: even and at least 4.
    cue_steps: steps of the output cue (the original's 2 * 28 * ext_time).

  Returns:
    [B, T + cue_steps, n_in] float32 in {0, 1}.

  Notes:
    As in the original, a crossing between pixels t and t + 1 spikes at t, one
    step before the pixel that crosses is shown. The comparisons are made in
    float32 against float32 thresholds, where the original compares float32
    pixels with float64 thresholds; the two agree on all 256 values k / 255.
    The original's `ext_time` (each pixel repeated) is left to the caller:
    repeat the pixels and scale cue_steps.
  """
  if n_in % 2 or n_in < 4:
    raise ValueError(
      f"n_in = {n_in} gives no threshold-crossing code: the code has "
      f"2 (n_in // 2 - 1) + 1 + 1 = {2 * (n_in // 2)} channels (onset and "
      "offset per threshold below 1, touch, output cue), so n_in must be even "
      "and at least 4 (the original's n_in = 80)."
    )
  pixels = pixels.astype(jnp.float32)
  B, T = pixels.shape
  thr = jnp.asarray(np.linspace(0.0, 1.0, n_in // 2)[:-1], jnp.float32)
  below = pixels[..., None] < thr  # [B, T, K - 1]
  onset = below[:, :-1] & ~below[:, 1:]
  offset = ~below[:, :-1] & below[:, 1:]
  crossings = jnp.stack([onset, offset], axis=-1).reshape(B, T - 1, n_in - 2)
  crossings = jnp.pad(crossings, ((0, 0), (0, 1), (0, 0)))
  touch = (pixels == 1.0)[..., None]
  image = jnp.concatenate([crossings, touch], axis=-1).astype(jnp.float32)
  image = jnp.pad(image, ((0, 0), (0, cue_steps), (0, 1)))
  return image.at[:, T:, -1].set(1.0)


def is_valid_store_recall(symbols: np.ndarray) -> bool:
  """The original's `validity_test` of one symbol sequence [L].

  Valid when there is at least one value, one store and one recall; the
  first store comes before the first recall and the last recall after the
  last store; stores and recalls alternate (a store between two recalls, a
  recall between two stores); and every store is followed by a value. That
  is: the stores and recalls, in order, read S R S R ... S R, and no store
  is last or followed by a recall.
  """
  stores = np.flatnonzero(symbols == STORE)
  markers = symbols[symbols >= STORE]
  return bool(
    np.any(symbols < STORE)
    and markers.size >= 2
    and markers.size % 2 == 0
    and np.all(markers[0::2] == STORE)
    and np.all(markers[1::2] == RECALL)
    and np.all(symbols[stores + 1] < STORE)
  )


def _sample_symbols(rng: np.random.Generator, seq_len: int, p: float):
  """One valid sequence [L], by the original's `generate_input_with_prob`."""
  # As in the original, the last marker is not reset between draws. This
  # changes no accepted sequence: a draw that starts after a store has a
  # recall for its first marker, so it always fails.
  last = RECALL
  while True:
    symbols = rng.integers(0, 2, seq_len)
    for t, u in enumerate(rng.random(seq_len)):
      if u < p:
        symbols[t] = last = STORE if last == RECALL else RECALL
    if is_valid_store_recall(symbols):
      return symbols


def store_recall_from_symbols(
  rng: np.random.Generator, symbols: np.ndarray
) -> dict:
  """Channels, targets and recall slots of valid sequences [B, L].

  channels [B, L, 4] in order (value 0, value 1, store, recall): the one-hot
  code of each symbol, except that, as in the original's
  `generate_mikolov_data`, for each store at slot l (in order):
    1. the value channels of slot l copy those of slot l + 1, so the bit to
       store is shown together with "store";
    2. with probability 1/2 the value channels of slot l + 1 are inverted,
       so the value slot after a store shows the wrong bit (a distractor).
  target [B, L] int32: at a recall, the symbol right after the most recent
  store (the stored bit); 0 elsewhere. is_recall [B, L] bool.
  symbols [B, L] int32: the sequences.
  """
  symbols = np.asarray(symbols, np.int32)
  for b, seq in enumerate(symbols):
    if not is_valid_store_recall(seq):
      raise ValueError(
        f"store-recall sequence {b} ({seq.tolist()}) fails the validity "
        "rules of is_valid_store_recall."
      )
  B, L = symbols.shape
  channels = (symbols[..., None] == np.arange(N_GROUPS)).astype(np.float32)
  target = np.zeros((B, L), np.int32)
  for b, l in zip(*np.nonzero(symbols == STORE), strict=True):
    channels[b, l, :2] = channels[b, l + 1, :2]
    if rng.random() < 0.5:
      channels[b, l + 1, :2] = 1.0 - channels[b, l + 1, :2]
    recall = l + 1 + np.argmax(symbols[b, l + 1 :] == RECALL)
    target[b, recall] = symbols[b, l + 1]
  return {
    "channels": channels,
    "target": target,
    "is_recall": symbols == RECALL,
    "symbols": symbols,
  }


def sample_store_recall(
  rng: np.random.Generator, batch_size: int, *, seq_len=12, seq_delay=6
) -> dict:
  """A batch of the store-recall task (`generate_mikolov_data`).

  Each slot starts as a random bit. Walking through the slots with a last
  marker that starts at recall, with u ~ U(0, 1) drawn at every slot and
  p = 1 / (1 + seq_delay) (the original's p_store = p_recall): if u < p, the
  slot becomes a store after a recall, or a recall after a store. Sequences
  are drawn again until `is_valid_store_recall` holds (as in the original,
  the last marker carries over from a rejected draw to the next, which only
  wastes draws: one that starts after a store always fails). Then
  `store_recall_from_symbols` (same rng) gives the channels, targets and
  recall slots.

  Returns:
    {"channels": [B, L, 4] float32, "target": [B, L] int32,
     "is_recall": [B, L] bool, "symbols": [B, L] int32}, L = seq_len.
  """
  p = 1.0 / (1 + seq_delay)
  symbols = np.stack(
    [_sample_symbols(rng, seq_len, p) for _ in range(batch_size)]
  )
  return store_recall_from_symbols(rng, symbols)


@functools.partial(jax.jit, static_argnames=("n_in", "slot_ms"))
def poisson_spikes(
  key: jax.Array,
  channels: jax.Array,
  *,
  n_in: int = 100,
  f0: float = 0.05,
  slot_ms: int = 200,
) -> jax.Array:
  """Spike trains [B, L * slot_ms, I] of the channels [B, L, G] of each slot.

  The I neurons form G groups, `np.array_split(range(n_in), G)` (G = 4 and
  n_in = 100: 25 each, in channel order). A neuron of group g fires in ms t
  of slot l with probability f0 * channels[b, l, g], as the original's
  `generate_poisson_noise_np`: spike = rate > u, u ~ U[0, 1). A silent
  channel's group never fires. f0 is per ms (0.05 = 50 Hz at dt = 1 ms).
  """
  groups = np.array_split(np.arange(n_in), channels.shape[-1])
  group_of = np.concatenate([np.full(g.size, i) for i, g in enumerate(groups)])
  rate = f0 * jnp.asarray(channels, jnp.float32)[..., group_of]  # [B, L, I]
  rate = jnp.repeat(rate, slot_ms, axis=1)
  return (rate > jax.random.uniform(key, rate.shape)).astype(jnp.float32)
