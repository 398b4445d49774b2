"""LLaMA-style decoder, one class for TriLM (ternary linears) and FloatLM (plain linears).

    h = embed(tokens)                                    # [B, T, D]
    for each block:                                      # lax.scan over stacked layers
        h = h + Wo @ attn(rope(Wq @ rms(h)), rope(Wk @ rms(h)), Wv @ rms(h))
        h = h + Wdown @ (silu(Wgate @ rms(h)) * (Wup @ rms(h)))
    logits = head(rms(h))                                # [B, T, V], float32

Every matrix of a block is a latent float32 weight; with ``linear='ternary'`` the forward pass
uses ``ternarize(W)`` (trilm_jax/model/ternary.py), with ``'float'`` it uses W as is.
Embeddings, norms and the head are never ternary (Spectra, Sec. 3). Parameters carry logical
axis names (``vocab``, ``embed``, ``heads``, ``kv``, ``mlp``, ``norm``, ``layers``) that
trilm_jax/sharding.py maps to mesh axes.

Blocks are created with ``nnx.vmap`` (parameters stacked on a leading ``layers`` axis) and run
with ``lax.scan``: compile time does not grow with depth. The KV cache is an explicit array pair
``[layers, batch, max_len, kv_heads, head_dim]`` threaded through the scan. Decoding instead runs
the layers unrolled from per-layer copies of their parameters (``layers=``, a KV cache of one
array a layer): a scan step copies its layer's slice of every weight, which costs a single-token
matmul more than the matmul itself. Those per-layer copies can fuse q, k, v into one ``qkv``
linear and gate, up into one ``gate_up`` (``split_layers(fuse=True)``, frozen or packed weights
only): a decode step then launches 4 matmuls a block instead of 7.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trilm_jax.config import ModelConfig
from trilm_jax.model.ternary import ternarize
from trilm_jax.sharding import constrain


class KVCache(NamedTuple):
    key: jax.Array | list  # [layers, batch, max_len, kv_heads, head_dim], or a list a layer
    value: jax.Array | list


def _param(rngs: nnx.Rngs, shape: tuple[int, ...], names: tuple[str, ...], std: float) -> nnx.Param:
    value = std * jax.random.normal(rngs.params(), shape, jnp.float32)
    return nnx.Param(value, out_sharding=names, eager_sharding=False)


def _per_column(gamma: jax.Array, n: int) -> jax.Array:
    """Gammas per block of output columns ``[..., G]`` as one a column ``[..., N]``."""
    groups = gamma.shape[-1]
    return jnp.broadcast_to(gamma[..., None], (*gamma.shape, n // groups)).reshape(
        *gamma.shape[:-1], n
    )


class PackedTrits(nnx.Variable):
    """Packed ternary weights (uint8 ``[R, N]``, kernels_pallas/layouts.py) or their gammas, held
    by a :class:`Linear` serving from packed weights (``Linear.use_packed``)."""


class Linear(nnx.Module):
    """``y = x @ W`` with a float32 latent ``W`` [in, out]; ternary or float per the config.

    For inference a linear can instead hold its trits packed (``use_packed``): it then multiplies
    with ``kernels_pallas.ternary_matmul`` (bf16 activations, the Pallas kernels on a GPU) and
    keeps no float weight.
    """

    def __init__(
        self, d_in: int, d_out: int, names: tuple[str, str], config: ModelConfig, rngs: nnx.Rngs
    ):
        self.kernel = _param(rngs, (d_in, d_out), names, config.init_std)
        self.d_in = d_in  # K: packed 1.6-bit bytes alone do not give it (rows are padded)
        self.ternary = config.linear == "ternary"
        self.eps = config.ternary_eps
        self.n_scale_shards = config.ternary_scale_shards
        # Column-parallel matrices (output axis sharded over 'tensor') scale per output shard,
        # row-parallel ones (input axis sharded) per input shard.
        self.shard_axis = -1 if names[1] in ("heads", "kv", "mlp") else -2
        self.packed_layout: str | None = None
        self.packed_t: PackedTrits | None = nnx.data(None)

    def use_packed(self, packed: jax.Array, gamma: jax.Array, layout: str) -> None:
        """Hold ``packed`` trits (uint8 ``[R, N]``, or ``[L, R, N]`` in stacked blocks) and
        ``gamma`` (``[G]`` or ``[L, G]``: one per shard of ``shard_axis``) instead of the float
        weight; the forward pass then computes ``x @ (gamma * T)`` from the packed bytes.
        Gammas per output shard are kept expanded to one a column, the form the kernels read,
        so that decoding does not expand them again at every token (a kernel a linear)."""
        self.packed = PackedTrits(packed)
        if gamma.shape[-1] > 1 and self.shard_axis == -1:
            gamma = _per_column(gamma, packed.shape[-1])
        self.gamma = PackedTrits(gamma)
        self.packed_layout = layout
        self.packed_t = nnx.data(None)
        self.kernel = None
        self.ternary = False

    def add_transposed(self) -> None:
        """Also hold the packed bytes transposed (``[N, R]``, or ``[L, N, R]``): on a Hopper GPU
        ``ternary_matmul`` then takes the Mosaic kernel where it is the faster one (M = 17 to
        128, the largest layers at every M), at the price of a second copy of the packed bytes
        (a quarter of bf16's instead of an eighth at 2 bits)."""
        if self.packed_layout is None:
            raise ValueError("add_transposed: this linear holds no packed weights (use_packed)")
        self.packed_t = PackedTrits(jnp.swapaxes(self.packed[...], -1, -2).copy())

    @staticmethod
    def concatenate(parts: Sequence[Linear]) -> Linear | None:
        """One linear computing ``concat([p(x) for p in parts], -1)``: their weights side by side
        on the output axis, or None where that is not the same function. Parts must share their
        input size and all hold either float weights that no longer re-quantize (frozen, or a
        FloatLM's) or packed trits of one layout with gammas per output column block; the
        fused linear holds one gamma a column (exact: the kernels scale output columns).
        Stacked parts (a leading layers axis) fuse layer by layer."""
        first = parts[0]
        fused = nnx.clone(first)
        if all(p.packed_layout is None and not p.ternary for p in parts):
            fused.kernel = nnx.Param(jnp.concatenate([p.kernel[...] for p in parts], axis=-1))
            return fused
        layout = first.packed_layout
        if layout is None or any(p.packed_layout != layout for p in parts):
            return None
        gammas = [p.gamma[...] for p in parts]
        if any(g.shape[-1] > 1 and p.shard_axis != -1 for g, p in zip(gammas, parts, strict=True)):
            return None  # gammas per input shard scale x, which the parts do not share
        gamma = jnp.concatenate(
            [_per_column(g, p.packed.shape[-1]) for g, p in zip(gammas, parts, strict=True)],
            axis=-1,
        )
        packed = jnp.concatenate([p.packed[...] for p in parts], axis=-1)
        fused.use_packed(packed, gamma, layout)
        fused.shard_axis = -1
        if all(p.packed_t is not None for p in parts):
            fused.add_transposed()
        return fused

    def input_shard_gammas(self) -> jax.Array | None:
        """Packed with one gamma per input shard (row-parallel, ``[G]``, G > 1): those gammas,
        else None."""
        if self.packed_layout is None or self.shard_axis != -2:
            return None
        gamma = self.gamma[...]
        return gamma if gamma.ndim == 1 and gamma.shape[0] > 1 else None

    def fold_input_gammas_into(self, producer: Linear, columns: slice, column_shard) -> bool:
        """Move this linear's per-input-shard gammas onto ``producer``'s output ``columns`` (the
        ones that become this linear's input, elementwise: ``column_shard[c]`` is the input
        shard that column c feeds), leaving this linear one gamma of 1. Exact: the producer's
        kernel scales its output columns, and ``x_s @ (g_s T_s) = (g_s x_s) @ T_s``. False (and
        nothing moved) unless this linear has such gammas and ``producer`` is one layer's
        packed linear."""
        gammas = self.input_shard_gammas()
        if gammas is None or producer.packed_layout is None or producer.gamma[...].ndim != 1:
            return False
        n = producer.packed[...].shape[-1]
        factor = jnp.ones(n, jnp.float32).at[columns].set(gammas[column_shard])
        producer.gamma.set_value(_per_column(producer.gamma[...], n) * factor)
        self.gamma.set_value(jnp.ones((1,), jnp.float32))
        return True

    def effective_weight(self) -> jax.Array:
        """The weight the forward pass multiplies by: gamma * trits (TriLM) or W (FloatLM)."""
        w = self.kernel[...]
        if self.ternary:
            return ternarize(w, self.eps, self.n_scale_shards, self.shard_axis)
        return w

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.packed_layout is None:
            return jnp.dot(x, self.effective_weight().astype(x.dtype))
        from kernels_pallas import ternary_matmul

        packed, gamma = self.packed[...], self.gamma[...]
        rows = x.reshape(-1, x.shape[-1])
        if gamma.shape[-1] > 1 and self.shard_axis == -2:
            # one gamma per input shard (row-parallel): the kernels scale output columns only,
            # so scale x's columns instead (one more bf16 rounding of x)
            (m, k), groups = rows.shape, gamma.shape[-1]
            shards = rows.astype(jnp.float32).reshape(m, groups, k // groups)
            rows = (shards * gamma[:, None]).reshape(m, k)  # fuses with x's producer
            gamma = jnp.ones((), jnp.float32)
        elif gamma.shape == (1,):
            gamma = gamma[0]
        packed_t = None if self.packed_t is None else self.packed_t[...]
        y = ternary_matmul(
            rows.astype(jnp.bfloat16), packed, gamma, self.packed_layout, packed_t=packed_t
        )
        return y.reshape(*x.shape[:-1], packed.shape[-1]).astype(x.dtype)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float):
        self.scale = nnx.Param(
            jnp.ones((dim,), jnp.float32), out_sharding=("norm",), eager_sharding=False
        )
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (normed * self.scale[...]).astype(x.dtype)


def rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
    """Rotary embedding, rotate-half convention (as Hugging Face Llama), x: [B, T, H, Dh]."""
    half = x.shape[-1] // 2
    inv_freq = 1.0 / (theta ** (jnp.arange(half, dtype=jnp.float32) / half))
    angles = positions[..., None].astype(jnp.float32) * inv_freq  # [B, T, half]
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x.dtype)


