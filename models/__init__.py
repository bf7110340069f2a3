"""Pure nn.Modules: the FSQ bottleneck and the Conv2d-FSQ network (no I/O, no training loop)."""

from edgekit.models.fsq import FSQ
from edgekit.models.network import Conv2dFSQNet, NetConfig

__all__ = ["FSQ", "Conv2dFSQNet", "NetConfig"]
