"""Two CPU devices and strict dtype promotion for every test."""

import jax

jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_numpy_dtype_promotion", "strict")
