"""Seeded, realistic-enough call transcripts: Zipf-distributed words, sentences, turns, timings.

Everything comes from one seed, so two runs (or two stores in one run) hold
the same calls. The JSON of ``words`` and ``utterances`` is written as text
directly, in exactly the shape ``app.pipeline.store_transcript`` stores
(``dataclasses.asdict`` of ``app.providers.transcription.Word`` and
``Utterance``): building millions of dicts and dumping them would make
generation several times slower. :func:`check_shape` proves the shape.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

from app.providers.transcription import Utterance, Word

# Roughly by frequency in spoken English, then the words of calls to a business.
# A word's place in this list is its rank; the tail below is made up.
COMMON = """
the i you to and a that it of is yes in we so what for my on have do this can
be just no not with your okay well know like there but they if me get was at
are it's right all about one oh an or us our will would go there's call think
out up then good how here now see when time thank want thanks need sure back
some from could just us by because yeah hi hello mean really which got did
account order number card payment week today tomorrow day monday friday please
help let check phone email address name could should also any more other
ask tell said say make take give send look find keep try put call called
delivery refund invoice bill billing price charge charged plan service team
manager appointment booking schedule minutes hours problem issue question
morning afternoon evening office store package parcel return exchange item
subscription cancel renew upgrade contract support technician visit window
confirm confirmed reference code details information message voicemail back
address street city postcode insurance claim policy quote balance transfer
password login app website online system update updated working broken fixed
""".split()
# The phrase a phrase search looks for is made of common words: only their order is rare.
PHRASE = "cancel my subscription"
# A word no generated sentence uses: it appears in exactly the calls it is planted in.
RARE_WORD = "quokka"
# A common content word (not a stop word) to search for.
COMMON_WORD = "invoice"
RARE_CALLS = 5
PHRASE_CALLS = 8

SYLLABLES = (
    "ba be bi bo bu ca ce co cu da de di do du fa fe fi fo ga ge go gu ha he hi ho ka ke ki ko "
    "la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su "
    "ta te ti to tu va ve vi vo wa we wi za ze zo bra cre dri fro gla ple pro sta tre vor lin "
    "mar ten ston ford ley ton ver gan del mon ric hal"
).split()
VOCABULARY_SIZE = 30_000
ZIPF_EXPONENT = 1.1
WORDS_PER_CALL = 150


def vocabulary(size: int = VOCABULARY_SIZE) -> list[str]:
    """The common words, then made-up names and terms for the long tail."""
    rng = random.Random("vocabulary")
    words = list(dict.fromkeys(COMMON))
    seen = {*words, RARE_WORD}
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def zipf_cum_weights(size: int, exponent: float = ZIPF_EXPONENT) -> list[float]:
    return list(itertools.accumulate(1.0 / rank**exponent for rank in range(1, size + 1)))


@dataclass(frozen=True)
class GeneratedTranscript:
    text: str
    words_json: str  # JSON text of the words list
    utterances_json: str  # JSON text of the utterances list
    labels: tuple[str, ...]  # speaker or channel labels, in order of appearance
    duration_ms: int
    confidence: float


class RawJSON(str):
    """JSON text already written; the engine's serializer passes it through as it is."""


def json_serializer(value: Any) -> str:
    """For ``create_engine(json_serializer=...)``: written JSON as it is, anything else dumped."""
    return str(value) if isinstance(value, RawJSON) else json.dumps(value)


