"""Optional CUDA target (numba-cuda): device kernels, a device-resident trainer and sampler.

Nothing here is imported unless `--device cuda|auto` asks for it, and importing this package does
not import `numba.cuda`: `backend.is_available()` does, when called. Layout:

    backend.py   is_available(), the "no usable GPU" error with a hint, --device resolution
    kernels.py   @cuda.jit kernels for training (gather, recurrence, matmul, softmax-xent, sums)
                 and host wrappers with the CPU kernels' names
    optim.py     gradient clipping and the sgd / adagrad / rmsprop / adam updates
    sampling.py  the sampling kernel (one block per chunk of tokens) and CudaSampler
    network.py   DeviceParams (flat device buffer + named views) and CudaNetwork (one window)
    train.py     CudaTrainer: the Trainer with parameters, gradients, optimizer state on the device

Hooking a command in (train and sample do; score and predict, from another branch, would):
`device = backend.resolve(args.device, ui.warn)` first (raises the one-line error for `cuda`
without a GPU, warns and returns "cpu" for `auto`), then for "cuda":
- score: `network.sequence_nll(CudaNetwork(DeviceParams.from_host(model.params), 1, window), ...)`
  works unchanged (CudaNetwork has the attributes sequence_nll uses; tested in test_cuda.py);
- predict (top-k next token): the same network's `forward(x)` then `logits.copy_to_host()`.
"""
