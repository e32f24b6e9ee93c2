"""The tiny transformers models that read text and photos, built in code (see ``helpers.tiny``).

One builder per family: CLIP, ALIGN, OWL-ViT, OWLv2, Grounding DINO, CLIPSeg, SAM 3 and SAM 2's
video tracker. Each
saves a model with random weights and its processor, with an offline tokenizer from
``helpers.vocab``, into a folder that ``helpers.models`` loads as it loads the real weights.
``helpers.tiny`` decides where and when they are built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.vocab import bert_tokenizer, clip_tokenizer


def clip_text_config(tokenizer: Any, **overrides: Any) -> dict[str, Any]:
    """The text half of a tiny CLIP-like config, matched to ``tokenizer``."""
    config = dict(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.update(overrides)
    return config


def vision_config(image_size: int, patch_size: int) -> dict[str, Any]:
    """The vision half of a tiny ViT-like config: two layers of 32 at ``image_size`` px."""
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                image_size=image_size, patch_size=patch_size)


def build_clip(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = clip_tokenizer()
    config = CLIPConfig(text_config=clip_text_config(tokenizer),
                        vision_config=vision_config(32, 8), projection_dim=32)
    CLIPModel(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32},
                                         crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def build_align(folder: Path) -> None:
    """A tiny ``AlignModel``: a two-stage EfficientNet (32 px in, 32 channels out, which is
    also the text projection's size, as 640 is in align-base) and a two-layer BERT reading
    at most 64 tokens, with the offline BERT tokenizer; the processor is set up as
    align-base's (a plain resize, no crop, pixels rescaled to [-1, 1])."""
    from transformers import AlignConfig, AlignModel, AlignProcessor, EfficientNetImageProcessor

    tokenizer = bert_tokenizer()
    tokenizer.model_max_length = 64
    # BERT's usual 0.02 init leaves the [CLS] state almost the same for every text; 0.2
    # gives texts as different as the tiny CLIP's
    text = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                pad_token_id=tokenizer.pad_token_id, initializer_range=0.2)
    vision = dict(image_size=32, width_coefficient=1.0, depth_coefficient=1.0,
                  kernel_sizes=[3, 3], in_channels=[32, 16], out_channels=[16, 32],
                  strides=[2, 2], num_block_repeats=[1, 1], expand_ratios=[1, 2], hidden_dim=64)
    AlignModel(AlignConfig(text_config=text, vision_config=vision, projection_dim=32,
                           temperature_init_value=0.07)).save_pretrained(folder)
    size = {"height": 32, "width": 32}
    image_processor = EfficientNetImageProcessor(
        size=size, crop_size=size, do_center_crop=False, rescale_factor=1 / 127.5,
        rescale_offset=True, do_normalize=False, include_top=False)
    AlignProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def build_owlvit(folder: Path) -> None:
    from transformers import (
        OwlViTConfig,
        OwlViTForObjectDetection,
        OwlViTImageProcessor,
        OwlViTProcessor,
    )

    tokenizer = clip_tokenizer(model_max_length=16)
    config = OwlViTConfig(text_config=clip_text_config(tokenizer),
                          vision_config=vision_config(64, 16), projection_dim=32)
    OwlViTForObjectDetection(config).save_pretrained(folder)
    size = {"height": 64, "width": 64}
    image_processor = OwlViTImageProcessor(size=size, crop_size=size)
    OwlViTProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def build_owlv2(folder: Path) -> None:
    from transformers import (
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    tokenizer = clip_tokenizer(model_max_length=16)
    config = Owlv2Config(text_config=clip_text_config(tokenizer),
                         vision_config=vision_config(64, 16), projection_dim=32)
    Owlv2ForObjectDetection(config).save_pretrained(folder)
    image_processor = Owlv2ImageProcessor(size={"height": 64, "width": 64})
    Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def build_grounding_dino(folder: Path) -> None:
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        ResNetConfig,
    )

    tokenizer = bert_tokenizer()
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 32, 32], depths=[1, 1, 1, 1],
                            layer_type="basic", out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=256,
                      pad_token_id=tokenizer.pad_token_id)
    config = GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, num_queries=20,
        encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_feature_levels=4,
        encoder_n_points=2, decoder_n_points=2, max_text_len=256,
    )
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    # 128 px: the last of 4 feature levels of a square photo must still be 2x2 for GroupNorm
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 128, "longest_edge": 192})
    GroundingDinoProcessor(image_processor=image_processor,
                           tokenizer=tokenizer).save_pretrained(folder)


