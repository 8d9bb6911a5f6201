r"""theano_lstm's tutorial: a language model of a nonsensical toy grammar.

Data (`generate_nonsense`, the tutorial's grammar, seeded NumPy): a sentence
is a run of clauses, each

  stop-word noun [adverb [adverb]] verb [noun[-noun]] punctuation,

with an adverb w.p. 0.3 and a second w.p. 0.3, an object noun w.p. 0.2 and
a "-noun" after it w.p. 0.1, stop words and punctuation drawn from the
tutorial's weight tables, nouns, verbs and adverbs uniformly. The sentence
ends at the first "." (or with "." appended once it is over 500
characters). The training set is `train_size` sentences from
default_rng(`CORPUS_SEED`) (the tutorial's 100 in one full batch, or random
batches of `batch_size` of more, drawn from the data key with the step), the
validation set `eval_size` more from the eval key (the same every epoch).
Tokens are indices into `VOCAB`, whose index 0 (`**UNKNOWN**`) also pads
sentences on the right to `max_len`.

The training set is the task's fixed data set, the same for every seed (as
MNIST is for sMNIST), not a stream of a run's keys: the unigram baseline of
the validation batches is the training set's, and `eval_batches` gets only
the eval key. A seed changes the initialisation, the batches drawn from the
training set, the dropout masks and the validation sentences.

Model: embedding E [V, D] -> stacked cells (`model.cell`: lstm, or rnn for
the tutorial's linear RNN) -> Dense(V) -> softmax. Token t predicts token
t + 1; the loss is theano_lstm's `masked_loss` over each sentence's
length - 1 targets, summed over the batch as in the tutorial, and optimised
with AdaDelta (rho 0.95, eps 1e-6, each tensor's gradient clipped to norm
5: `plstm.train.optimizers`).

Metrics (per real target token): "loss" the mean NLL [nats], "accuracy" the
next-token accuracy, "unigram_loss" the NLL of the baseline that ignores
the context, the training targets' unigram distribution with add-one
smoothing, p(w) = (n_w + 1) / (N + V). No model can go below the grammar's
entropy rate, `entropy_rate()` = 2.34 nats per token.

Notes:
  The tutorial splits text on spaces, so "cat-dog" and (past 500
  characters) "ran." are single words and its vocabulary is whatever the
  100 sentences hold. Here "-" and "." are split off (a regex tokeniser) and
  the vocabulary is every token the grammar can emit, fixed at 47, so that
  params have the same shape for every seed and no validation token is
  unknown. Sentences longer than `max_len` tokens are cut there (measured:
  1e-5 of sentences at 96, 6e-4 at 64; the mean length is 10.7 tokens).
  The tutorial's `random` stream is unseeded; here it is NumPy's
  `default_rng`, and its draws (NumPy's `choice`) differ from those of the
  tutorial's cumulative-table `Sampler`. theano_lstm initialises every
  weight and bias with N(0, 1) / out_size and draws a random (untrained)
  initial state; here embeddings use Flax's `nn.Embed` initialiser
  (variance scaling 1, fan-in, normal), the head Flax's Dense (LeCun
  normal, zero bias), the cells plstm's (Flax's) defaults, and the initial
  state is zeros. Its LSTM has no forget-gate bias; plstm.LSTM starts it at
  1. The tutorial prints samples from its own random stream; `plot` gets
  no key, so its three sampled sentences use fixed keys (`SAMPLE_KEY`):
  they are a function of the params alone.
"""

import functools
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import plstm
from plstm.train.task import Task, numpy_rng

STOP = {
  "the": 10.0,
  "from": 5.0,
  "a": 9.0,
  "they": 3.0,
  "he": 3.0,
  "it": 2.5,
  "she": 2.7,
  "in": 4.5,
}
NOUNS = (
  "cat broom boat dog car wrangler mexico lantern book paper joke calendar "
  "ship event"
).split()
VERBS = "ran stole carried could would do can carry catapult jump duck".split()
ADVERBS = (
  "rapidly",
  "calmly",
  "cooly",
  "in jest",
  "fantastically",
  "angrily",
  "dazily",
)
PUNCTUATION = {".": 0.49, ",": 0.5, ";": 0.03, "?": 0.05, "!": 0.05}
UNKNOWN = "**UNKNOWN**"
VOCAB = tuple(
  dict.fromkeys(
    [UNKNOWN, *PUNCTUATION, "-", *STOP, *NOUNS, *VERBS]
    + [w for a in ADVERBS for w in a.split()]
  )
)
INDEX = {w: i for i, w in enumerate(VOCAB)}
MAX_CHARS = 500
CELLS = ("lstm", "rnn")
GREEDY_STEPS = 200  # the tutorial's n_steps for greedy decoding
CORPUS_SEED = (0, 0)  # NumPy's seed of the training sentences
SAMPLE_KEY = 3  # jax.random.key(3): `plot`'s sampled sentences


