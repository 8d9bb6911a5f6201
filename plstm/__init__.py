"""plstm: recurrent networks that keep time, as pure JAX functions.

Cells are immutable objects holding hyperparameters; their params and carries
are explicit pytrees:

  cell = plstm.PhasedLSTM(110)
  params = cell.init(key, input_size=1)
  carry, h = plstm.scan(cell, params, (x, t), mask=mask)

Notation, used in every docstring: B batch (any leading shape for a single
step), T time, I input features, H hidden units.
"""

from plstm import dropout, losses, nn, parallel
from plstm.cell import merge, trainable
from plstm.deep_r import DeepRState, RedrawState, deep_r, redraw_delays
from plstm.lsnn import (
  ALIF,
  LIF,
  LSNNOutput,
  LSNNState,
  exp_convolve,
  firing_rate_loss,
  neuron_signs,
  spike_function,
  weight_sampler,
)
from plstm.lstm import LSTM, LSTMState
from plstm.phased_lstm import Phased, PhasedLSTM, time_gate
from plstm.recurrent import init_stack, scan
from plstm.rnn import RNN, GatedInput

__all__ = [
  "ALIF",
  "DeepRState",
  "LIF",
  "LSNNOutput",
  "LSNNState",
  "LSTM",
  "RNN",
  "RedrawState",
  "GatedInput",
  "LSTMState",
  "Phased",
  "PhasedLSTM",
  "deep_r",
  "dropout",
  "exp_convolve",
  "firing_rate_loss",
  "init_stack",
  "losses",
  "neuron_signs",
  "merge",
  "nn",
  "parallel",
  "redraw_delays",
  "scan",
  "spike_function",
  "time_gate",
  "trainable",
  "weight_sampler",
]
