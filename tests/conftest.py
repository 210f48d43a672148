"""Suite-wide settings: one intra-op thread.

The tests use tiny models, where OpenMP threads cost more than they give; on a loaded 2-core
machine two spinning threads per process made some tests hundreds of times slower.
"""

import torch

torch.set_num_threads(1)
