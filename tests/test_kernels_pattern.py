"""The blocksparse pattern and the block tables / BlockMask the kernels derive from it."""
import itertools

import pytest
import torch

from assay.kernels.attention_flex import flex_block_mask
from assay.kernels.block_tables import block_tables, kernel_tile
from assay.kernels.blocksparse_pattern import BlockSparsePattern

TOY = BlockSparsePattern(block_size=16, local_blocks=2, vertical_stride=3, num_heads=4)


def spec_allows(p: BlockSparsePattern, h: int, i: int, j: int) -> bool:
    """The model-notes rule, written token by token as an independent check."""
    step = 0 if p.homogeneous else max(1, p.vertical_stride // p.num_heads)
    qb, kb = i // p.block_size, j // p.block_size
    block = qb >= kb and (qb - kb < p.local_blocks or (kb + h * step + 1) % p.vertical_stride == 0)
    return block and j <= i


@pytest.mark.parametrize("pattern", [TOY, BlockSparsePattern(16, 1, 2, 2, homogeneous=True),
                                     BlockSparsePattern(16, 3, 4, 8)])
def test_token_mask_matches_the_rule(pattern):
    seq = 5 * pattern.block_size + 3
    mask = pattern.token_mask(seq)
    expected = torch.tensor([[[spec_allows(pattern, h, i, j) for j in range(seq)] for i in range(seq)]
                             for h in range(pattern.num_heads)])
    assert torch.equal(mask, expected)


def test_pattern_is_causal_and_keeps_the_local_window():
    seq = 7 * TOY.block_size
    mask = TOY.token_mask(seq)
    upper = torch.ones(seq, seq, dtype=torch.bool).triu(1)
    assert not mask[:, upper].any()
    i = torch.arange(seq)
    local = ((i.view(-1, 1) // 16) - (i.view(1, -1) // 16) < TOY.local_blocks) & (i.view(-1, 1) >= i.view(1, -1))
    assert mask[:, local].all()
    assert 0.0 < TOY.density(seq) < 1.0


@pytest.mark.parametrize("stride,heads", [(3, 4), (4, 4), (2, 8)])
def test_heterogeneous_heads_together_cover_every_earlier_block(stride, heads):
    pattern = BlockSparsePattern(block_size=16, local_blocks=1, vertical_stride=stride, num_heads=heads)
    blocks = pattern.block_mask(12)
    union = blocks.any(0)
    assert torch.equal(union, torch.ones(12, 12, dtype=torch.bool).tril())
    assert not blocks.all(0).equal(union)  # no single head sees everything


def test_block_tables_list_exactly_the_allowed_blocks():
    seq = 6 * 16 - 5
    tables = block_tables(TOY, seq, TOY.num_heads, TOY.block_size, "cpu")
    allowed = TOY.block_mask(TOY.num_blocks(seq))
    for h, qb in itertools.product(range(TOY.num_heads), range(allowed.shape[1])):
        listed = tables.kv_index[h, qb, :tables.kv_count[h, qb]].tolist()
        assert listed == allowed[h, qb].nonzero().flatten().tolist()
    for h, kb in itertools.product(range(TOY.num_heads), range(allowed.shape[2])):
        listed = tables.q_index[h, kb, :tables.q_count[h, kb]].tolist()
        assert listed == allowed[h, :, kb].nonzero().flatten().tolist()
    # work is proportional to density: fewer visited blocks than dense causal
    assert int(tables.kv_count.sum()) < TOY.num_heads * 6 * 7 // 2


def test_tiled_tables_cover_the_same_tokens_as_the_blocks():
    """Splitting each pattern block into tiles lists exactly the tiles inside allowed blocks, minus the tiles
    wholly above the diagonal; expanded to tokens with the causal rule, that is the pattern's token mask."""
    pattern = BlockSparsePattern(block_size=64, local_blocks=2, vertical_stride=3, num_heads=4)
    seq = 5 * 64 - 7
    for tile in (64, 32, 16):
        tables = block_tables(pattern, seq, pattern.num_heads, tile, "cpu")
        n = -(-seq // tile)
        allowed = torch.zeros(pattern.num_heads, n, n, dtype=torch.bool)
        for h, qt in itertools.product(range(pattern.num_heads), range(n)):
            listed = tables.kv_index[h, qt, :tables.kv_count[h, qt]].long()
            assert bool((listed <= qt).all())  # never a tile wholly in the future
            allowed[h, qt, listed] = True
        token = torch.arange(seq) // tile
        expanded = allowed[:, token][:, :, token] & torch.ones(seq, seq, dtype=torch.bool).tril()
        assert torch.equal(expanded, pattern.token_mask(seq)), tile
        assert tables.block_size == tile
    assert kernel_tile(128) == 64 and kernel_tile(48) == 16 and kernel_tile(96) == 32 and kernel_tile(24) is None


def test_dense_tables_are_causal():
    tables = block_tables(None, 40, 2, 16, "cpu")
    assert tables.kv_count.tolist() == [[1, 2, 3], [1, 2, 3]]
    assert tables.q_count.tolist() == [[3, 2, 1], [3, 2, 1]]


@pytest.mark.parametrize("seq", [48, 45])
def test_flex_block_mask_matches_the_token_mask(seq):
    mask = flex_block_mask(TOY, seq, TOY.num_heads, "cpu")
    dense = mask.to_dense()[0].bool()
    assert torch.equal(dense, TOY.block_mask(TOY.num_blocks(seq)))
    tokens = torch.zeros(TOY.num_heads, seq, seq, dtype=torch.bool)
    i = torch.arange(seq)
    for h in range(TOY.num_heads):
        tokens[h] = mask.mask_mod(0, torch.tensor(h), i.view(-1, 1), i.view(1, -1))
    assert torch.equal(tokens, TOY.token_mask(seq))
