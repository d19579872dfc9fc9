"""The English text the corpus builder gives its TTS voices: a handwritten list of varied
sentences, extended on demand with phrase-list combinations (statements and questions)."""

from __future__ import annotations

import random
from collections.abc import Sequence

_SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the quiet riverbank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A large fire broke out in the old warehouse late last night.",
    "Would you mind closing the window before the rain starts?",
    "We measured the temperature every morning for three weeks in a row.",
    "Thirty-seven sheep were grazing peacefully on the green hillside.",
    "She sells sea shells by the sea shore on sunny afternoons.",
    "The train to Edinburgh leaves from platform nine at a quarter past six.",
    "How many kilometres is it from here to the nearest village?",
    "Nobody expected the small orchestra to play so beautifully.",
    "Turn left at the traffic lights, then keep going straight for two blocks.",
    "My grandmother keeps a jar of buttons in the kitchen cupboard.",
    "The weather forecast promised sunshine, but it snowed all day.",
    "Could you spell your surname for me, please?",
    "Fresh bread smells wonderful when it comes out of the oven.",
    "The judge listened carefully and then adjourned the hearing until Thursday.",
    "Engineers tested the bridge with heavy trucks before opening it.",
    "I think I left my umbrella on the bus this morning.",
    "Birds were singing loudly in the tall oak trees behind the school.",
    "Your appointment has been moved to Wednesday at two thirty in the afternoon.",
    "The museum is closed on Mondays and on public holidays.",
    "Why does the kettle always whistle just as the phone rings?",
    "A thick fog rolled in from the harbour and covered the whole town.",
    "He scribbled a short note and slipped it under the door.",
    "Measure twice and cut once, as the old carpenter used to say.",
    "The children built an enormous sandcastle with towers and a moat.",
    "Press the star key to return to the main menu.",
    "Our flight was delayed by four hours because of a technical problem.",
    "Yellow leaves drifted slowly across the empty playground.",
    "Is this the right way to the central railway station?",
    "The recipe calls for two eggs, a cup of flour and a pinch of salt.",
    "Zebras and giraffes wandered across the wide dusty plain.",
    "Thank you for waiting; your call is important to us.",
    "The scientist explained her results with a simple diagram.",
    "Every Saturday they cycle along the canal to the next village.",
    "Those shoes look comfortable, but they are far too expensive.",
    "Quietly, the cat crept along the fence and vanished into the garden.",
    "Please leave a message after the tone and we will call you back.",
    "The jazz band played until well after midnight.",
    "She whispered the answer so that nobody else could hear it.",
)

_SUBJECTS = ("The young teacher", "My neighbour", "A tired traveller", "The old fisherman",
             "Our new manager", "The little girl", "A friendly dog", "The busy doctor",
             "Everyone in the village", "The clever student", "His younger brother",
             "The taxi driver", "A famous painter", "The night nurse", "Her best friend",
             "The tall stranger", "The baker", "A group of tourists", "The pilot",
             "My cousin from Boston")
_VERBS = ("quickly found", "carefully opened", "never forgot", "suddenly noticed", "slowly carried",
          "proudly showed", "happily shared", "accidentally dropped", "quietly repaired",
          "finally delivered", "eagerly described", "patiently explained", "loudly praised",
          "gently washed", "secretly borrowed")
_OBJECTS = ("a heavy wooden box", "the broken bicycle", "an old photograph", "the shiny red apple",
            "a letter from Norway", "the missing keys", "a basket of vegetables",
            "the strange blue bottle", "a map of the mountains", "the golden watch",
            "a jar of honey", "the yellow umbrella", "six fresh oranges", "the tiny kitten",
            "a thick history book")
_ENDINGS = ("before breakfast.", "in the crowded market.", "after the long meeting.",
            "during the thunderstorm.", "near the old lighthouse.", "on a cold winter evening.",
            "without saying a word.", "at the end of the street.", "just in time for dinner.",
            "behind the garden shed.", "while everyone was sleeping.", "at exactly nine o'clock.",
            "for the third time this week.", "under the kitchen table.", "on the way home.")
_QUESTIONS = ("Did you know that", "Is it true that", "Have you heard that", "Can you believe that",
              "Why do you think that")


def corpus_sentences(n: int = 400, seed: int = 0) -> tuple[str, ...]:
    """``n`` varied English sentences: the handwritten list, then phrase-list combinations."""
    rng = random.Random(seed)
    out = list(_SENTENCES[:n])
    while len(out) < n:
        clause = (f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
                  f"{rng.choice(_ENDINGS)}")
        if rng.random() < 0.2:
            clause = f"{rng.choice(_QUESTIONS)} {clause[0].lower()}{clause[1:-1]}?"
        elif rng.random() < 0.15:
            clause = f"{clause[:-1]}, and {rng.randint(2, 99)} people saw it happen."
        out.append(clause)
    return tuple(out)


def utterance(rng: random.Random, sentences: Sequence[str]) -> str:
    """1-3 distinct sentences drawn from ``sentences`` with ``rng``, joined by spaces."""
    k = min(len(sentences), rng.choice((1, 2, 2, 3)))
    return " ".join(rng.sample(list(sentences), k))
