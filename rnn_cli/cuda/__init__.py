"""Optional CUDA target (numba-cuda): device kernels, a device-resident trainer and sampler.

Nothing here is imported unless `--device cuda|auto` asks for it, and importing this package does
not import `numba.cuda`: `backend.is_available()` does, when called. Layout:

    backend.py   the one import of numba-cuda (with NumPy compatibility aliases), is_available(),
                 the "no usable GPU" error with a hint, --device resolution, guard(), tuning
    kernels.py   @cuda.jit kernels for training (gather, embedding, dropout product, column sums,
                 softmax-xent, sums) and host wrappers with the CPU kernels' names
    blas.py      the matrix products: cuBLAS through ctypes, or numba's tiled kernel
    cells.py     the rnn / gru / lstm time steps, forward and backward (product + fused gates)
    optim.py     gradient clipping and the sgd / adagrad / rmsprop / adam updates
    graph.py     CUDA graphs: a training step captured once, replayed with one launch
    sampling.py  the sampling kernel for every cell (one block per chunk of tokens), CudaSampler
    network.py   DeviceParams (flat device buffer + named views) and CudaNetwork (one window)
    train.py     CudaTrainer: the Trainer with parameters, gradients, optimizer state on the device

Every model but the class softmax runs here (`backend.for_model` refuses that one). The commands
call `device = backend.resolve(args.device, ui.warn)` first (the one-line error for `cuda` without
a GPU; a notice and "cpu" for `auto`), then `backend.for_model`; train uses CudaTrainer, sample
CudaSampler, score and predict a `score.Scorer` over CudaNetworks (cli_query._scorer).
"""
