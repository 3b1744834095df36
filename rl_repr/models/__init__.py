"""rl_repr.models: ResNet encoders and projection heads (Flax Linen).

    from rl_repr import models
    encoder = models.ResNet(depth=50, width_multiplier=2.0)   # h: [N, 4096]
    head = models.ProjectionHead(num_layers=3, output_dim=128)  # SimCLR v2
    h = encoder.apply(variables, images)                       # train=False: inference
"""
from rl_repr.models.heads import *  # noqa: F401,F403
from rl_repr.models.norm_choice import *  # noqa: F401,F403
from rl_repr.models.precision import *  # noqa: F401,F403
from rl_repr.models.resnet import *  # noqa: F401,F403
from rl_repr.models.cifar_resnet import *  # noqa: F401,F403
from rl_repr.models.mlp import *  # noqa: F401,F403
from rl_repr.models.torchvision_import import *  # noqa: F401,F403
from rl_repr.models import heads as _heads, norm_choice as _norm_choice, precision as _precision
from rl_repr.models import resnet as _resnet
from rl_repr.models import cifar_resnet as _cifar_resnet, mlp as _mlp, torchvision_import as _torchvision_import

__all__ = [*_resnet.__all__, *_heads.__all__, *_norm_choice.__all__, *_precision.__all__,
           *_cifar_resnet.__all__, *_mlp.__all__, *_torchvision_import.__all__]
