"""The baseline the benchmarks compare against: the PyTorch tutorial's per-sample data path."""

import torch


class TutorialFashionMNIST(torch.utils.data.Dataset):
    """What ``torchvision.datasets.FashionMNIST.__getitem__`` does: tensor row -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.data, self.targets, self.transform = images[:, 0], labels, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.data[i].numpy(), mode="L")
        return self.transform(img), int(self.targets[i])