def _draw(rng: np.random.Generator, table) -> str:
  """A word from a weight table (dict) or uniformly from a sequence."""
  if isinstance(table, dict):
    weights = np.array(list(table.values()))
    return str(rng.choice(list(table), p=weights / weights.sum()))
  return str(table[rng.integers(len(table))])


def generate_nonsense(rng: np.random.Generator) -> str:
  """One sentence of the tutorial's grammar (see the module docstring)."""
  text = ""
  while not text.endswith("."):
    words = [_draw(rng, STOP), _draw(rng, NOUNS)]
    if rng.random() > 0.7:
      words.append(_draw(rng, ADVERBS))
      if rng.random() > 0.7:
        words.append(_draw(rng, ADVERBS))
    words.append(_draw(rng, VERBS))
    if rng.random() > 0.8:
      words.append(_draw(rng, NOUNS))
      if rng.random() > 0.9:
        words[-1] += "-" + _draw(rng, NOUNS)
    text = " ".join([text, *words]) if text else " ".join(words)
    if len(text) > MAX_CHARS:
      text += "."
    else:
      text += " " + _draw(rng, PUNCTUATION)
  return text


def _entropy(weights) -> float:
  p = np.asarray(weights, np.float64) / np.sum(weights)
  return float(-np.sum(p * np.log(p)))


def tokens_per_clause() -> float:
  """The expected number of tokens of one clause."""
  adverb = 1 + 1 / len(ADVERBS)  # "in jest" is two tokens
  return 4 + 0.3 * 1.3 * adverb + 0.2 * (1 + 0.1 * 2)


def entropy_rate() -> float:
  """The generator's expected NLL per predicted token [nats]: the entropy
  of a sentence, less its unpredicted first word, over its tokens but one
  (sentences cut at 500 characters are neglected)."""
  bernoulli = lambda q: _entropy([q, 1 - q])
  log_n, log_v, log_a = np.log([len(NOUNS), len(VERBS), len(ADVERBS)])
  clause = (
    _entropy(list(STOP.values()))
    + log_n
    + bernoulli(0.3)
    + 0.3 * (log_a + bernoulli(0.3) + 0.3 * log_a)
    + log_v
    + bernoulli(0.2)
    + 0.2 * (log_n + bernoulli(0.1) + 0.1 * log_n)
    + _entropy(list(PUNCTUATION.values()))
  )
  clauses = sum(PUNCTUATION.values()) / PUNCTUATION["."]
  first = _entropy(list(STOP.values()))
  return (clauses * clause - first) / (clauses * tokens_per_clause() - 1)


def tokenize(text: str) -> list[str]:
  """Words, with "-" and punctuation as tokens of their own."""
  return re.findall(r"[a-z]+|[^a-z\s]", text)


def encode(sentences: list[str], max_len: int) -> tuple[np.ndarray, ...]:
  """Right-padded indices [N, max_len] int32 and lengths [N] int32.

  Padding is index 0; unknown words also map to 0; sentences longer than
  max_len are cut.
  """
  tokens = np.zeros((len(sentences), max_len), np.int32)
  lengths = np.zeros(len(sentences), np.int32)
  for i, s in enumerate(sentences):
    ids = [INDEX.get(w, 0) for w in tokenize(s)][:max_len]
    tokens[i, : len(ids)] = ids
    lengths[i] = len(ids)
  return tokens, lengths


def decode(ids) -> str:
  """The text of token indices."""
  return " ".join(VOCAB[int(i)] for i in ids)


def _target_mask(lengths: np.ndarray, num_targets: int) -> np.ndarray:
  """[N, T - 1]: true for the length - 1 real targets of each sentence."""
  return np.arange(num_targets) < (lengths[:, None] - 1)


