"""EMA of the momentum encoders: official `_momentum_update` math, ZeRO-3 aware, float32 when the live
weights are half precision (a 0.995 EMA computed in bf16 stops moving: 0.005 * delta rounds away)."""
import torch


def local_tensor(param):
    """The tensor this rank owns: the ZeRO-3 shard (`ds_tensor`) when partitioned, else the data."""
    shard = getattr(param, "ds_tensor", None)
    return shard if shard is not None else param.data


def refresh_persistent(params):
    """Copy the ZeRO-3 shards of *persistent* parameters (numel <= stage3_param_persistence_threshold) into
    their whole `.data`, in place. A collective: every rank calls it with the same parameters.

    DeepSpeed keeps such a parameter whole in `.data` and re-gathers it from its shards only after the
    optimizer step; the forward reads `.data`, so after an EMA of the shards the momentum encoders would run
    with the previous step's weights. The copy is in place: a parameter the root forward reads (e.g. a
    `.dtype`) is held active there and cannot be freed and re-gathered by DeepSpeed itself.
    """
    persistent = [p for p in params if getattr(p, "ds_persist", False)]
    if not persistent:
        return
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    groups = {}
    for p in persistent:
        if p.ds_status == ZeroParamStatus.AVAILABLE:  # otherwise the next fetch gathers the shards anyway
            groups.setdefault((p.ds_tensor.dtype, p.ds_process_group), []).append(p)
    for (_, group), stale in groups.items():
        shards = torch.cat([p.ds_tensor.view(-1) for p in stale])
        world = torch.distributed.get_world_size(group)
        gathered = shards.new_empty(world * shards.numel())
        torch.distributed.all_gather_into_tensor(gathered, shards, group=group)
        gathered, offset = gathered.view(world, -1), 0
        for p in stale:  # DeepSpeed's layout: rank r's shard of each parameter at r * shard size, padding last
            size = p.ds_tensor.numel()
            p.data.view(-1).copy_(gathered[:, offset:offset + size].reshape(-1)[: p.ds_numel])
            offset += size


def copy_params(pairs):
    """Official copy_params: momentum params start equal to the online ones and are frozen."""
    with torch.no_grad():
        for _, online, _, momentum in pairs:
            local_tensor(momentum).copy_(local_tensor(online))
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
        live_m, live_p = local_tensor(param_m), local_tensor(online)
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
