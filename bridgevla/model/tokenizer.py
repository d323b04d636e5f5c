"""The offline tokenizer (tiny/small/random presets) and the one prompt layout shared with real PaliGemma.

No tokenizer can be downloaded here, so the small presets build one locally: a byte-level BPE trained with the
``tokenizers`` library on a fixed, built-in robot-instruction vocabulary. Byte level means *any* string tokenizes
(unknown words fall back to bytes); the BPE merges make the common instruction words single tokens, which a
two-layer language model conditions on far more easily than on raw characters. The special tokens use PaliGemma's
ids (pad 0, eos 1, bos 2, unk 3) so that prompts look the same as with the real Gemma tokenizer. The tokenizer is
saved with every checkpoint, so a trained model never depends on rebuilding it (the build is deterministic anyway,
and tested to be).

The prompt layout follows PaliGemma's processor: ``<image>`` × (views · tokens per view), ``<bos>``, the raw
instruction, ``\\n``, then right padding. Right padding keeps the image tokens at fixed positions ``[0, V·T)``.

Instructions are data, never markup: text such as ``<image>``, ``<eos>``, ``<pad>`` or ``<bos>`` typed by a user is
tokenized as ordinary characters (``split_special_tokens``), and a check refuses any prompt whose text still maps to
a special id, so no instruction can inject control tokens (an ``<image>`` in the text would shift every image
token). Empty or blank instructions, non-strings and text that is not valid UTF-8 (lone surrogates) are refused with
an error naming the instruction.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import Tensor
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, EOS, BOS, UNK, IMAGE = "<pad>", "<eos>", "<bos>", "<unk>", "<image>"
SPECIAL_TOKENS = [PAD, EOS, BOS, UNK, IMAGE]  # ids 0..4, in this order (PaliGemma's ids for the first four)
DEFAULT_VOCAB_SIZE = 2048

# Words of RLBench/COLOSSEUM/GemBench-style and tabletop instructions. Order and content are part of the tokenizer's
# definition: changing them changes token ids (checkpoints are safe, they carry their own tokenizer).
_WORDS = """
a an the this that these those it its to of on in into onto at from with without by for and or then up down
off out over under above below between behind front back left right middle center centre top bottom side
near far next inside outside around across along through until before after first second third last
pick place put push pull press open close lift lower move slide turn rotate twist screw unscrew insert remove
take grab grasp release drop stack unstack sort sweep wipe scoop pour fill empty hang reach drag stir shake
set setup get give hold touch tap flip roll toss throw fold straighten clean knock tip lean plug unplug
block blocks cube cubes cup cups mug jar jars lid lids drawer drawers box boxes bowl bowls plate plates
bottle bottles can cans tray bin basket shelf shelves cupboard cabinet safe money bill wine rack peg pegs
square round star triangle circle cylinder sphere shape shapes sorter hole slot hoop ball basketball
button buttons switch lamp light bulb bulbs tap faucet handle knob door window laptop oven grill meat chicken
steak sausage groceries item items object objects target targets goal spot zone area region mark marker
dustpan broom brush sponge towel rope hanger chess board piece pieces spatula spoon fork knife dishwasher
fridge ice phone toilet seat umbrella stand holder book books stick puck hockey net table desk tabletop
red green blue yellow orange purple pink white black gray grey brown cyan magenta violet teal maroon
navy olive lime silver gold azure rose small smaller smallest large larger largest big bigger biggest
tall short long wide narrow light dark heavy empty full same different other another each every all both
one two three four five six seven eight nine ten zero 0 1 2 3 4 5 6 7 8 9
please now again slowly carefully gently quickly make sure so is are be which where there here position
color colour size of edge corner end start row column line pile tower pair set
ring rings spoke spokes platform raise raised use using grip pad pads stop away
"""


def _corpus(extra_text: Sequence[str]) -> list[str]:
    # Each word alone and with the leading space ByteLevel gives words inside a sentence ("Ġred"), several times so
    # that whole-word merges win over merges of arbitrary fragments.
    words = _WORDS.split()
    return [w for word in words for w in (word, " " + word)] * 4 + [str(t) for t in extra_text]


def build_offline_tokenizer(
    vocab_size: int = DEFAULT_VOCAB_SIZE, extra_text: Sequence[str] = ()
) -> PreTrainedTokenizerFast:
    """A deterministic byte-level BPE tokenizer trained on the built-in instruction words (+ ``extra_text``)."""
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be >= {256 + len(SPECIAL_TOKENS)} (bytes + specials), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(extra_text), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=BOS,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE},
        padding_side="right",
    )


def image_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id of ``<image>`` (PaliGemma's processor registers the same token on the real Gemma tokenizer)."""
    tid = tokenizer.convert_tokens_to_ids(IMAGE)
    if tid is None or tid == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no {IMAGE} token")
    return int(tid)


