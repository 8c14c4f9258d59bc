"""Cross-attention maps: where the model puts a word, recorded during sampling, and masks made from them."""
from .masks import mask_from_map, normalised_map
from .recorder import AttentionRecorder, token_probabilities
from .tokens import word_positions

__all__ = ["AttentionRecorder", "mask_from_map", "normalised_map", "token_probabilities", "word_positions"]
