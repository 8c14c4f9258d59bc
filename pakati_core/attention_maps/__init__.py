"""Cross-attention maps: where the model puts a word, recorded during sampling, masks made from them,
and Attend-and-Excite (region-aware) on them."""

from .excite import ExciteMaps, ExciteResult, ExciteSettings, ExciteTarget, PassComplete, excite_latent, excite_loss, gradients_on
from .masks import mask_from_map, normalised_map
from .recorder import AttentionRecorder, token_probabilities
from .tokens import subject_word, word_positions

__all__ = [
    "AttentionRecorder",
    "ExciteMaps",
    "ExciteResult",
    "ExciteSettings",
    "ExciteTarget",
    "PassComplete",
    "excite_latent",
    "excite_loss",
    "gradients_on",
    "mask_from_map",
    "normalised_map",
    "subject_word",
    "token_probabilities",
    "word_positions",
]
