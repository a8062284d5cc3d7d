"""EMA of the momentum encoders: official `_momentum_update` math, ZeRO-3 aware, float32 when the live
weights are half precision (a 0.995 EMA computed in bf16 stops moving: 0.005 * delta rounds away).

Under ZeRO-3 each rank updates its own shards; persistent parameters are then refreshed from them
(easyretrieval.engine.deepspeed_compat, where every DeepSpeed internal lives)."""
import torch

from easyretrieval.engine.deepspeed_compat import local_shard, refresh_persistent


def copy_params(pairs):
    """Official copy_params: momentum params start equal to the online ones and are frozen."""
    with torch.no_grad():
        for _, online, _, momentum in pairs:
            local_shard(momentum).copy_(local_shard(online))
            momentum.requires_grad = False
        refresh_persistent([momentum for _, _, _, momentum in pairs])


@torch.no_grad()
def momentum_update(pairs, momentum, shadow):
    """m <- m * momentum + p * (1 - momentum) for every (name, p, name_m, m) in `pairs`.

    float32 momentum params are updated in place with the official roundings. Others are updated in the
    float32 `shadow` dict (name_m -> tensor, created from the live value on first use) and copied back.
    """
    fp32_m, fp32_p = [], []
    for _, online, name_m, param_m in pairs:
        live_m, live_p = local_shard(param_m), local_shard(online)
        if live_m.numel() == 0:
            continue
        if live_m.dtype == torch.float32:
            fp32_m.append(live_m)
            fp32_p.append(live_p.float())
            continue
        state = shadow.get(name_m)
        if state is None or state.shape != live_m.shape:
            state = live_m.float().clone()
            shadow[name_m] = state
        state.mul_(momentum).add_(live_p.float() * (1.0 - momentum))
        live_m.copy_(state)
    if fp32_m:
        torch._foreach_mul_(fp32_m, momentum)
        torch._foreach_add_(fp32_m, torch._foreach_mul(fp32_p, 1.0 - momentum))
    refresh_persistent([param_m for _, _, _, param_m in pairs])
