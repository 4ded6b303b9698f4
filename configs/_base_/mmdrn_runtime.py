# mmdrn's runtime additions, listed after the codebase's own default_runtime
# (mmseg:: or mmpretrain::) in every mmdrn config, so that any tool that runs
# the config (mmdrn's, MMSegmentation's, mmpretrain's, mim's) gets them.
# Each is documented in docs/reliability.md; drop one with
# `custom_hooks = [...]` in a config of your own.
custom_hooks = [
    # mmengine 0.10.7 + torch >= 2.6: its own checkpoints load again
    # (weights-only allow-list), local files load weights-only with clear
    # errors, checkpoint files are written atomically. For the run only.
    dict(
        type='CheckpointCompatHook',
        mmengine_checkpoints=True,
        safe_loading=True,
        atomic_checkpoints=True,
    ),
    # stop at the first NaN/Inf loss, before it is checkpointed
    dict(type='NaNGuardHook'),
    # SIGTERM: finish the iteration, save, exit with status 75
    dict(type='PreemptionHook', signals=['SIGTERM']),
    # checkpoints carry the random state; --resume ends where an uninterrupted
    # run does, bit for bit
    dict(type='RNGStateHook'),
]