@functools.lru_cache(maxsize=8)
def _train_set(size: int, max_len: int):
  rng = np.random.default_rng(CORPUS_SEED)
  return encode([generate_nonsense(rng) for _ in range(size)], max_len)


def train_set(data) -> tuple[np.ndarray, np.ndarray]:
  """The training sentences of `data` (a config's `data` block): tokens
  [train_size, max_len] and lengths [train_size], the same for every seed
  (cached, read-only)."""
  return _train_set(data.train_size, data.max_len)


@functools.lru_cache(maxsize=8)
def _sentences(key_data: bytes, size: int, max_len: int):
  rng = np.random.default_rng(np.frombuffer(key_data, np.uint32))
  return encode([generate_nonsense(rng) for _ in range(size)], max_len)


def draw_sentences(key: jax.Array, size: int, max_len: int):
  """`size` sentences drawn with `key` (`numpy_rng(key)`), as
  tokens [size, max_len] and lengths [size] (cached by the key)."""
  key_data = np.asarray(jax.random.key_data(key), np.uint32).tobytes()
  return _sentences(key_data, size, max_len)


def unigram_log_probs(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """log p(w) [V] of the targets of sentences `tokens` [N, T] of `lengths`
  [N] (the first token of each is not a target), with add-one smoothing."""
  targets = tokens[:, 1:][_target_mask(lengths, tokens.shape[1] - 1)]
  counts = np.bincount(targets, minlength=len(VOCAB))
  return np.log((counts + 1) / (counts.sum() + len(VOCAB)))


@functools.lru_cache(maxsize=8)
def _unigram(size: int, max_len: int) -> np.ndarray:
  return unigram_log_probs(*_train_set(size, max_len))


def _batch(log_p: np.ndarray, tokens: np.ndarray, lengths: np.ndarray):
  mask = _target_mask(lengths, tokens.shape[1] - 1)
  return {
    "tokens": tokens,
    "lengths": lengths,
    "unigram_nll": np.where(mask, -log_p[tokens[:, 1:]], 0.0).astype(
      np.float32
    ),
  }


def make_cells(model) -> list:
  """The stacked cells of `model` (a config's `model` block)."""
  if model.cell not in CELLS:
    raise ValueError(
      f"config.model.cell must be one of {CELLS}, got {model.cell!r}."
    )
  if model.cell == "lstm":
    return [plstm.LSTM(h) for h in model.hidden]
  # The tutorial's StackedCells RNN has the identity activation.
  return [plstm.RNN(h, activation=lambda z: z) for h in model.hidden]


def init_params(model, cells: list, key: jax.Array) -> dict:
  """Params {"embed" [V, D], "rnn": one per layer, "head" {"w", "b"}}."""
  k_embed, k_rnn, k_head = jax.random.split(key, 3)
  v = len(VOCAB)
  # Flax's nn.Embed initialiser.
  embed_init = jax.nn.initializers.variance_scaling(
    1.0, "fan_in", "normal", out_axis=0
  )
  return {
    "embed": embed_init(k_embed, (v, model.embed), jnp.float32),
    "rnn": plstm.init_stack(cells, k_rnn, model.embed),
    "head": {
      "w": jax.nn.initializers.lecun_normal()(
        k_head, (model.hidden[-1], v), jnp.float32
      ),
      "b": jnp.zeros((v,), jnp.float32),
    },
  }


def _logits(params: dict, h):
  return h @ params["head"]["w"] + params["head"]["b"]


def next_token_logits(
  model, cells: list, params: dict, tokens, key=None, *, training=False
):
  """Logits [B, T - 1, V] of tokens[:, 1:] given the tokens before them.

  In training each layer's input gets variational dropout at rate
  `model.dropout` (one mask per sentence, drawn from `key`)."""
  x = jnp.take(params["embed"], tokens[:, :-1], axis=0)
  _, h = plstm.scan(
    cells,
    params["rnn"],
    x,
    residual=model.residual,
    dropout=model.dropout,
    key=key,
    training=training,
  )
  return _logits(params, h)


def loss_fn(
  model, cells: list, params: dict, batch: dict, key, *, training: bool
):
  """The tutorial's summed masked NLL, and per-token metrics."""
  tokens, lengths = batch["tokens"], batch["lengths"]
  logits = next_token_logits(
    model, cells, params, tokens, key, training=training
  )
  targets = tokens[:, 1:]
  total = jnp.sum(plstm.losses.masked_loss(logits, targets, lengths - 1))
  mask = plstm.losses.window_mask(
    lengths - 1, jnp.zeros_like(lengths), targets.shape[1]
  )
  count = jnp.maximum(jnp.sum(mask), 1).astype(jnp.float32)
  hits = (jnp.argmax(logits, axis=-1) == targets) & mask
  # Whole-batch sums and per-token means when rows are split over devices.
  per_token = plstm.parallel.global_mean
  return plstm.parallel.global_sum(total), {
    "loss": per_token(total, count),
    "accuracy": per_token(jnp.sum(hits).astype(jnp.float32), count),
    "unigram_loss": per_token(jnp.sum(batch["unigram_nll"]), count),
  }


def generate(cells: list, params: dict, keys: list) -> list[str]:
  """One sentence from "the" per entry of `keys`: greedy where the entry is
  None, else sampled with that key; each runs until "." or the tutorial's
  200 steps."""

  @jax.jit
  def step(params, carry, token):
    x = params["embed"][token][None, None]
    carry, h = plstm.scan(cells, params["rnn"], x, carry=carry)
    return carry, _logits(params, h[0, 0])

  sentences = []
  for key in keys:
    carry = tuple(c.initial_carry(1) for c in cells)
    ids = [INDEX["the"]]
    for i in range(GREEDY_STEPS):
      carry, logits = step(params, carry, ids[-1])
      if key is None:
        ids.append(int(jnp.argmax(logits)))
      else:
        k = jax.random.fold_in(key, i)
        ids.append(int(jax.random.categorical(k, logits)))
      if ids[-1] == INDEX["."]:
        break
    sentences.append(decode(ids))
  return sentences


def plot(cells: list, params: dict, workdir) -> None:
  """`samples.txt` (and stdout): greedy and sampled sentences from "the"."""
  key = jax.random.key(SAMPLE_KEY)
  keys = [None] + [jax.random.fold_in(key, i) for i in range(3)]
  greedy, *sampled = generate(cells, params, keys)
  lines = [f"greedy:  {greedy}"] + [f"sampled: {s}" for s in sampled]
  text = "\n".join(lines) + "\n"
  print(text, end="")
  (Path(workdir) / "samples.txt").write_text(text)


def make_task(config) -> Task:
  """The tutorial's language model of `config`, trained with
  `config.optimizer` (`plstm.train.optimizers.default_config`)."""
  m, d = config.model, config.data
  cells = make_cells(m)
  if d.max_len < 2:
    raise ValueError(
      f"config.data.max_len must be at least 2, got {d.max_len}."
    )
  if not 1 <= d.batch_size <= d.train_size:
    raise ValueError(
      f"config.data.batch_size must be in [1, train_size = {d.train_size}], "
      f"got {d.batch_size}."
    )
  if d.eval_size < 1:
    raise ValueError(f"config.data.eval_size must be >= 1, got {d.eval_size}.")
  num_eval = -(-d.eval_size // d.batch_size)  # ceil

  def train_batch(key, step):
    """`batch_size` training sentences: all of them when that is
    `train_size` (the tutorial's full batch), else a random subset drawn
    with `numpy_rng(key, step)`."""
    tokens, lengths = train_set(d)
    if d.batch_size != d.train_size:
      rng = numpy_rng(key, step)
      rows = rng.choice(d.train_size, d.batch_size, replace=False)
      tokens, lengths = tokens[rows], lengths[rows]
    return _batch(_unigram(d.train_size, d.max_len), tokens, lengths)

  def eval_batches(key, epoch):
    """The held-out sentences of `key` (the same every epoch), in batches
    of `batch_size`."""
    del epoch
    tokens, lengths = draw_sentences(key, num_eval * d.batch_size, d.max_len)
    log_p = _unigram(d.train_size, d.max_len)
    return [
      _batch(log_p, t, n)
      for t, n in zip(
        np.split(tokens, num_eval), np.split(lengths, num_eval), strict=True
      )
    ]

  return Task(
    init=lambda key, _: init_params(m, cells, key),
    loss=functools.partial(loss_fn, m, cells),
    train_batch=train_batch,
    eval_batches=eval_batches,
    plot=functools.partial(plot, cells),
  )
