"""DreamBooth with LoRA: teach Stable Diffusion one subject from a few photos.

``train(config)`` fine-tunes small low-rank adapters (LoRA, with peft) inside the UNet of a
Stable Diffusion model on 4-8 photos of one subject, so that a prompt with a rare
identifier ("a photo of sks cat") draws that subject. Prior preservation keeps the class
("a photo of a cat") as it was: the base model first draws class images (cached on disk,
made once), and each step also trains on one of them with the plain class prompt.

One idea per module:

- ``config``: ``DreamBoothConfig``, every setting checked before any work;
- ``data``: the subject's photos and the class images;
- ``inputs``: photos and prompts encoded once; each step's batch and loss;
- ``loop``: ``train``, in stages, on accelerate (one process, or ``accelerate launch``);
- ``checkpoints``: the output folder, exact resume, the finished LoRA;
- ``validation``: the same-seed pictures drawn during training;
- ``plan``: the cost estimate printed before the first step;
- ``report``: ``DreamBoothResult``, ``loss_curve`` and ``validation_grid``;
- ``cli``: ``python -m helpers.dreambooth`` (also under ``accelerate launch``).

Using the LoRA afterwards (in a ``Generator`` or an ``Inpainter``) is ``helpers.lora``;
``load_lora``, ``set_lora_weight`` and ``unload_lora`` here are the same functions under
their earlier names. Importing this package is cheap: torch, diffusers, peft and
accelerate are imported inside the functions that need them.
"""

from helpers import compat
from helpers.dreambooth.checkpoints import saved_checkpoints
from helpers.dreambooth.config import DreamBoothConfig, default_subject
from helpers.dreambooth.data import (
    InstancePhotos,
    class_dir,
    class_images,
    collect_photos,
    instance_photos,
)
from helpers.dreambooth.loop import train
from helpers.dreambooth.report import DreamBoothResult, loss_curve, validation_grid
from helpers.dreambooth.validation import ValidationImage
from helpers.lora import ADAPTER, INFO_FILE, LORA_FILE
from helpers.lora import folder as lora_folder
from helpers.lora import load as load_lora
from helpers.lora import set_weight as set_lora_weight
from helpers.lora import unload as unload_lora

__all__ = [
    "ADAPTER", "INFO_FILE", "LORA_FILE", "DreamBoothConfig", "DreamBoothResult",
    "InstancePhotos", "ValidationImage", "saved_checkpoints", "class_dir", "class_images",
    "collect_photos", "default_subject", "instance_photos", "load_lora", "loss_curve",
    "lora_folder", "set_lora_weight", "train", "unload_lora", "validation_grid",
]

__getattr__ = compat.moved(__name__, {
    "upload_widget": "widgets.PhotoUpload(folder) (from helpers import widgets)",
    "main": "helpers.dreambooth.cli.main, or `python -m helpers.dreambooth`"})