def check_instructions(instructions: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first instruction that is not non-blank, valid UTF-8 text."""
    if isinstance(instructions, (str, bytes)) or not isinstance(instructions, Sequence):
        raise ValueError(f"instructions must be a list of strings, got {type(instructions).__name__}")
    if len(instructions) == 0:
        raise ValueError("instructions must not be empty")
    for i, s in enumerate(instructions):
        if isinstance(s, bytes):
            raise ValueError(f"instructions[{i}] is bytes; decode it to text (UTF-8) first")
        if not isinstance(s, str):
            raise ValueError(f"instructions[{i}] must be a string, got {type(s).__name__}")
        try:
            s.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"instructions[{i}] is not valid UTF-8 text ({e.reason} at position {e.start})") from e
        if not s.strip():
            raise ValueError(f"instructions[{i}] is empty; a policy needs an instruction")


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase,
    instructions: Sequence[str],
    num_images: int,
    tokens_per_image: int,
    max_text_tokens: int,
    device: torch.device | str | None = None,
    pad_to_max: bool = False,
) -> tuple[Tensor, Tensor]:
    """``(input_ids, attention_mask)`` (B, L) for PaliGemma's multi-image prompt, right-padded.

    Equivalent to ``PaliGemmaProcessor(text="<image>"*num_images + instruction)`` (tested), without touching images,
    so rendered views can stay on the GPU. Instructions longer than ``max_text_tokens`` are cut (the newline kept).
    ``pad_to_max`` pads every prompt to ``max_text_tokens`` rather than to the longest in the batch: the same shapes
    on every call, which compiled graphs and CUDA graphs need (padding is masked, so the features do not change).
    """
    check_instructions(instructions)
    if num_images < 1 or tokens_per_image < 1 or max_text_tokens < 1:
        raise ValueError(
            f"num_images, tokens_per_image and max_text_tokens must be >= 1, got "
            f"{num_images}, {tokens_per_image}, {max_text_tokens}"
        )
    img, bos, pad = image_token_id(tokenizer), tokenizer.bos_token_id, tokenizer.pad_token_id
    if bos is None or pad is None:
        raise ValueError("tokenizer must define bos and pad tokens")
    texts = tokenizer([s + "\n" for s in instructions], add_special_tokens=False,
                      split_special_tokens=True)["input_ids"]
    special = set(tokenizer.all_special_ids) | {img}
    for i, t in enumerate(texts):
        injected = sorted(special.intersection(t))
        if injected:  # a tokenizer that ignores split_special_tokens: refuse rather than let markup through
            raise ValueError(f"instructions[{i}] tokenizes to special token ids {injected} "
                             f"({tokenizer.convert_ids_to_tokens(injected)}); instructions must be plain text")
    # Keep the trailing newline token when cutting: it marks the end of the prefix as in PaliGemma's training. A cut
    # changes what the policy is asked, so it is never silent (Python shows each distinct warning once).
    for i, t in enumerate(texts):
        if len(t) > max_text_tokens:
            warnings.warn(f"instruction {instructions[i]!r:.80} is {len(t)} tokens (with its newline); only the first "
                          f"{max_text_tokens} are read: raise model.max_text_tokens", UserWarning, stacklevel=2)
    texts = [t if len(t) <= max_text_tokens else t[: max_text_tokens - 1] + t[-1:] for t in texts]
    prefix = num_images * tokens_per_image + 1
    length = prefix + (max_text_tokens if pad_to_max else max(len(t) for t in texts))
    ids = torch.full((len(texts), length), pad, dtype=torch.long)
    attn = torch.zeros((len(texts), length), dtype=torch.long)
    ids[:, : prefix - 1] = img
    ids[:, prefix - 1] = bos
    for i, t in enumerate(texts):  # a loop over prompts (not tokens): each a slice copy
        ids[i, prefix : prefix + len(t)] = torch.tensor(t, dtype=torch.long)
        attn[i, : prefix + len(t)] = 1
    return ids.to(device), attn.to(device)