class Attention(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d, hd = config.d_model, config.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, hd
        self.theta = config.rope_theta
        self.q = Linear(d, config.n_heads * hd, ("embed", "heads"), config, rngs)
        self.k = Linear(d, config.n_kv_heads * hd, ("embed", "kv"), config, rngs)
        self.v = Linear(d, config.n_kv_heads * hd, ("embed", "kv"), config, rngs)
        self.o = Linear(config.n_heads * hd, d, ("heads", "embed"), config, rngs)
        self.qkv: Linear | None = nnx.data(None)  # q, k, v side by side (fuse_projections)

    def fuse_projections(self) -> bool:
        """Replace q, k, v by one linear ``qkv`` (same function, one matmul), and move o's
        gammas per input shard onto v's columns; False where :meth:`Linear.concatenate`
        cannot."""
        fused = Linear.concatenate([self.q, self.k, self.v])
        if fused is None:
            return False
        self.qkv, self.q, self.k, self.v = fused, None, None, None
        self._fold_o_gammas_into_v()
        return True

    def _fold_o_gammas_into_v(self) -> None:
        """o's gammas per input shard (groups of heads) scale v's columns instead: attention is
        linear in v head by head, so the same function without a scaling kernel before o. Not
        where one kv head serves query heads of two shards."""
        gammas = self.o.input_shard_gammas()
        if gammas is None:
            return
        hd, rep = self.head_dim, self.n_heads // self.n_kv_heads
        shard_width = self.n_heads * hd // gammas.shape[0]
        # o's input column h * hd + d holds head h; v's column kv * hd + d feeds heads
        # kv * rep ... kv * rep + rep - 1
        shards = np.arange(self.n_heads * hd).reshape(self.n_kv_heads, rep, hd) // shard_width
        if (shards != shards[:, :1]).any():
            return
        n_q = self.n_heads * hd
        v_columns = slice(n_q + self.n_kv_heads * hd, n_q + 2 * self.n_kv_heads * hd)
        self.o.fold_input_gammas_into(self.qkv, v_columns, shards[:, 0].reshape(-1))

    def __call__(
        self,
        x: jax.Array,
        positions: jax.Array,
        implementation: str | None,
        cache: tuple[jax.Array, jax.Array] | None = None,
        cache_index: jax.Array | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
        b, t, _ = x.shape
        if self.qkv is not None:
            n_q, n_kv = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
            q, k, v = jnp.split(self.qkv(x), (n_q, n_q + n_kv), axis=-1)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        q = rope(q.reshape(b, t, self.n_heads, self.head_dim), positions, self.theta)
        k = rope(k.reshape(b, t, self.n_kv_heads, self.head_dim), positions, self.theta)
        v = v.reshape(b, t, self.n_kv_heads, self.head_dim)
        if cache is None:
            out = jax.nn.dot_product_attention(
                q, k, v, is_causal=True, implementation=implementation
            )
        else:
            # Write this chunk at cache_index, then attend to every cached key at or before each
            # query's position.
            k_cache = jax.lax.dynamic_update_slice_in_dim(
                cache[0], k.astype(cache[0].dtype), cache_index, axis=1
            )
            v_cache = jax.lax.dynamic_update_slice_in_dim(
                cache[1], v.astype(cache[1].dtype), cache_index, axis=1
            )
            key_positions = jnp.arange(k_cache.shape[1])
            mask = key_positions[None, None, None, :] <= positions[:, None, :, None]
            out = jax.nn.dot_product_attention(
                q, k_cache.astype(q.dtype), v_cache.astype(q.dtype), mask=mask, implementation="xla"
            )
            cache = (k_cache, v_cache)
        return self.o(out.reshape(b, t, self.n_heads * self.head_dim)), cache


class MLP(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d, f = config.d_model, config.d_ff
        self.gate = Linear(d, f, ("embed", "mlp"), config, rngs)
        self.up = Linear(d, f, ("embed", "mlp"), config, rngs)
        self.down = Linear(f, d, ("mlp", "embed"), config, rngs)
        self.gate_up: Linear | None = nnx.data(None)  # gate, up side by side (fuse_projections)

    def fuse_projections(self) -> bool:
        """Replace gate and up by one linear ``gate_up``, and move down's gammas per input shard
        onto up's columns; False where that cannot be done."""
        fused = Linear.concatenate([self.gate, self.up])
        if fused is None:
            return False
        self.gate_up, self.gate, self.up = fused, None, None
        # down's gammas per input shard scale up's columns instead (silu(g) * u is linear in u)
        gammas = self.down.input_shard_gammas()
        if gammas is not None and fused.packed_layout is not None:
            f = fused.packed[...].shape[-1] // 2  # d_ff: up is the second half
            shard = np.arange(f) // (f // gammas.shape[0])
            self.down.fold_input_gammas_into(fused, slice(f, 2 * f), shard)
        return True

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.gate_up is not None:
            gate, up = jnp.split(self.gate_up(x), 2, axis=-1)
        else:
            gate, up = self.gate(x), self.up(x)
        return self.down(jax.nn.silu(gate) * up)


class Block(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config, rngs)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = MLP(config, rngs)

    def __call__(self, x, positions, implementation, cache=None, cache_index=None):
        attn_out, cache = self.attn(
            self.attn_norm(x), positions, implementation, cache, cache_index
        )
        x = x + attn_out
        return x + self.mlp(self.mlp_norm(x)), cache


_REMAT_POLICIES = {
    "none": None,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "full": jax.checkpoint_policies.nothing_saveable,
}


class Transformer(nnx.Module):
    """The TriLM / FloatLM decoder."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.config = config
        self.embed = nnx.Param(
            config.init_std * jax.random.normal(rngs.params(), (config.vocab_size, config.d_model)),
            out_sharding=("vocab", "embed"),
            eager_sharding=False,
        )

        @nnx.split_rngs(splits=config.n_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def make_blocks(rngs: nnx.Rngs) -> Block:
            return Block(config, rngs)

        self.blocks = make_blocks(rngs)
        self.final_norm = RMSNorm(config.d_model, config.norm_eps)
        if not config.tie_embeddings:
            self.head = _param(
                rngs, (config.d_model, config.vocab_size), ("embed", "vocab"), config.init_std
            )

    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array | None = None,
        *,
        compute_dtype: jnp.dtype = jnp.float32,
        attention: str | None = None,
        remat: str = "none",
        cache: KVCache | None = None,
        cache_index: jax.Array | int = 0,
        layers: Sequence[Block] | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        """tokens [B, T] int -> (logits [B, T, V] float32, updated cache or None).

        ``layers``: one block a layer, each holding its own copy of its parameters
        (:meth:`split_layers`, then ``nnx.merge`` of each state), run in an unrolled loop
        instead of the scan over the stacked ``self.blocks`` (whose arrays are then not read);
        ``cache`` then holds lists of per-layer arrays. Decoding uses it: each step of a scan
        slices the stacked weights into a copy, which made a single-token matmul 1.8x (2-bit
        packed) to 2.8x (bf16) slower on an H100 (docs/benchmarks.md, "Decoding end to end")."""
        b, t = tokens.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t) + cache_index, (b, t))
        x = jnp.take(self.embed[...], tokens, axis=0).astype(compute_dtype)  # [B, T, D]
        x = constrain(x, ("batch", "length", None))
        graphdef, block_state = nnx.split(self.blocks)
        if layers is not None:
            keys, values = [], []
            for i, block in enumerate(layers):
                layer_cache = None if cache is None else (cache.key[i], cache.value[i])
                x, layer_cache = block(x, positions, attention, layer_cache, cache_index)
                if layer_cache is not None:
                    keys.append(layer_cache[0])
                    values.append(layer_cache[1])
            return self._logits(x), (None if cache is None else KVCache(keys, values))

        def body(h, layer):
            state, layer_cache = layer
            block = nnx.merge(graphdef, state)
            h, new_cache = block(h, positions, attention, layer_cache, cache_index)
            return constrain(h, ("batch", "length", None)), new_cache

        if _REMAT_POLICIES.get(remat) is not None:
            body = jax.checkpoint(body, policy=_REMAT_POLICIES[remat], prevent_cse=False)
        layer_caches = None if cache is None else (cache.key, cache.value)
        x, new_caches = jax.lax.scan(body, x, (block_state, layer_caches))
        return self._logits(x), (None if cache is None else KVCache(*new_caches))

    def _logits(self, x: jax.Array) -> jax.Array:
        x = self.final_norm(x)
        head = self.embed[...].T if self.config.tie_embeddings else self.head[...]
        logits = jnp.dot(x, head.astype(x.dtype), preferred_element_type=jnp.float32)
        return constrain(logits, ("batch", "length", "vocab"))

    def split_layers(
        self, fuse: bool = False, transposed: bool | Callable[[Linear], bool] = False
    ) -> tuple[nnx.GraphDef, list[nnx.State]]:
        """The blocks as one graph definition and one ``nnx.State`` a layer, each array its own
        buffer; ``nnx.merge(graphdef, state)`` gives a layer's block for ``__call__(layers=)``.

        ``fuse``: each layer's q, k, v become one linear, and gate, up another, where their
        weights allow (:meth:`Linear.concatenate`: frozen or packed, not latent ternary). The
        fusion happens on the per-layer copies, so it costs no memory beyond them.
        ``transposed``: each packed linear of the copies also holds its bytes transposed
        (:meth:`Linear.add_transposed`), after fusion; a predicate: those for which it is true
        (``inference.generate.mosaic_linears``: the ones the Mosaic kernel will take)."""
        graphdef, state = nnx.split(self.blocks)
        layer_graphdef, layers = graphdef, []
        for i in range(self.config.n_layers):
            layer = jax.tree.map(lambda a, i=i: a[i], state)
            if fuse or transposed:
                block = nnx.merge(graphdef, layer)
                if fuse:
                    block.attn.fuse_projections()
                    block.mlp.fuse_projections()
                if transposed:
                    wanted = transposed if callable(transposed) else lambda linear: True
                    for _, module in nnx.iter_graph(block):
                        if (
                            isinstance(module, Linear)
                            and module.packed_layout is not None
                            and wanted(module)
                        ):
                            module.add_transposed()
                fused_graphdef, layer = nnx.split(block)
                if i and fused_graphdef != layer_graphdef:  # stacked layers fuse alike
                    raise AssertionError(f"layer {i} fused unlike layer 0")
                layer_graphdef = fused_graphdef
            layers.append(layer)
        return layer_graphdef, layers

    def init_cache(
        self, batch_size: int, max_len: int, dtype: jnp.dtype = jnp.float32, per_layer=False
    ) -> KVCache:
        """Zero keys and values ``[layers, batch, max_len, kv_heads, head_dim]``, or with
        ``per_layer`` lists of one ``[batch, ...]`` array a layer (for ``layers=``)."""
        c = self.config
        if per_layer:
            shape = (batch_size, max_len, c.n_kv_heads, c.head_dim)
            zeros = [jnp.zeros(shape, dtype) for _ in range(c.n_layers)]
            return KVCache(zeros, [jnp.zeros(shape, dtype) for _ in range(c.n_layers)])
        shape = (c.n_layers, batch_size, max_len, c.n_kv_heads, c.head_dim)
        return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def count_params(config: ModelConfig) -> dict[str, int]:
    """Parameter counts from the config alone (no arrays): total, embedding, non-embedding."""
    d, hd = config.d_model, config.head_dim
    attn = d * config.n_heads * hd * 2 + d * config.n_kv_heads * hd * 2
    mlp = 3 * d * config.d_ff
    per_block = attn + mlp + 2 * d
    embedding = config.vocab_size * d
    head = 0 if config.tie_embeddings else d * config.vocab_size
    blocks = config.n_layers * per_block
    total = embedding + head + blocks + d
    return {
        "total": total,
        "embedding": embedding,
        "head": head,
        "non_embedding": total - embedding - head,
        "ternary": config.n_layers * (attn + mlp) if config.linear == "ternary" else 0,
    }


def flops_per_token(config: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward), PaLM (Chowdhery et al. 2022) App. B:
    ``6 * N_matmul + 12 * n_layers * d_model * seq_len``, where N_matmul counts every weight
    that takes part in a matmul (blocks and head, not the embedding lookup or norms) and the
    second term is attention scores and values (causal masking not subtracted)."""
    counts = count_params(config)
    matmul_params = (
        counts["total"] - counts["embedding"] - (config.n_layers * 2 + 1) * config.d_model
    )
    if config.tie_embeddings:
        matmul_params += config.vocab_size * config.d_model
    return 6.0 * matmul_params + 12.0 * config.n_layers * config.d_model * seq_len