class Corpus:
    """Draws transcripts; ``transcript(n, channels, plant)`` is the same for the same seed and n."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.words = vocabulary()
        self.cum_weights = zipf_cum_weights(len(self.words))
        # Each word's JSON start and length, and the confidences, from small tables: cheap per word.
        self._tokens: dict[str, tuple[str, int]] = {}
        self._confidence_text = [f"{0.55 + 0.45 * (i / 999) ** 0.3:.4f}" for i in range(1000)]
        self._confidence_value = [float(c) for c in self._confidence_text]

    def _entry(self, token: str) -> tuple[str, int]:
        """A word's JSON up to its start time, and its spoken length in ms before jitter."""
        entry = self._tokens.get(token)
        if entry is None:
            entry = self._tokens[token] = (f'{{"text": {json.dumps(token)}, "start": ', 90 + 45 * len(token))
        return entry

    def sentences(self, rng: random.Random, total: int, plant: list[str]) -> list[list[str]]:
        """About ``total`` words as sentences (lists of tokens with their punctuation)."""
        drawn = rng.choices(self.words, cum_weights=self.cum_weights, k=total)
        if plant:
            at = rng.randrange(0, max(1, total - len(plant)))
            drawn[at : at + len(plant)] = plant
        sentences: list[list[str]] = []
        i = 0
        while i < len(drawn):
            length = rng.randint(4, 18)
            sentence = drawn[i : i + length]
            i += length
            sentence[0] = sentence[0][:1].upper() + sentence[0][1:]
            sentence[-1] += "?" if rng.random() < 0.12 else "."
            if len(sentence) > 8 and rng.random() < 0.4:
                comma = rng.randrange(2, len(sentence) - 2)
                sentence[comma] += ","
            sentences.append(sentence)
        return sentences

    def transcript(self, n: int, channels: int, plant: list[str]) -> GeneratedTranscript:
        """Call ``n``'s transcript: turns of one to three sentences, two (sometimes three) speakers."""
        rng = random.Random(f"{self.seed}-transcript-{n}")
        rand = rng.random
        total = rng.randint(WORDS_PER_CALL - 30, WORDS_PER_CALL + 30)
        sentences = self.sentences(rng, total, plant)
        if channels == 2:
            labels = ["1", "2"]
        else:
            labels = ["A", "B", "C"] if rand() < 0.1 else ["A", "B"]
        shown, values = self._confidence_text, self._confidence_value
        tokens_seen = self._tokens
        utterances, all_words, texts, seen_labels = [], [], [], []
        clock = rng.randint(200, 900)
        end = clock
        turn, s, count = 0, 0, 0
        confidence_sum = 0.0
        while s < len(sentences):
            take = rng.randint(1, 3)
            tokens = [t for sentence in sentences[s : s + take] for t in sentence]
            s += take
            label = labels[turn % 2] if len(labels) == 2 or rand() < 0.8 else labels[2]
            turn += 1
            if label not in seen_labels:
                seen_labels.append(label)
            who = f'"speaker": "{label}", "channel": ' + (f'"{label}"' if channels == 2 else "null") + "}"
            fragments = []
            append = fragments.append
            turn_start = clock
            for token in tokens:
                prefix, length = tokens_seen.get(token) or self._entry(token)
                r = rand()
                end = clock + length + int(r * 120)
                i = int(r * 12_979) % 1000
                confidence_sum += values[i]
                append(f'{prefix}{clock}, "end": {end}, "confidence": {shown[i]}, {who}')
                clock = end + 30 + int(r * 15_013) % 150
            count += len(tokens)
            words_json = ", ".join(fragments)
            all_words.append(words_json)
            text = " ".join(tokens)
            texts.append(text)
            utterances.append(
                f'{{"text": {json.dumps(text)}, "start": {turn_start}, "end": {end}, '
                f'"confidence": {shown[int(rand() * 1000)]}, {who[:-1]}, "words": [{words_json}]}}'
            )
            clock += rng.randint(300, 1200)
        return GeneratedTranscript(
            text=" ".join(texts),
            words_json=RawJSON("[" + ", ".join(all_words) + "]"),
            utterances_json=RawJSON("[" + ", ".join(utterances) + "]"),
            labels=tuple(seen_labels),
            duration_ms=clock,
            confidence=round(confidence_sum / count, 4),
        )


def check_shape(generated: GeneratedTranscript) -> None:
    """The written JSON parses, and each word and turn has exactly the stored dataclasses' keys."""
    words = json.loads(generated.words_json)
    utterances = json.loads(generated.utterances_json)
    word_keys = [f.name for f in dataclasses.fields(Word)]
    utterance_keys = [f.name for f in dataclasses.fields(Utterance)]
    assert words and all(list(w) == word_keys for w in words), "words differ from the stored shape"
    assert utterances and all(list(u) == utterance_keys for u in utterances), "utterances differ"
    assert all(list(w) == word_keys for u in utterances for w in u["words"]), "turn words differ"
    assert " ".join(u["text"] for u in utterances) == generated.text, "text is not the turns' text"
    assert [w["text"] for w in words] == generated.text.split(" "), "words are not the text's words"
