"""The EMA pairs parameters and buffers by name."""

import torch
from torch import nn

from equinnp.train.ema import ExponentialMovingAverage


def test_ema_matches_buffers_by_name_not_position():
    module = nn.Linear(2, 2)
    module.register_buffer("first", torch.zeros(3))
    module.register_buffer("second", torch.zeros(5))
    ema = ExponentialMovingAverage(module, decay=0.5)
    # the live module now lists its buffers in another order (as a deep copy of some e3nn modules does)
    del module._buffers["first"]
    module.register_buffer("first", torch.ones(3))
    module.second.fill_(2.0)
    ema.update(module)
    assert torch.equal(ema.module.first, torch.ones(3)) and torch.equal(ema.module.second, torch.full((5,), 2.0))


def test_ema_averages_parameters():
    module = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.fill_(0.0)
    ema = ExponentialMovingAverage(module, decay=0.9)
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema.update(module)  # d_1 = min(0.9, 2/11)
    assert torch.allclose(ema.module.weight, torch.tensor([[1.0 - 2.0 / 11.0]]))
