"""Whisper's English text normaliser, so word error rates compare with published ones.

The code is transformers' port of openai-whisper's EnglishTextNormalizer (lower case, bracketed
and parenthesised text dropped, fillers such as "um" dropped, contractions and titles spelled
out, numbers and currencies written in digits, punctuation removed). Whisper also maps some
1,700 British spellings to American ones from a table (english.json) that neither package
installed here carries; the short table below covers the common patterns, so a rarer British
spelling in a reference can still count as an error that Whisper's own scoring would forgive.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

_SPELLINGS = """
    colour:color colours:colors coloured:colored favour:favor favourite:favorite
    honour:honor honoured:honored behaviour:behavior neighbour:neighbor neighbours:neighbors
    labour:labor harbour:harbor humour:humor rumour:rumor flavour:flavor savour:savor
    endeavour:endeavor centre:center centres:centers theatre:theater metre:meter
    metres:meters litre:liter fibre:fiber realise:realize realised:realized
    recognise:recognize recognised:recognized organise:organize organised:organized
    organisation:organization apologise:apologize analyse:analyze analysed:analyzed
    criticise:criticize emphasise:emphasize summarise:summarize prioritise:prioritize
    travelled:traveled travelling:traveling traveller:traveler cancelled:canceled
    cancelling:canceling modelling:modeling labelled:labeled defence:defense
    offence:offense licence:license pretence:pretense grey:gray programme:program
    programmes:programs catalogue:catalog dialogue:dialog analogue:analog
    jewellery:jewelry plough:plow mould:mold moustache:mustache pyjamas:pajamas
    tyre:tire tyres:tires aluminium:aluminum judgement:judgment ageing:aging
"""
_BRITISH_TO_AMERICAN = dict(pair.split(":") for pair in _SPELLINGS.split())


def normalise(text: str) -> str:
    """`text` as Whisper's scoring sees it: lower-case words separated by single spaces."""
    return str(_normaliser()(text))


@functools.cache
def _normaliser() -> Callable[[str], str]:
    # transformers imports huggingface_hub, which reads this once: nothing may be fetched.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    normaliser: Callable[[str], str] = EnglishTextNormalizer(_BRITISH_TO_AMERICAN)
    return normaliser
