"""Names easyfsl's default_configs binds; calling any of them raises."""

from torchvision import _Unavailable

Compose = RandomResizedCrop = ColorJitter = RandomHorizontalFlip = ToTensor = Normalize = Resize = CenterCrop = _Unavailable
