"""A model of vLLM's automatic prefix cache, for its two counters (`vllm:prefix_cache_{queries,hits}`).

A prompt is cut into full blocks of `BLOCK_SIZE_TOKENS` token pieces; each block's key chains the previous
block's, as vLLM's block hashes do, so a block hits only when every token before it matched too. The
cache keeps the most recently used `capacity_blocks` blocks (vLLM frees cached blocks in LRU order). As in
vLLM, queries count every prompt token and hits the tokens served from cache, and the last prompt token
is never a hit (it must be computed to produce the first output). Only the counters are modelled: a hit
does not shorten the simulated prefill.
"""

from __future__ import annotations

from collections import OrderedDict

from simulator.engine import BLOCK_SIZE_TOKENS
from simulator.tokenizer import BOS, pieces

__all__ = ["PrefixCache"]


class PrefixCache:
    def __init__(self, capacity_blocks: int, block_size: int = BLOCK_SIZE_TOKENS) -> None:
        self.capacity_blocks = max(0, capacity_blocks)
        self.block_size = block_size
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def lookup(self, prompt_text: str, prompt_tokens: int) -> int:
        """Tokens of this prompt found in the cache; its full blocks are then cached (most recent)."""
        toks = pieces(prompt_text)
        if not prompt_text.startswith(BOS):
            toks = [BOS, *toks]  # what the tokenizer adds in front of a completion prompt
        full = min(len(toks), prompt_tokens) - 1  # the last token is always computed
        key = 0
        hits = 0
        missed = False
        for start in range(0, full - self.block_size + 1, self.block_size):
            key = hash((key, *toks[start : start + self.block_size]))
            if not missed and key in self._blocks:
                self._blocks.move_to_end(key)
                hits += self.block_size
                continue
            missed = True
            if self.capacity_blocks:
                self._blocks[key] = None
                if len(self._blocks) > self.capacity_blocks:
                    self._blocks.popitem(last=False)
        return hits