def build_clipseg(folder: Path) -> None:
    """A tiny ``CLIPSegForImageSegmentation`` laid out as the real rd64-refined one: the
    processor squashes a photo to a square (64 px here, 352 there) bigger than the vision
    config's (32; 224 there), so position embeddings are interpolated in both; taps on
    the vision layers feed a decoder with the refined ("complex") transposed convolution."""
    import torch
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        ViTImageProcessor,
    )

    tokenizer = clip_tokenizer()
    config = CLIPSegConfig(
        text_config=clip_text_config(tokenizer),
        vision_config={**vision_config(32, 16), "num_hidden_layers": 3}, projection_dim=32,
        extract_layers=[0, 1], reduce_dim=16, decoder_num_attention_heads=2,
        decoder_intermediate_size=32, use_complex_transposed_convolution=True,
    )
    model = CLIPSegForImageSegmentation(config)
    # Random logits reach +-300, where every probability rounds to exactly 0 or 1 and no
    # threshold changes a mask; the last layer scaled down brings them to about +-10.
    with torch.no_grad():
        last = model.decoder.transposed_convolution[-1]
        last.weight.mul_(0.03)
        last.bias.mul_(0.03)
    model.save_pretrained(folder)
    image_processor = ViTImageProcessor(size={"height": 64, "width": 64},
                                        image_mean=[0.485, 0.456, 0.406],
                                        image_std=[0.229, 0.224, 0.225])
    CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def build_sam3(folder: Path) -> None:
    """A tiny ``Sam3Model`` (SAM 3's detector: a ViT with an FPN, a CLIP text encoder, a box
    ("exemplar") encoder, a DETR encoder-decoder with 20 queries and a mask decoder). The
    processor squashes a photo to 112x112 (1008x1008 in the real one): 8x8 patches of 14
    pixels, FPN maps of 32, 16 and 8 cells; texts are padded to 32 tokens, as released."""
    from transformers import (
        Sam3Config,
        Sam3ImageProcessor,
        Sam3Model,
        Sam3Processor,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    tokenizer = clip_tokenizer(model_max_length=32)
    small = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)
    backbone = Sam3ViTConfig(**small, num_hidden_layers=2, image_size=112, patch_size=14,
                             window_size=4, global_attn_indexes=[1], pretrain_image_size=56)
    config = Sam3Config(
        vision_config=Sam3VisionConfig(backbone_config=backbone, fpn_hidden_size=32,
                                       backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]]),
        text_config=clip_text_config(tokenizer, projection_dim=32),
        geometry_encoder_config=dict(**small, num_layers=1),
        detr_encoder_config=dict(**small, num_layers=1),
        detr_decoder_config=dict(**small, num_layers=1, num_queries=20),
        mask_decoder_config=dict(hidden_size=32, num_attention_heads=2),
    )
    Sam3Model(config).save_pretrained(folder)
    image_processor = Sam3ImageProcessor(size={"height": 112, "width": 112},
                                         mask_size={"height": 32, "width": 32})
    Sam3Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def build_sam2_video(folder: Path) -> None:
    """A tiny ``Sam2VideoModel`` (1.1M parameters): a four-stage Hiera of 16 to 128 channels
    on 128x128 frames (1024 in the released ones), a 128-wide FPN, mask decoder and memory
    (transformers asks for a width that is a multiple of 64 and more than 64, and 64 memory
    channels), 7 memory frames as released. Random weights give an object score of random
    sign, and a negative one blanks every mask; its bias is set high so the tiny model always
    "sees" the object and its masks move with the prompts."""
    import torch
    from transformers import (
        Sam2HieraDetConfig,
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
        Sam2VisionConfig,
    )

    s = 128
    backbone = Sam2HieraDetConfig(
        hidden_size=16, num_attention_heads=1, image_size=[s, s], blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128], num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 4, 2], global_attention_blocks=[3],
        window_positional_embedding_background_size=[4, 4])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[128, 64, 32, 16],
                              backbone_feature_sizes=[[s // 4] * 2, [s // 8] * 2, [s // 16] * 2],
                              fpn_hidden_size=128)
    config = Sam2VideoConfig(
        vision_config=vision, image_size=s, initializer_range=0.1,
        prompt_encoder_config=dict(hidden_size=128, image_size=s, patch_size=16,
                                   mask_input_channels=8),
        mask_decoder_config=dict(hidden_size=128, mlp_dim=64, num_hidden_layers=1,
                                 num_attention_heads=2, iou_head_hidden_dim=32, iou_head_depth=2),
        num_maskmem=7, max_object_pointers_in_encoder=4, memory_attention_hidden_size=128,
        memory_attention_num_layers=1, memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[s // 16, s // 16], memory_encoder_hidden_size=128,
        memory_encoder_output_channels=64, mask_downsampler_embed_dim=128,
        memory_fuser_num_layers=1, memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=64)
    model = Sam2VideoModel(config).eval()
    with torch.no_grad():
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(10.0)
    model.save_pretrained(folder)
    image_processor = Sam2ImageProcessor(size={"height": s, "width": s},
                                         mask_size={"height": s // 4, "width": s // 4})
    Sam2VideoProcessor(image_processor=image_processor,
                       video_processor=Sam2VideoVideoProcessor(size={"height": s, "width": s})
                       ).save_pretrained(folder)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "clip": build_clip,
    "align": build_align,
    "owlvit": build_owlvit,
    "owlv2": build_owlv2,
    "grounding-dino": build_grounding_dino,
    "clipseg": build_clipseg,
    "sam3": build_sam3,
    "sam2-video": build_sam2_video,
}
"""Family -> builder, for ``helpers.tiny``."""
