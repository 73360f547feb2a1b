"""Optional CUDA target (numba-cuda): device kernels, a device-resident trainer and sampler.

Nothing here is imported unless `--device cuda|auto` asks for it, and importing this package does
not import `numba.cuda`: `backend.is_available()` does, when called. Layout:

    backend.py   is_available(), the "no usable GPU" error with a hint, --device resolution
    kernels.py   @cuda.jit kernels for training (gather, recurrence, matmul, softmax-xent, clip,
                 optimizer updates) and host wrappers with the CPU kernels' names
    sampling.py  the sampling kernel (one block per chunk of tokens) and CudaSampler
    network.py   DeviceParams (flat device buffer + named views) and CudaNetwork (one window)
    train.py     CudaTrainer: the Trainer with parameters, gradients and optimizer state on the device
"""
