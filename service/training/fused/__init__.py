"""Fused training: same-shaped jobs trained as one vectorised run (DESIGN.md, "Fused execution").

`grouping` says which normalised specs may train together; `stack` runs their networks as one
stack of batched operators; `optimizers` steps every member with its own hyper-parameters;
`members` sets each member up exactly as a solo run would and writes its checkpoints in the
solo layout; `loop.train_fused` trains them, reporting to each member's own hooks.
"""
