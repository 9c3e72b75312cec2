"""ImageFolder, the base class of easyfsl's SupportSetFolder; instantiating it raises."""

from torchvision import _Unavailable


class ImageFolder(_Unavailable):
    pass
