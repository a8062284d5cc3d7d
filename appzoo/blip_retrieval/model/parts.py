"""The names of BlipRetrieval's parts, one list per concept (official models/blip_retrieval.py attribute names).

Plain data (no torch): the model, the checkpoint loader, the HF converter and ZeRO-3 inference read them here.
"""
# Buffers of the momentum-distillation queues (kept in float32/int64 whatever the model's dtype).
QUEUE_BUFFERS = ("image_queue", "text_queue", "idx_queue", "ptr_queue")

# (online module, its momentum copy): the EMA pairs (official model_pairs).
MOMENTUM_PAIRS = (
    ("visual_encoder", "visual_encoder_m"),
    ("vision_proj", "vision_proj_m"),
    ("text_encoder", "text_encoder_m"),
    ("text_proj", "text_proj_m"),
)
ONLINE_PREFIXES = tuple(f"{online}." for online, _ in MOMENTUM_PAIRS)
MOMENTUM_PREFIXES = tuple(f"{momentum}." for _, momentum in MOMENTUM_PAIRS)

# The modules evaluation and inference run (never the momentum copies).
INFERENCE_MODULES = ("visual_encoder", "vision_proj", "text_encoder", "text_proj", "itm_head")
# Of those, the ones transformers' BlipForImageTextRetrieval names as we do (the ViT's names differ).
HF_SHARED_PREFIXES = tuple(f"{name}." for name in INFERENCE_MODULES if name != "visual_encoder")
