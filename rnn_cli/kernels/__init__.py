"""Compiled kernels (every `@njit` of rnn-cli). No I/O, no rich, arrays and scalars only.

Shape letters, fixed project-wide: B batch, T time steps, V vocabulary, H hidden units, L layers,
G gates per cell (1 for the seed's RNN), R = T*B rows of a window flattened.
"""
