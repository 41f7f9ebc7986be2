"""Chapter 9 data: build the bundled instruction-finetuning dataset.

Instruction finetuning teaches a pretrained model to answer a request instead of merely continuing text.
This script writes the small Alpaca-style dataset that chapter 9 trains on: records
{"instruction", "input", "output"} (plus an optional "history" of earlier turns) made from hand-written
templates, word lists and facts. Every answer that involves a number is computed here, by code, so it is
exact; the same seed always gives the same files, byte for byte.

    python data/instructions/make_instructions.py            # write train/validation/test.json here
    python data/instructions/make_instructions.py --check    # verify the committed files (exit 1 if not)
    python data/instructions/make_instructions.py --out DIR  # write somewhere else

Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Callable

SEED = 1234
# (split name, share of the records). Validation is small because chapter 9 only uses it to watch the loss.
SPLITS = (("train", 0.85), ("validation", 0.05), ("test", 0.10))
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------------------
# Small text helpers
# ---------------------------------------------------------------------------------------------------------

def record(instruction: str, input_text: str, output: str, history: list[dict] | None = None) -> dict:
    rec = {"instruction": instruction, "input": input_text, "output": output}
    if history:
        rec["history"] = history
    return rec


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def article(word: str) -> str:
    # Every word in the lists below was chosen so that the spelling rule gives the right article
    # (no "hour", "unicorn" or "university").
    return "an" if word[:1].lower() in "aeiou" else "a"


def q(word: str) -> str:
    return f'"{word}"'


def join_numbers(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def plural_s(count, singular: str, plural: str) -> str:
    return singular if count == 1 else plural


def third_person(verb: str) -> str:
    """The he/she/it form of a verb in the present simple: walk -> walks, wash -> washes, carry -> carries."""
    if verb == "have":
        return "has"
    if verb.endswith(("s", "sh", "ch", "x", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def fmt(value: Fraction) -> tuple[str, bool]:
    """A number as text, exact when it has at most two decimals, otherwise rounded half-up to two.

    Returns (text, exact). Fractions keep every conversion exact until this single rounding step,
    so the printed answer never depends on float quirks.
    """
    value = Fraction(value)
    exact = (value * 100).denominator == 1
    hundredths = abs(value) * 100
    hundredths = int(hundredths) if exact else int(hundredths + Fraction(1, 2))  # round half up
    whole, cents = divmod(hundredths, 100)
    sign = "-" if value < 0 and hundredths else ""
    text = f"{sign}{whole}" if cents == 0 else f"{sign}{whole}.{cents:02d}".rstrip("0")
    return text, exact


def pick(rng: random.Random, templates: list[tuple[str, str]], **fields) -> tuple[str, str]:
    """Choose one (instruction, input) paraphrase and fill in its fields."""
    instruction, input_text = rng.choice(templates)
    return instruction.format(**fields), input_text.format(**fields)


# ---------------------------------------------------------------------------------------------------------
# The builder: collects records, refuses duplicate (instruction, input) pairs
# ---------------------------------------------------------------------------------------------------------

class Builder:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.records: list[tuple[str, dict]] = []  # (task family, record)
        self.seen: set[tuple[str, str]] = set()

    def try_add(self, task: str, rec: dict) -> bool:
        key = (rec["instruction"], rec["input"])
        if key in self.seen:
            return False
        self.seen.add(key)
        self.records.append((task, rec))
        return True

    def add(self, task: str, rec: dict) -> None:
        """For records built from a fixed list: a repeat there is a mistake in the lists, so say so."""
        if not self.try_add(task, rec):
            raise ValueError(f"duplicate (instruction, input) in task {task!r}: {rec['instruction']!r} "
                             f"/ {rec['input']!r}; make the word lists or templates distinct")

    def fill(self, task: str, count: int, make: Callable[[random.Random], dict]) -> None:
        """Call make(rng) until `count` new records were added (random generators may repeat themselves)."""
        added = 0
        for _ in range(count * 50):
            if added == count:
                return
            added += self.try_add(task, make(self.rng))
        if added < count:
            raise RuntimeError(f"task {task!r}: only {added} distinct records out of {count} wanted; "
                               f"the templates are too few for that count")


# ---------------------------------------------------------------------------------------------------------
# Word lists and facts (all checked by hand)
# ---------------------------------------------------------------------------------------------------------

# base form -> (past simple, past participle)
VERBS = {
    "go": ("went", "gone"), "eat": ("ate", "eaten"), "see": ("saw", "seen"), "take": ("took", "taken"),
    "give": ("gave", "given"), "come": ("came", "come"), "run": ("ran", "run"), "swim": ("swam", "swum"),
    "sing": ("sang", "sung"), "drink": ("drank", "drunk"), "write": ("wrote", "written"),
    "read": ("read", "read"), "buy": ("bought", "bought"), "bring": ("brought", "brought"),
    "think": ("thought", "thought"), "teach": ("taught", "taught"), "catch": ("caught", "caught"),
    "fight": ("fought", "fought"), "find": ("found", "found"), "make": ("made", "made"),
    "sleep": ("slept", "slept"), "keep": ("kept", "kept"), "leave": ("left", "left"), "feel": ("felt", "felt"),
    "know": ("knew", "known"), "grow": ("grew", "grown"), "throw": ("threw", "thrown"), "fly": ("flew", "flown"),
    "draw": ("drew", "drawn"), "speak": ("spoke", "spoken"), "break": ("broke", "broken"),
    "choose": ("chose", "chosen"), "freeze": ("froze", "frozen"), "forget": ("forgot", "forgotten"),
    "begin": ("began", "begun"), "win": ("won", "won"), "sit": ("sat", "sat"), "stand": ("stood", "stood"),
    "tell": ("told", "told"), "sell": ("sold", "sold"), "hold": ("held", "held"), "build": ("built", "built"),
    "send": ("sent", "sent"), "spend": ("spent", "spent"), "lose": ("lost", "lost"), "pay": ("paid", "paid"),
    "say": ("said", "said"), "put": ("put", "put"), "cut": ("cut", "cut"), "hit": ("hit", "hit"),
    "drive": ("drove", "driven"), "ride": ("rode", "ridden"), "wake": ("woke", "woken"), "wear": ("wore", "worn"),
    "hide": ("hid", "hidden"), "shake": ("shook", "shaken"), "steal": ("stole", "stolen"), "dig": ("dug", "dug"),
    "feed": ("fed", "fed"), "meet": ("met", "met"), "lead": ("led", "led"),
    "walk": ("walked", "walked"), "play": ("played", "played"), "jump": ("jumped", "jumped"),
    "cry": ("cried", "cried"), "stop": ("stopped", "stopped"), "plan": ("planned", "planned"),
    "carry": ("carried", "carried"), "try": ("tried", "tried"), "dance": ("danced", "danced"),
    "study": ("studied", "studied"), "smile": ("smiled", "smiled"), "clap": ("clapped", "clapped"),
    "hurry": ("hurried", "hurried"), "open": ("opened", "opened"), "visit": ("visited", "visited"),
    # used by the passive/active sentences below
    "cook": ("cooked", "cooked"), "paint": ("painted", "painted"), "repair": ("repaired", "repaired"),
    "grade": ("graded", "graded"), "water": ("watered", "watered"), "bake": ("baked", "baked"),
    "deliver": ("delivered", "delivered"), "sign": ("signed", "signed"), "wash": ("washed", "washed"),
    "design": ("designed", "designed"), "translate": ("translated", "translated"), "print": ("printed", "printed"),
    "collect": ("collected", "collected"), "answer": ("answered", "answered"), "organize": ("organized", "organized"),
    "chase": ("chased", "chased"), "check": ("checked", "checked"), "close": ("closed", "closed"),
    "arrest": ("arrested", "arrested"), "clean": ("cleaned", "cleaned"), "display": ("displayed", "displayed"),
    "hire": ("hired", "hired"), "destroy": ("destroyed", "destroyed"), "plant": ("planted", "planted"),
    "announce": ("announced", "announced"),
}
# The verbs asked about in the past-tense questions (the last block of VERBS is there only for the voice task).
PAST_TENSE_QUESTIONS = list(VERBS)[: list(VERBS).index("cook")]

# (agent, agent is plural, verb, object, object is plural): sentences that make sense in both voices.
VOICE_SENTENCES = [
    ("the chef", False, "cook", "the soup", False), ("Maria", False, "paint", "the fence", False),
    ("the mechanic", False, "repair", "the car", False), ("the children", True, "eat", "the cookies", True),
    ("the teacher", False, "grade", "the tests", True), ("the gardener", False, "water", "the roses", True),
    ("the author", False, "write", "the novel", False), ("the baker", False, "bake", "the bread", False),
    ("the cat", False, "catch", "the mouse", False), ("the farmer", False, "feed", "the chickens", True),
    ("the courier", False, "deliver", "the parcels", True), ("the choir", False, "sing", "the anthem", False),
    ("the artist", False, "draw", "the portrait", False), ("the workers", True, "build", "the bridge", False),
    ("the students", True, "read", "the poem", False), ("the kiosk", False, "sell", "the tickets", True),
    ("Tom", False, "find", "the keys", True), ("the thief", False, "steal", "the necklace", False),
    ("the pilot", False, "fly", "the plane", False), ("the professor", False, "teach", "the class", False),
    ("the villagers", True, "grow", "the rice", False), ("the committee", False, "choose", "the winner", False),
    ("the manager", False, "sign", "the contract", False), ("the guide", False, "lead", "the tour", False),
    ("our team", False, "win", "the match", False), ("the boy", False, "break", "the window", False),
    ("the waiter", False, "carry", "the plates", True), ("the scientists", True, "study", "the samples", True),
    ("the engineer", False, "design", "the engine", False), ("the translator", False, "translate", "the book", False),
    ("the old machine", False, "print", "the labels", True), ("the volunteers", True, "collect", "the rubbish", False),
    ("the receptionist", False, "answer", "the phone", False), ("the club", False, "organize", "the festival", False),
    ("the dog", False, "chase", "the ball", False), ("the nurse", False, "check", "the patients", True),
    ("the wind", False, "close", "the door", False), ("the police", True, "arrest", "the suspect", False),
    ("the girls", True, "clean", "the classroom", False), ("the museum", False, "display", "the paintings", True),
    ("Sam", False, "wash", "the dishes", True), ("the company", False, "hire", "the engineers", True),
    ("the storm", False, "destroy", "the barn", False), ("the pupils", True, "plant", "the trees", True),
    ("the judge", False, "announce", "the results", True),
]

# (informal, formal)
FORMALITY_PAIRS = [
    ("Hey, can you send me the file?", "Hello, could you please send me the file?"),
    ("Thanks a lot for the help!", "Thank you very much for your assistance."),
    ("I can't make it to the meeting.", "I am unable to attend the meeting."),
    ("Gonna be late, sorry.", "I apologize, but I will be late."),
    ("What's up with the report?", "Could you tell me the status of the report?"),
    ("Let me know what you think.", "Please let me know your thoughts."),
    ("The food was super good.", "The food was excellent."),
    ("We need to talk about the budget ASAP.", "We need to discuss the budget as soon as possible."),
    ("I wanna buy a new laptop.", "I would like to purchase a new laptop."),
    ("Sorry, I messed up the order.", "I apologize for the error in the order."),
    ("Can I get a coffee?", "May I have a coffee, please?"),
    ("The boss is kinda busy right now.", "The manager is rather busy at the moment."),
    ("Check out the new plan.", "Please review the new plan."),
    ("See you tomorrow!", "I look forward to seeing you tomorrow."),
    ("Got your message, thanks.", "I have received your message. Thank you."),
    ("I don't get this part.", "I do not understand this section."),
    ("The price is way too high.", "The price is considerably too high."),
    ("Tell me when you're free.", "Please let me know when you are available."),
    ("It's no big deal.", "It is not a significant problem."),
    ("Can you help me out?", "Would you be able to assist me?"),
    ("The show was awesome.", "The performance was outstanding."),
    ("I'll get back to you soon.", "I will respond to you shortly."),
    ("Sorry for the late reply.", "I apologize for the delayed response."),
    ("The kids loved the trip.", "The children thoroughly enjoyed the trip."),
    ("He's really into chess.", "He is very interested in chess."),
    ("Don't forget the tickets!", "Please remember to bring the tickets."),
    ("Hang on a sec.", "Please wait a moment."),
    ("No worries, it's fine.", "There is no need to worry; it is perfectly fine."),
    ("Can't wait to see the new office!", "I am looking forward to seeing the new office."),
    ("The printer's broken again.", "The printer is out of order again."),
]

# (wordy, simple)
SIMPLIFY_PAIRS = [
    ("Due to the fact that it was raining, we stayed inside.", "We stayed inside because it was raining."),
    ("At this point in time, we are not able to answer.", "We cannot answer now."),
    ("In the event that you are late, please call us.", "If you are late, please call us."),
    ("She made the decision to leave early.", "She decided to leave early."),
    ("He is in possession of a large collection of stamps.", "He has a large collection of stamps."),
    ("We are in agreement with your proposal.", "We agree with your proposal."),
    ("The committee came to the conclusion that the plan was too expensive.",
     "The committee concluded that the plan was too expensive."),
    ("In order to win, you must practice every day.", "To win, you must practice every day."),
    ("It is necessary that you sign the form.", "You must sign the form."),
    ("A large number of people attended the concert.", "Many people attended the concert."),
    ("She has the ability to speak four languages.", "She can speak four languages."),
    ("Please give consideration to our offer.", "Please consider our offer."),
    ("The reason why he was late is because the bus broke down.", "He was late because the bus broke down."),
    ("We will hold a discussion about the schedule.", "We will discuss the schedule."),
    ("Prior to the start of the game, the players warmed up.", "Before the game, the players warmed up."),
    ("The vast majority of the students passed the exam.", "Most students passed the exam."),
    ("He conducted an investigation into the problem.", "He investigated the problem."),
    ("The car is blue in color.", "The car is blue."),
    ("They arrived at the station at 9 a.m. in the morning.", "They arrived at the station at 9 a.m."),
    ("With regard to your question, the answer is yes.", "The answer to your question is yes."),
    ("It is my opinion that the film was too long.", "I think the film was too long."),
    ("The shop will be closed for the duration of the holiday.", "The shop will be closed during the holiday."),
    ("We are currently in the process of updating the website.", "We are updating the website."),
    ("He has a tendency to forget names.", "He tends to forget names."),
    ("The report provides an explanation of the results.", "The report explains the results."),
    ("Each and every student must bring a pen.", "Every student must bring a pen."),
    ("In spite of the fact that it was cold, they swam in the lake.", "Although it was cold, they swam in the lake."),
    ("The final outcome of the vote was a surprise.", "The outcome of the vote was a surprise."),
    ("Our team made an improvement to the design.", "Our team improved the design."),
    ("She gave an answer to the question in a quick manner.", "She answered the question quickly."),
    ("There are many people who enjoy walking in the park.", "Many people enjoy walking in the park."),
    ("The children were in a state of excitement.", "The children were excited."),
]

# Grammar: subject-verb agreement. Human subjects with everyday activities, so every pairing makes sense.
SINGULAR_SUBJECTS = ["My brother", "She", "He", "Our neighbor", "The teacher", "My aunt", "The doctor", "Anna",
                     "Leo", "The old man", "My cousin", "The new student"]
PLURAL_SUBJECTS = ["They", "My parents", "The students", "We", "Our cousins", "The twins", "You"]
ACTIVITIES = [("walk", "to work every morning"), ("drink", "coffee after lunch"), ("play", "the piano on Sundays"),
              ("watch", "the news every night"), ("cook", "dinner for the whole family"),
              ("go", "to the gym twice a week"), ("wash", "the car on Saturdays"),
              ("teach", "math at the local school"), ("live", "near the river"), ("take", "the bus to the city"),
              ("fix", "old radios as a hobby"), ("study", "French in the evening"), ("write", "letters to old friends"),
              ("carry", "a small umbrella everywhere"), ("catch", "the early train"), ("wear", "a blue jacket"),
              ("speak", "three languages"), ("have", "two cats"), ("grow", "tomatoes in the garden")]

# Grammar: a/an. (sentence with {} for the article, the word right after it, which decides the article)
ARTICLE_SENTENCES = [
    ("She ate {} apple after lunch.", "apple"), ("We saw {} elephant at the zoo.", "elephant"),
    ("He is reading {} interesting book.", "interesting"), ("I need {} umbrella today.", "umbrella"),
    ("There is {} owl in the old barn.", "owl"), ("She has {} idea for the project.", "idea"),
    ("My uncle drives {} old truck.", "old"), ("He found {} egg in the nest.", "egg"),
    ("They live on {} island.", "island"), ("Please hand me {} orange.", "orange"),
    ("It was {} easy test.", "easy"), ("I bought {} new lamp.", "new"), ("She adopted {} cat.", "cat"),
    ("He wrote {} long letter.", "long"), ("We stayed in {} small hotel.", "small"),
    ("There is {} ant on the table.", "ant"), ("She plays {} instrument in the band.", "instrument"),
    ("He ordered {} sandwich.", "sandwich"), ("I saw {} rabbit in the field.", "rabbit"),
    ("That was {} amazing game.", "amazing"), ("My sister is {} engineer.", "engineer"),
    ("Her friend is {} artist.", "artist"), ("We need {} envelope for this card.", "envelope"),
    ("My friend has {} dog.", "dog"), ("She wore {} yellow dress.", "yellow"),
    ("He told us {} funny story.", "funny"), ("They planted {} oak tree.", "oak"),
]

# Grammar: irregular past tense. (wrong past form, right past form, rest of the sentence)
PAST_ERRORS = [
    ("goed", "went", "to the beach"), ("eated", "ate", "a big breakfast"), ("buyed", "bought", "a new hat"),
    ("bringed", "brought", "snacks to the party"), ("catched", "caught", "the last bus"),
    ("writed", "wrote", "a long email"), ("taked", "took", "many photos"), ("drinked", "drank", "too much coffee"),
    ("swimmed", "swam", "in the lake"), ("teached", "taught", "my sister to ride a bike"),
    ("thinked", "thought", "about the problem for hours"), ("runned", "ran", "five kilometers"),
    ("sleeped", "slept", "for ten hours"), ("finded", "found", "an old diary in the attic"),
    ("maked", "made", "pancakes for everyone"), ("seen", "saw", "a shooting star"),
    ("speaked", "spoke", "to the manager"), ("feeled", "felt", "very tired after the trip"),
    ("gived", "gave", "a present to the host"), ("knowed", "knew", "the answer"), ("leaved", "left", "work early"),
    ("forgetted", "forgot", "the keys at home"), ("choosed", "chose", "the red bicycle"),
    ("builded", "built", "a sandcastle"), ("drawed", "drew", "a map of the town"),
    ("flied", "flew", "to the coast"), ("throwed", "threw", "the ball over the fence"),
]
PAST_SUBJECTS = ["Yesterday I", "Last week we", "Last night my friend", "On Monday they", "Last summer my family"]

# Grammar: other common mistakes. (wrong, right)
GRAMMAR_MISC = [
    ("Their going to the park later.", "They're going to the park later."),
    ("I put the book over their.", "I put the book over there."),
    ("Me and Sara went to the cinema.", "Sara and I went to the cinema."),
    ("I don't have no time today.", "I don't have any time today."),
    ("She is more taller than her brother.", "She is taller than her brother."),
    ("He don't like spinach.", "He doesn't like spinach."),
    ("There is many books on the shelf.", "There are many books on the shelf."),
    ("Its raining again.", "It's raining again."),
    ("The dog wagged it's tail.", "The dog wagged its tail."),
    ("Your the best player on the team.", "You're the best player on the team."),
    ("I could of finished earlier.", "I could have finished earlier."),
    ("We was at home all day.", "We were at home all day."),
    ("She has went to the store.", "She has gone to the store."),
    ("This is the most cheapest option.", "This is the cheapest option."),
    ("He runs more faster than his friend.", "He runs faster than his friend."),
    ("I am agree with you.", "I agree with you."),
    ("Everyone have finished the test.", "Everyone has finished the test."),
    ("Less people came than we expected.", "Fewer people came than we expected."),
    ("She didn't went to school today.", "She didn't go to school today."),
    ("Between you and I, the plan is weak.", "Between you and me, the plan is weak."),
    ("The informations are on the website.", "The information is on the website."),
    ("I have been living here since five years.", "I have been living here for five years."),
    ("He is married with a doctor.", "He is married to a doctor."),
    ("Can you borrow me your pen?", "Can you lend me your pen?"),
    ("I look forward to hear from you.", "I look forward to hearing from you."),
    ("The childrens are playing outside.", "The children are playing outside."),
    ("Does she likes chocolate?", "Does she like chocolate?"),
    ("I seen that movie twice.", "I have seen that movie twice."),
    ("The team have win the final.", "The team has won the final."),
    ("Whose coming to dinner tonight?", "Who's coming to dinner tonight?"),
]

# noun -> plural. Regular and irregular nouns; all certain.
PLURALS = {
    "cat": "cats", "book": "books", "child": "children", "mouse": "mice", "goose": "geese", "tooth": "teeth",
    "foot": "feet", "man": "men", "woman": "women", "person": "people", "sheep": "sheep", "deer": "deer",
    "ox": "oxen", "leaf": "leaves", "knife": "knives", "wife": "wives", "wolf": "wolves", "half": "halves",
    "loaf": "loaves", "shelf": "shelves", "box": "boxes", "bus": "buses", "fox": "foxes", "watch": "watches",
    "church": "churches", "dish": "dishes", "brush": "brushes", "city": "cities", "baby": "babies",
    "lady": "ladies", "story": "stories", "party": "parties", "day": "days", "key": "keys", "toy": "toys",
    "boy": "boys", "potato": "potatoes", "tomato": "tomatoes", "hero": "heroes", "echo": "echoes",
    "photo": "photos", "piano": "pianos", "radio": "radios", "zoo": "zoos", "roof": "roofs", "chief": "chiefs",
    "crisis": "crises", "analysis": "analyses", "thesis": "theses", "phenomenon": "phenomena",
    "criterion": "criteria", "louse": "lice", "glass": "glasses", "class": "classes", "wish": "wishes",
    "cherry": "cherries", "monkey": "monkeys", "valley": "valleys", "tree": "trees", "house": "houses",
}
# Countable things that fit "There are three ___ in the picture." (not "sheep": its plural is the same word)
PICTURE_NOUNS = ["cat", "child", "mouse", "goose", "man", "woman", "person", "ox", "leaf",
                 "knife", "wolf", "loaf", "box", "bus", "fox", "watch", "church", "baby", "lady", "key", "toy",
                 "boy", "potato", "tomato", "piano", "glass", "cherry", "monkey", "tree", "house", "book"]
NUMBER_WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]

# (country, capital, needs "the")
CAPITALS = [
    ("France", "Paris", False), ("Germany", "Berlin", False), ("Italy", "Rome", False), ("Spain", "Madrid", False),
    ("Portugal", "Lisbon", False), ("Japan", "Tokyo", False), ("China", "Beijing", False),
    ("India", "New Delhi", False), ("Canada", "Ottawa", False), ("Australia", "Canberra", False),
    ("Brazil", "Brasília", False), ("Argentina", "Buenos Aires", False), ("Mexico", "Mexico City", False),
    ("Egypt", "Cairo", False), ("Kenya", "Nairobi", False), ("Russia", "Moscow", False),
    ("United Kingdom", "London", True), ("Ireland", "Dublin", False), ("Norway", "Oslo", False),
    ("Sweden", "Stockholm", False), ("Finland", "Helsinki", False), ("Denmark", "Copenhagen", False),
    ("Poland", "Warsaw", False), ("Greece", "Athens", False), ("Belgium", "Brussels", False),
    ("Austria", "Vienna", False), ("Hungary", "Budapest", False), ("Czech Republic", "Prague", True),
    ("Peru", "Lima", False), ("Chile", "Santiago", False), ("Colombia", "Bogotá", False),
    ("South Korea", "Seoul", False), ("Thailand", "Bangkok", False), ("Vietnam", "Hanoi", False),
    ("Nigeria", "Abuja", False), ("Morocco", "Rabat", False), ("Iceland", "Reykjavík", False),
    ("New Zealand", "Wellington", False), ("Cuba", "Havana", False), ("Philippines", "Manila", True),
    ("Saudi Arabia", "Riyadh", False), ("Iran", "Tehran", False), ("Ghana", "Accra", False),
    ("Ethiopia", "Addis Ababa", False), ("Ukraine", "Kyiv", False), ("Romania", "Bucharest", False),
    ("Bulgaria", "Sofia", False), ("Croatia", "Zagreb", False), ("Serbia", "Belgrade", False),
    ("Pakistan", "Islamabad", False), ("Bangladesh", "Dhaka", False), ("Nepal", "Kathmandu", False),
    ("Venezuela", "Caracas", False), ("Ecuador", "Quito", False), ("Uruguay", "Montevideo", False),
    ("Jamaica", "Kingston", False), ("Senegal", "Dakar", False), ("Estonia", "Tallinn", False),
    ("Latvia", "Riga", False), ("Lithuania", "Vilnius", False), ("Slovakia", "Bratislava", False),
    ("Slovenia", "Ljubljana", False),
]

PLANETS = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]  # in order from the Sun
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]
PLANET_FACTS = [  # (question, answer)
    ("Which planet is the largest in our Solar System?", "Jupiter is the largest planet in our Solar System."),
    ("Which planet is the smallest in our Solar System?", "Mercury is the smallest planet in our Solar System."),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet."),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun."),
    ("Which planet is farthest from the Sun?", "Neptune is the planet farthest from the Sun."),
    ("How many planets are in our Solar System?", "There are eight planets in our Solar System."),
    ("Which planet do we live on?", "We live on Earth, the third planet from the Sun."),
    ("Which planet is famous for its bright rings?", "Saturn is the planet famous for its bright rings."),
    ("Which planet has the hottest surface?", "Venus has the hottest surface of any planet."),
    ("Is Pluto a planet?", "No. Since 2006, Pluto has been classified as a dwarf planet."),
    ("Which planets are the gas giants?", "The gas giants are Jupiter and Saturn."),
    ("Which planets are the ice giants?", "The ice giants are Uranus and Neptune."),
    ("Between which two planets is the main asteroid belt?", "The main asteroid belt lies between Mars and Jupiter."),
    ("What star do the planets of our Solar System orbit?", "They orbit the Sun."),
    ("Which planet spins on its side, tilted almost 90 degrees?", "Uranus spins on its side."),
    ("Which planets are closer to the Sun than Earth?", "Mercury and Venus are closer to the Sun than Earth."),
]

# (element, symbol, atomic number)
ELEMENTS = [
    ("hydrogen", "H", 1), ("helium", "He", 2), ("lithium", "Li", 3), ("beryllium", "Be", 4), ("boron", "B", 5),
    ("carbon", "C", 6), ("nitrogen", "N", 7), ("oxygen", "O", 8), ("fluorine", "F", 9), ("neon", "Ne", 10),
    ("sodium", "Na", 11), ("magnesium", "Mg", 12), ("aluminum", "Al", 13), ("silicon", "Si", 14),
    ("phosphorus", "P", 15), ("sulfur", "S", 16), ("chlorine", "Cl", 17), ("argon", "Ar", 18),
    ("potassium", "K", 19), ("calcium", "Ca", 20), ("titanium", "Ti", 22), ("chromium", "Cr", 24),
    ("manganese", "Mn", 25), ("iron", "Fe", 26), ("cobalt", "Co", 27), ("nickel", "Ni", 28), ("copper", "Cu", 29),
    ("zinc", "Zn", 30), ("silver", "Ag", 47), ("tin", "Sn", 50), ("iodine", "I", 53), ("platinum", "Pt", 78),
    ("gold", "Au", 79), ("mercury", "Hg", 80), ("lead", "Pb", 82), ("uranium", "U", 92),
]

# Antonym pairs where each word has one clear opposite, so both directions are asked.
ANTONYMS = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("up", "down"), ("early", "late"),
    ("full", "empty"), ("strong", "weak"), ("rich", "poor"), ("high", "low"), ("wet", "dry"), ("day", "night"),
    ("win", "lose"), ("push", "pull"), ("buy", "sell"), ("love", "hate"), ("true", "false"), ("clean", "dirty"),
    ("loud", "quiet"), ("thick", "thin"), ("wide", "narrow"), ("deep", "shallow"), ("brave", "cowardly"),
    ("inside", "outside"), ("above", "below"), ("first", "last"), ("always", "never"), ("arrive", "depart"),
    ("increase", "decrease"), ("remember", "forget"), ("friend", "enemy"), ("north", "south"), ("east", "west"),
    ("question", "answer"), ("entrance", "exit"), ("ancient", "modern"), ("victory", "defeat"),
    ("cheap", "expensive"), ("safe", "dangerous"), ("polite", "rude"), ("smooth", "rough"),
    ("visible", "invisible"), ("possible", "impossible"), ("include", "exclude"), ("top", "bottom"),
    ("asleep", "awake"), ("maximum", "minimum"), ("accept", "refuse"), ("heavy", "light"), ("long", "short"),
]
# "light" and "short" have a second opposite (dark, tall), so those two are only asked one way.
ONE_WAY_ANTONYMS = {"light", "short"}

# (word, synonym)
SYNONYMS = [
    ("happy", "glad"), ("big", "large"), ("fast", "quick"), ("begin", "start"), ("finish", "end"),
    ("smart", "clever"), ("buy", "purchase"), ("help", "assist"), ("hard", "difficult"), ("easy", "simple"),
    ("shut", "close"), ("rich", "wealthy"), ("tired", "weary"), ("gift", "present"), ("quiet", "silent"),
    ("mistake", "error"), ("jump", "leap"), ("huge", "enormous"), ("scared", "afraid"), ("funny", "amusing"),
    ("pretty", "beautiful"), ("shout", "yell"), ("talk", "speak"), ("answer", "reply"), ("hurry", "rush"),
    ("choose", "select"), ("brave", "courageous"), ("sick", "ill"), ("fix", "repair"), ("couch", "sofa"),
    ("job", "occupation"), ("tiny", "little"), ("angry", "furious"), ("idea", "thought"), ("road", "street"),
    ("story", "tale"), ("damp", "moist"), ("ask", "inquire"), ("fall", "drop"), ("cold", "chilly"),
]

# Categories for odd-one-out: (singular, plural, members). Members never belong to two categories
# ("orange" is left out because it is both a fruit and a color).
CATEGORIES = [
    ("fruit", "fruits", ["apple", "banana", "cherry", "grape", "mango", "pear", "peach", "plum", "strawberry",
                         "melon"]),
    ("vegetable", "vegetables", ["carrot", "potato", "onion", "cabbage", "lettuce", "spinach", "broccoli", "celery"]),
    ("color", "colors", ["red", "blue", "green", "yellow", "purple", "pink", "brown", "gray"]),
    ("vehicle", "vehicles", ["car", "bus", "bicycle", "truck", "train", "motorcycle", "van", "tractor"]),
    ("musical instrument", "musical instruments", ["piano", "violin", "guitar", "flute", "drum", "trumpet", "cello",
                                                   "harp"]),
    ("piece of clothing", "pieces of clothing", ["shirt", "jacket", "sock", "scarf", "hat", "glove", "skirt", "coat"]),
    ("tool", "tools", ["hammer", "saw", "wrench", "screwdriver", "drill", "chisel", "shovel", "rake"]),
    ("planet", "planets", PLANETS),
    ("country", "countries", ["France", "Japan", "Brazil", "Canada", "Kenya", "Egypt", "Norway", "Peru"]),
    ("mammal", "mammals", ["dog", "cat", "horse", "rabbit", "tiger", "elephant", "giraffe", "zebra", "wolf", "bear"]),
    ("bird", "birds", ["sparrow", "eagle", "owl", "parrot", "penguin", "robin", "swan", "pigeon"]),
    ("month", "months", ["January", "March", "April", "June", "August", "October", "November", "December"]),
    ("day of the week", "days of the week", ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                                             "Sunday"]),
    ("shape", "shapes", ["circle", "square", "triangle", "rectangle", "oval", "hexagon", "pentagon"]),
    ("sport", "sports", ["tennis", "football", "basketball", "golf", "hockey", "volleyball", "rugby", "baseball"]),
]

KINGDOM = {
    "animal": ["dog", "horse", "cow", "goat", "lion", "tiger", "eagle", "owl", "frog", "snake", "shark", "whale",
               "dolphin", "bee", "ant", "spider", "butterfly", "rabbit", "elephant", "giraffe", "penguin",
               "octopus", "turtle", "camel", "squirrel", "bat", "crab", "hedgehog"],
    "plant": ["oak", "rose", "tulip", "sunflower", "cactus", "fern", "daisy", "pine", "maple", "lily", "willow",
              "birch", "orchid", "poppy", "apple tree", "dandelion", "palm tree", "daffodil", "cedar", "lotus"],
    "object": ["chair", "table", "spoon", "lamp", "pencil", "hammer", "cup", "key", "phone", "book", "shoe",
               "clock", "bottle", "umbrella", "ladder", "mirror", "pillow", "backpack", "wallet", "candle",
               "kettle", "envelope", "bicycle", "towel"],
}

FIRST_NAMES = ["Anna", "Leo", "Maria", "Tom", "Sara", "David", "Emma", "Omar", "Lucy", "Ben", "Nina", "Jonas",
               "Priya", "Carlos", "Mei", "Hannah", "Felix", "Aisha", "Ivan", "Grace", "Marco", "Zoe", "Ravi",
               "Elena", "Sam", "Julia", "Kenji", "Fatima", "Oscar", "Lena"]
LAST_NAMES = ["Smith", "Garcia", "Chen", "Novak", "Brown", "Okafor", "Rossi", "Kim", "Müller", "Silva", "Patel",
              "Jensen", "Lopez", "Tanaka", "Walker", "Ahmed", "Costa", "Berg", "Evans", "Moreau"]

COUNTABLE_ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "cookies", "stamps", "coins", "shells",
                   "cards", "balloons", "crayons"]

# Positive and negative remarks: a subject plus a predicate (any pairing reads naturally), and a few whole sentences.
REVIEW_SUBJECTS = ["The hotel", "This phone", "The new café", "The movie", "The concert", "The customer service",
                   "This book", "The coffee here", "The delivery", "This game", "The museum tour",
                   "The training course",
                   "The pizza", "The hiking trail", "The app", "The hair salon", "Our holiday", "The new album"]
POSITIVE_PREDICATES = ["was absolutely wonderful", "exceeded all my expectations", "made my whole day better",
                       "was worth every penny", "was a real pleasure", "left me smiling",
                       "was fantastic from start to finish",
                       "is something I would happily recommend", "turned out even better than I hoped",
                       "was a lovely surprise", "impressed everyone in our group", "was simply perfect"]
NEGATIVE_PREDICATES = ["was a complete waste of money", "was a big disappointment", "left me frustrated",
                       "was much worse than I expected", "is something I would not recommend",
                       "made the whole evening unpleasant", "was boring from start to finish",
                       "fell far below my expectations", "was a total letdown", "annoyed everyone in our group",
                       "was simply awful", "made me regret coming"]
POSITIVE_SENTENCES = [
    "I can't wait to come back here next summer!", "What a beautiful morning, I feel great.",
    "The staff were kind and helped us right away.", "My new shoes are so comfortable that I forget I'm wearing them.",
    "We laughed the whole evening; it was the best party in years.", "Thank you, this gift is exactly what I wanted!",
    "The view from the top was breathtaking.", "I finally passed my driving test, and I'm thrilled.",
    "Our garden looks lovely now that the flowers are out.", "The teacher explained everything so clearly.",
    "This soup is delicious and warms me up.", "I love how quiet and peaceful this village is.",
]
NEGATIVE_SENTENCES = [
    "Never again. The food was cold and nobody cared.", "I waited two hours and the package never arrived.",
    "The room smelled of smoke and the bed was broken.", "My phone stopped working after one week.",
    "The instructions were confusing and parts were missing.", "I'm so tired of this endless rain.",
    "The seats were uncomfortable and the sound was terrible.", "He was rude to everyone at the table.",
    "I lost my wallet and missed the last train.", "The tickets were expensive and the show was dull.",
    "This laptop is slow and keeps crashing.", "The noise from the street kept me awake all night.",
]

# Palindromes for the letters tasks
PALINDROMES = ["level", "radar", "kayak", "civic", "rotor", "refer", "noon", "madam", "racecar", "stats", "deed",
               "tenet", "solos", "minim", "sagas"]


def spelling_vocabulary() -> list[str]:
    """Plain lowercase words gathered from the lists above, in a fixed order, without repeats."""
    words = []
    sources = [[m for _, _, members in CATEGORIES for m in members], list(PLURALS), list(VERBS),
               [w for pair in ANTONYMS for w in pair], [w for pair in SYNONYMS for w in pair],
               [w for ws in KINGDOM.values() for w in ws]]
    for source in sources:
        for word in source:
            if word.isalpha() and word.islower() and 3 <= len(word) <= 11 and word not in words:
                words.append(word)
    return words


# ---------------------------------------------------------------------------------------------------------
# Task families. Each adds its records to the builder; the tag "family: task" is used only for the counts.
# ---------------------------------------------------------------------------------------------------------

def voice_sentence(entry: tuple, passive: bool, past: bool) -> str:
    agent, agent_plural, verb, obj, obj_plural = entry
    past_form, participle = VERBS[verb]
    if passive:
        be = ("were" if obj_plural else "was") if past else ("are" if obj_plural else "is")
        return f"{cap(obj)} {be} {participle} by {agent}."
    if past:
        verb_form = past_form
    else:
        verb_form = verb if agent_plural else third_person(verb)
    return f"{cap(agent)} {verb_form} {obj}."


def add_rewriting(b: Builder) -> None:
    to_passive = [("Rewrite this sentence in the passive voice.", "{s}"),
                  ("Change the sentence below from active to passive voice.", "{s}"),
                  ("Put this sentence into the passive voice.", "{s}"),
                  ("Rewrite \"{s}\" in the passive voice.", "")]
    to_active = [("Rewrite this sentence in the active voice.", "{s}"),
                 ("Change the sentence below from passive to active voice.", "{s}"),
                 ("Make this sentence active instead of passive.", "{s}"),
                 ("Turn this passive sentence into an active one.", "{s}")]
    for entry in VOICE_SENTENCES:
        for passive_target in (True, False):
            past = b.rng.random() < 0.6
            source = voice_sentence(entry, not passive_target, past)
            target = voice_sentence(entry, passive_target, past)
            instruction, input_text = pick(b.rng, to_passive if passive_target else to_active, s=source)
            b.add("rewriting: active/passive voice", record(instruction, input_text, target))

    to_formal = [("Rewrite this sentence in a more formal tone.", "{s}"),
                 ("Make the following sentence sound formal.", "{s}"),
                 ("Rewrite this message so it suits a business email.", "{s}"),
                 ("Change this informal sentence into formal English.", "{s}")]
    to_informal = [("Rewrite this sentence in a casual, friendly tone.", "{s}"),
                   ("Make the following sentence sound informal.", "{s}"),
                   ("Say this more casually.", "{s}"),
                   ("Rewrite this the way you would say it to a friend.", "{s}")]
    for informal, formal in FORMALITY_PAIRS:
        b.add("rewriting: formal/informal", record(*pick(b.rng, to_formal, s=informal), formal))
        b.add("rewriting: formal/informal", record(*pick(b.rng, to_informal, s=formal), informal))

    simplify = [("Simplify this sentence.", "{s}"), ("Rewrite the sentence below in simpler words.", "{s}"),
                ("Make this sentence shorter and clearer.", "{s}"),
                ("Remove the unnecessary words from this sentence.", "{s}"),
                ("Rewrite this sentence in plain English.", "{s}")]
    for wordy, simple in SIMPLIFY_PAIRS:
        b.add("rewriting: simplify", record(*pick(b.rng, simplify, s=wordy), simple))


GRAMMAR_TEMPLATES = ["Correct the grammar in this sentence.", "Fix the grammatical error in the following sentence.",
                     "Rewrite this sentence with correct grammar.", "Find and fix the mistake in this sentence.",
                     "Proofread this sentence and correct it.",
                     "Is this sentence grammatically correct? If not, correct it."]


def grammar_record(rng: random.Random, wrong: str, right: str) -> dict:
    instruction = rng.choice(GRAMMAR_TEMPLATES)
    if wrong == right:
        return record(instruction, wrong, "The sentence is already correct.")
    if instruction.startswith("Is this"):
        return record(instruction, wrong, f"No. The correct sentence is: {right}")
    return record(instruction, wrong, right)


def add_grammar(b: Builder) -> None:
    rng = b.rng
    correct_examples = []

    def agreement(rng: random.Random) -> dict:
        verb, rest = rng.choice(ACTIVITIES)
        if rng.random() < 0.6:
            subject = rng.choice(SINGULAR_SUBJECTS)
            wrong, right = f"{subject} {verb} {rest}.", f"{subject} {third_person(verb)} {rest}."
        else:
            subject = rng.choice(PLURAL_SUBJECTS)
            wrong, right = f"{subject} {third_person(verb)} {rest}.", f"{subject} {verb} {rest}."
        correct_examples.append(right)
        return grammar_record(rng, wrong, right)
    b.fill("grammar: subject-verb agreement", 45, agreement)

    for sentence, word in ARTICLE_SENTENCES:
        right_article = article(word)
        wrong_article = "a" if right_article == "an" else "an"
        right = sentence.format(right_article)
        correct_examples.append(right)
        b.add("grammar: a/an", grammar_record(rng, sentence.format(wrong_article), right))

    for wrong_past, right_past, rest in PAST_ERRORS:
        subject = rng.choice(PAST_SUBJECTS)
        right = f"{subject} {right_past} {rest}."
        correct_examples.append(right)
        b.add("grammar: irregular past tense", grammar_record(rng, f"{subject} {wrong_past} {rest}.", right))

    def plural_after_number(rng: random.Random) -> dict:
        noun, number = rng.choice(PICTURE_NOUNS), rng.choice(NUMBER_WORDS)
        frame = rng.choice(["There are {n} {x} in the picture.", "I counted {n} {x} in the photo.",
                            "We could see {n} {x} from the window."])
        return grammar_record(rng, frame.format(n=number, x=noun), frame.format(n=number, x=PLURALS[noun]))
    b.fill("grammar: plural after a number", 25, plural_after_number)

    for wrong, right in GRAMMAR_MISC:
        b.add("grammar: common mistakes", grammar_record(rng, wrong, right))

    # Some correct sentences, so the model learns that not every sentence needs changing.
    for sentence in rng.sample(list(dict.fromkeys(correct_examples)), 15):
        instruction = rng.choice(["Correct the grammar in this sentence.", "Proofread this sentence and correct it.",
                                  "Is this sentence grammatically correct? If not, correct it."])
        b.try_add("grammar: already correct", record(instruction, sentence, "The sentence is already correct."))


# (from singular, from plural, to singular, to plural, factor, values). Factors are exact by definition:
# 1 mile = 1.609344 km, 1 pound = 0.45359237 kg, 1 foot = 0.3048 m.
MILE, POUND, FOOT = Fraction("1.609344"), Fraction("0.45359237"), Fraction("0.3048")
CONVERSIONS = [
    ("kilometer", "kilometers", "mile", "miles", 1 / MILE, lambda r: r.randint(1, 100)),
    ("mile", "miles", "kilometer", "kilometers", MILE, lambda r: r.randint(1, 100)),
    ("kilogram", "kilograms", "pound", "pounds", 1 / POUND, lambda r: r.randint(1, 120)),
    ("pound", "pounds", "kilogram", "kilograms", POUND, lambda r: r.randint(1, 250)),
    ("meter", "meters", "foot", "feet", 1 / FOOT, lambda r: r.randint(1, 100)),
    ("foot", "feet", "meter", "meters", FOOT, lambda r: r.randint(1, 100)),
    ("foot", "feet", "inch", "inches", Fraction(12), lambda r: r.randint(1, 12)),
    ("inch", "inches", "foot", "feet", Fraction(1, 12), lambda r: r.randrange(6, 150, 3)),
    ("meter", "meters", "centimeter", "centimeters", Fraction(100), lambda r: Fraction(r.randint(1, 300), 10)),
    ("centimeter", "centimeters", "meter", "meters", Fraction(1, 100), lambda r: r.randint(5, 900)),
    ("kilogram", "kilograms", "gram", "grams", Fraction(1000), lambda r: Fraction(r.randint(1, 100), 10)),
    ("gram", "grams", "kilogram", "kilograms", Fraction(1, 1000), lambda r: r.randrange(50, 5000, 50)),
    ("liter", "liters", "milliliter", "milliliters", Fraction(1000), lambda r: Fraction(r.randint(1, 40), 4)),
    ("milliliter", "milliliters", "liter", "liters", Fraction(1, 1000), lambda r: r.randrange(100, 5000, 50)),
    ("hour", "hours", "minute", "minutes", Fraction(60), lambda r: Fraction(r.randint(1, 48), 2)),
    ("minute", "minutes", "hour", "hours", Fraction(1, 60), lambda r: r.randrange(15, 600, 5)),
    ("minute", "minutes", "second", "seconds", Fraction(60), lambda r: r.randint(1, 60)),
    ("second", "seconds", "minute", "minutes", Fraction(1, 60), lambda r: r.randrange(30, 1200, 10)),
    ("day", "days", "hour", "hours", Fraction(24), lambda r: r.randint(1, 14)),
    ("hour", "hours", "day", "days", Fraction(1, 24), lambda r: r.randrange(12, 240, 6)),
    ("week", "weeks", "day", "days", Fraction(7), lambda r: r.randint(1, 20)),
]
CONVERSION_TEMPLATES = [("Convert {v} {u} to {t}.", ""), ("How many {t} are in {v} {u}?", ""),
                        ("What is {v} {u} in {t}?", ""), ("Convert the following to {t}.", "{v} {u}"),
                        ("Express {v} {u} in {t}.", ""), ("Change this measurement to {t}.", "{v} {u}")]


def conversion_answer(conv: tuple, value: Fraction) -> str:
    """The answer sentence; minutes and seconds also get the "1 hour and 40 minutes" form people use."""
    from_one, from_many, to_one, to_many, factor, _ = conv
    result = value * factor
    result_text, exact = fmt(result)
    source = f"{fmt(value)[0]} {plural_s(value, from_one, from_many)}"
    target = f"{result_text} {plural_s(result, to_one, to_many)}" if exact else f"about {result_text} {to_many}"
    if (from_one, to_one) in (("minute", "hour"), ("second", "minute")) and result > 1 and result.denominator != 1:
        whole, rest = divmod(int(value), 60)
        mixed = f"{whole} {plural_s(whole, to_one, to_many)} and {rest} {plural_s(rest, from_one, from_many)}"
        return f"{source} is {mixed}, or {target}."
    return f"{source} is {target}."


def add_conversions(b: Builder) -> None:
    for conv in CONVERSIONS:
        def make(rng: random.Random, conv=conv) -> dict:
            value = Fraction(conv[5](rng))
            value_text, _ = fmt(value)
            unit = plural_s(value, conv[0], conv[1])
            instruction, input_text = pick(rng, CONVERSION_TEMPLATES, v=value_text, u=unit, t=conv[3])
            return record(instruction, input_text, conversion_answer(conv, value))
        b.fill("conversion: units", 8, make)

    to_f = [("Convert {v}°C to Fahrenheit.", ""), ("What is {v} degrees Celsius in Fahrenheit?", ""),
            ("Convert this temperature to Fahrenheit.", "{v}°C"),
            ("If it is {v}°C outside, what is the temperature in Fahrenheit?", "")]
    to_c = [("Convert {v}°F to Celsius.", ""), ("What is {v} degrees Fahrenheit in Celsius?", ""),
            ("Convert this temperature to Celsius.", "{v}°F"),
            ("The thermometer shows {v}°F. What is that in Celsius?", "")]

    def celsius_to_fahrenheit(rng: random.Random) -> dict:
        celsius = rng.randint(-30, 100)
        fahrenheit, exact = fmt(Fraction(celsius) * Fraction(9, 5) + 32)
        return record(*pick(rng, to_f, v=celsius), f"{celsius}°C is {'' if exact else 'about '}{fahrenheit}°F.")

    def fahrenheit_to_celsius(rng: random.Random) -> dict:
        fahrenheit = rng.randint(-20, 212)
        celsius, exact = fmt((Fraction(fahrenheit) - 32) * Fraction(5, 9))
        return record(*pick(rng, to_c, v=fahrenheit), f"{fahrenheit}°F is {'' if exact else 'about '}{celsius}°C.")

    b.fill("conversion: temperature", 16, celsius_to_fahrenheit)
    b.fill("conversion: temperature", 16, fahrenheit_to_celsius)


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))


def add_classification(b: Builder) -> None:
    rng = b.rng
    sentiment_templates = [("Classify the sentiment of this sentence as positive or negative.", "{s}"),
                           ("Is the following review positive or negative?", "{s}"),
                           ("What is the sentiment of this text?", "{s}"),
                           ("Decide whether the feeling in this sentence is positive or negative.", "{s}"),
                           ("Is this sentence positive or negative? \"{s}\"", "")]
    for sentence in POSITIVE_SENTENCES:
        b.add("classification: sentiment", record(*pick(rng, sentiment_templates, s=sentence),
                                                  "The sentiment is positive."))
    for sentence in NEGATIVE_SENTENCES:
        b.add("classification: sentiment", record(*pick(rng, sentiment_templates, s=sentence),
                                                  "The sentiment is negative."))

    def review(rng: random.Random) -> dict:
        positive = rng.random() < 0.5
        predicate = rng.choice(POSITIVE_PREDICATES if positive else NEGATIVE_PREDICATES)
        sentence = f"{rng.choice(REVIEW_SUBJECTS)} {predicate}."
        label = "positive" if positive else "negative"
        return record(*pick(rng, sentiment_templates, s=sentence), f"The sentiment is {label}.")
    b.fill("classification: sentiment", 46, review)

    odd_templates = [("Which word is the odd one out?", "{items}"),
                     ("Find the word that does not belong in this group.", "{items}"),
                     ("One of these words does not fit with the others. Which one is it?", "{items}"),
                     ("Which of these does not belong: {items}?", "")]

    def odd_one_out(rng: random.Random) -> dict:
        group, other = rng.sample(CATEGORIES, 2)
        items = rng.sample(group[2], 3) + [rng.choice(other[2])]
        odd = items[-1]
        rng.shuffle(items)
        answer = (f"The odd one out is {q(odd)}: it is {article(other[0])} {other[0]}, "
                  f"while the others are {group[1]}.")
        return record(*pick(rng, odd_templates, items=", ".join(items)), answer)
    b.fill("classification: odd one out", 45, odd_one_out)

    kingdom_single = [("Is {a} {x} an animal, a plant, or an object?", ""),
                      ("Classify the following as an animal, a plant, or an object.", "{x}"),
                      ("Tell me whether this is an animal, a plant, or an object.", "{x}"),
                      ("Animal, plant, or object: which one is {a} {x}?", "")]
    for kind, words in KINGDOM.items():
        for word in words:
            answer = f"{cap(article(word))} {word} is {article(kind)} {kind}."
            b.add("classification: animal/plant/object",
                  record(*pick(rng, kingdom_single, a=article(word), x=word), answer))

    labelled = [(w, kind) for kind, words in KINGDOM.items() for w in words]

    def kingdom_list(rng: random.Random) -> dict:
        chosen = rng.sample(labelled, rng.randint(3, 5))
        instruction = rng.choice(["Label each word as an animal, a plant, or an object.",
                                  "Sort these into animals, plants, and objects.",
                                  "For each item, say whether it is an animal, a plant, or an object."])
        return record(instruction, ", ".join(w for w, _ in chosen), ", ".join(f"{w}: {k}" for w, k in chosen))
    b.fill("classification: animal/plant/object", 15, kingdom_list)

    parity_templates = [("Is {n} even or odd?", ""), ("Is the number below even or odd?", "{n}"),
                        ("Tell me if {n} is an even or an odd number.", ""),
                        ("Classify this number as even or odd.", "{n}")]

    def parity(rng: random.Random) -> dict:
        n = rng.randint(0, 999)
        return record(*pick(rng, parity_templates, n=n), f"{n} is an {'even' if n % 2 == 0 else 'odd'} number.")
    b.fill("classification: even/odd", 40, parity)

    prime_templates = [("Is {n} a prime number?", ""), ("Tell me whether {n} is prime.", ""),
                       ("Is the following number prime?", "{n}"), ("Decide if this number is prime or not.", "{n}")]
    primes = [n for n in range(2, 200) if is_prime(n)]
    composites = [n for n in range(1, 200) if not is_prime(n)]

    def prime(rng: random.Random) -> dict:
        n = rng.choice(primes) if rng.random() < 0.5 else rng.choice(composites)
        if is_prime(n):
            answer = f"Yes, {n} is a prime number."
        elif n == 1:
            answer = "No, 1 is not a prime number; a prime needs exactly two divisors."
        else:
            d = next(d for d in range(2, n) if n % d == 0)
            answer = f"No, {n} is not a prime number, because {n} = {d} × {n // d}."
        return record(*pick(rng, prime_templates, n=n), answer)
    b.fill("classification: prime", 50, prime)


def add_extraction(b: Builder) -> None:
    year_sentences = ["The old bridge was finished in {y}.", "My grandfather was born in {y}.",
                      "The school first opened its doors in {y}.", "In {y}, the town built a new library.",
                      "The photograph on the wall was taken in {y}.", "The family moved to the coast in {y}.",
                      "Our football club was founded in {y}.", "This recipe has been in the family since {y}.",
                      "The lighthouse was painted white in {y}.", "She wrote her first song in {y}."]
    year_templates = [("Extract the year from this sentence.", "{s}"), ("Which year is mentioned in the text?", "{s}"),
                      ("Find the year in the following sentence.", "{s}"),
                      ("What year does this sentence mention?", "{s}")]

    def year(rng: random.Random) -> dict:
        y = rng.randint(1800, 2023)
        sentence = rng.choice(year_sentences).format(y=y)
        return record(*pick(rng, year_templates, s=sentence), f"The year is {y}.")
    b.fill("extraction: year", 40, year)

    number_sentences = ["The farmer keeps {n} sheep on the hill.", "Our school library has {n} books about space.",
                        "The recipe calls for {n} grams of sugar.", "The train was delayed by {n} minutes.",
                        "There were {n} people at the meeting.", "The hikers walked {n} kilometers in a week.",
                        "The jar holds {n} marbles.", "The new bridge is {n} meters long."]
    number_templates = [("Extract the number from the sentence.", "{s}"), ("What number appears in this text?", "{s}"),
                        ("Find the number mentioned below.", "{s}"), ("Which number is in this sentence?", "{s}")]

    def number(rng: random.Random) -> dict:
        n = rng.randint(2, 999)
        sentence = rng.choice(number_sentences).format(n=n)
        return record(*pick(rng, number_templates, s=sentence), f"The number is {n}.")
    b.fill("extraction: number", 35, number)

    name_sentences = ["{n} fixed the old bicycle in the garage.", "The award for the best project went to {n}.",
                      "Yesterday I ran into {n} at the train station.", "Please give this envelope to {n}.",
                      "The new manager, {n}, starts on Monday.", "Our guide for the museum tour was {n}.",
                      "The letter was signed by {n}.", "I borrowed a ladder from {n} last weekend."]
    name_templates = [("Extract the person's name from the sentence.", "{s}"),
                      ("Who is mentioned in this sentence?", "{s}"),
                      ("Find the name of the person in the following text.", "{s}"),
                      ("Which person does this sentence mention?", "{s}")]

    def name(rng: random.Random) -> dict:
        full = rng.choice(FIRST_NAMES)
        if rng.random() < 0.5:
            full += " " + rng.choice(LAST_NAMES)
        sentence = rng.choice(name_sentences).format(n=full)
        return record(*pick(rng, name_templates, s=sentence), f"The name is {full}.")
    b.fill("extraction: name", 35, name)

    email_sentences = ["Please send your questions to {e}.", "You can reach our support team at {e}.",
                       "For bookings, write to {e} before Friday.", "My new work address is {e}.",
                       "Contact {e} if you lose your ticket.", "The form should be emailed to {e}."]
    email_templates = [("Extract the email address from this sentence.", "{s}"),
                       ("What is the email address in the text below?", "{s}"),
                       ("Find the email address.", "{s}"),
                       ("Pull out the email address mentioned in this message.", "{s}")]
    ascii_last_names = [n for n in LAST_NAMES if n.isascii()]

    def email(rng: random.Random) -> dict:
        first, last = rng.choice(FIRST_NAMES).lower(), rng.choice(ascii_last_names).lower()
        user = rng.choice([f"{first}.{last}", f"{first}_{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}"])
        # example.com/org/net are reserved for examples, so no real person's address is ever generated.
        address = f"{user}@{rng.choice(['example.com', 'example.org', 'example.net', 'mail.example.com'])}"
        sentence = rng.choice(email_sentences).format(e=address)
        return record(*pick(rng, email_templates, s=sentence), f"The email address is {address}.")
    b.fill("extraction: email", 35, email)


def the(country: str, needs_the: bool) -> str:
    return f"the {country}" if needs_the else country


def add_facts(b: Builder) -> None:
    rng = b.rng
    capital_templates = [("What is the capital of {c}?", ""), ("Name the capital city of {c}.", ""),
                         ("Which city is the capital of {c}?", ""),
                         ("Give the capital city of this country.", "{bare}")]
    for country, capital, needs_the in CAPITALS:
        c = the(country, needs_the)
        b.add("facts: capitals", record(*pick(rng, capital_templates, c=c, bare=country),
                                        f"The capital of {c} is {capital}."))
    reverse_templates = [("Which country has {x} as its capital?", ""), ("{x} is the capital of which country?", ""),
                         ("Name the country whose capital is {x}.", "")]
    for country, capital, needs_the in rng.sample(CAPITALS, 25):
        b.add("facts: capitals", record(*pick(rng, reverse_templates, x=capital),
                                        f"{capital} is the capital of {the(country, needs_the)}."))

    for question, answer in PLANET_FACTS:
        b.add("facts: planets", record(question, "", answer))
    for i, planet in enumerate(PLANETS):
        b.add("facts: planets", record(f"Which is the {ORDINALS[i]} planet from the Sun?", "",
                                       f"{planet} is the {ORDINALS[i]} planet from the Sun."))
        b.add("facts: planets", record(rng.choice(["What is {p}'s position in order from the Sun?",
                                                   "Counting from the Sun, where is {p}?"]).format(p=planet), "",
                                       f"{planet} is the {ORDINALS[i]} planet from the Sun."))

    def closer(rng: random.Random) -> dict:
        i, j = rng.sample(range(len(PLANETS)), 2)
        answer = (f"Yes, {PLANETS[i]} is closer to the Sun than {PLANETS[j]}." if i < j
                  else f"No, {PLANETS[j]} is closer to the Sun than {PLANETS[i]}.")
        return record(f"Is {PLANETS[i]} closer to the Sun than {PLANETS[j]}?", "", answer)
    b.fill("facts: planets", 12, closer)

    symbol_templates = [("What is the chemical symbol for {e}?", ""), ("Give the chemical symbol of {e}.", ""),
                        ("Write the chemical symbol for the element below.", "{e}")]
    name_templates = [("Which element has the chemical symbol {s}?", ""),
                      ("What element does the symbol {s} stand for?", ""),
                      ("Name the element with this chemical symbol.", "{s}")]
    for element, symbol, number in ELEMENTS:
        b.add("facts: chemical elements", record(*pick(rng, symbol_templates, e=element),
                                                 f"The chemical symbol for {element} is {symbol}."))
    for element, symbol, number in rng.sample(ELEMENTS, 24):
        b.add("facts: chemical elements", record(*pick(rng, name_templates, s=symbol),
                                                 f"{symbol} is the chemical symbol for {element}."))
    for element, symbol, number in ELEMENTS[:20]:
        b.add("facts: chemical elements", record(f"What is the atomic number of {element}?", "",
                                                 f"The atomic number of {element} is {number}."))

    antonym_templates = [("What is the opposite of \"{w}\"?", ""), ("Give an antonym for \"{w}\".", ""),
                         ("Write the opposite of the word below.", "{w}"),
                         ("Name a word that means the opposite of \"{w}\".", "")]
    for first, second in ANTONYMS:
        for word, opposite in ((first, second), (second, first)):
            if word in ONE_WAY_ANTONYMS:
                continue
            b.add("facts: antonyms", record(*pick(rng, antonym_templates, w=word),
                                            f"The opposite of {q(word)} is {q(opposite)}."))

    synonym_templates = [("Give a synonym for \"{w}\".", ""), ("What is another word for \"{w}\"?", ""),
                         ("Write a word that means the same as the word below.", "{w}"),
                         ("Name a word with a similar meaning to \"{w}\".", "")]
    for word, synonym in SYNONYMS:
        b.add("facts: synonyms", record(*pick(rng, synonym_templates, w=word),
                                        f"A synonym for {q(word)} is {q(synonym)}."))

    plural_templates = [("What is the plural of \"{w}\"?", ""), ("Write the plural form of the noun below.", "{w}"),
                        ("Give the plural of \"{w}\".", ""), ("How do you say more than one \"{w}\"?", "")]
    for noun, plural in PLURALS.items():
        answer = (f"The plural of {q(noun)} is {q(plural)}." if plural != noun
                  else f"The plural of {q(noun)} is also {q(plural)}.")
        b.add("facts: plurals", record(*pick(rng, plural_templates, w=noun), answer))

    past_templates = [("What is the past tense of \"{v}\"?", ""), ("Give the past tense of the verb below.", "{v}"),
                      ("Write the simple past form of \"{v}\".", ""), ("How do you say \"{v}\" in the past tense?", "")]
    participle_templates = [("What is the past participle of \"{v}\"?", ""),
                            ("Give the past participle of the verb below.", "{v}")]
    for verb in PAST_TENSE_QUESTIONS:
        past, participle = VERBS[verb]
        answer = (f"The past tense of {q(verb)} is {q(past)}." if past != verb
                  else f"The past tense of {q(verb)} is also {q(past)}.")
        b.add("facts: past tense", record(*pick(rng, past_templates, v=verb), answer))
    for verb in rng.sample(PAST_TENSE_QUESTIONS, 30):
        participle = VERBS[verb][1]
        b.add("facts: past tense", record(*pick(rng, participle_templates, v=verb),
                                          f"The past participle of {q(verb)} is {q(participle)}."))


def add_arithmetic(b: Builder) -> None:
    add_templates = [("What is {a} + {b}?", ""), ("What is {a} plus {b}?", ""), ("Add {a} and {b}.", ""),
                     ("Find the sum of {a} and {b}.", ""), ("Calculate the sum of the two numbers.", "{a} and {b}"),
                     ("Solve the following.", "{a} + {b}"), ("Compute this expression.", "{a} + {b}")]
    sub_templates = [("What is {a} - {b}?", ""), ("What is {a} minus {b}?", ""), ("Subtract {b} from {a}.", ""),
                     ("Find the difference between {a} and {b}.", ""), ("Solve the following.", "{a} - {b}"),
                     ("Compute this expression.", "{a} - {b}")]
    mul_templates = [("What is {a} × {b}?", ""), ("What is {a} times {b}?", ""), ("Multiply {a} by {b}.", ""),
                     ("Find the product of {a} and {b}.", ""), ("Solve the following.", "{a} * {b}"),
                     ("Compute this expression.", "{a} × {b}")]
    div_templates = [("What is {a} ÷ {b}?", ""), ("What is {a} divided by {b}?", ""), ("Divide {a} by {b}.", ""),
                     ("Solve the following.", "{a} / {b}"), ("Compute this expression.", "{a} ÷ {b}")]

    def addition(rng: random.Random) -> dict:
        a, b_ = rng.randint(1, 500), rng.randint(1, 500)
        return record(*pick(rng, add_templates, a=a, b=b_), f"{a} + {b_} = {a + b_}.")

    def subtraction(rng: random.Random) -> dict:
        a, b_ = sorted((rng.randint(1, 500), rng.randint(1, 500)), reverse=True)
        return record(*pick(rng, sub_templates, a=a, b=b_), f"{a} - {b_} = {a - b_}.")

    def negative_subtraction(rng: random.Random) -> dict:
        a, b_ = rng.randint(1, 50), rng.randint(51, 120)
        return record(*pick(rng, sub_templates[:1] + sub_templates[4:], a=a, b=b_), f"{a} - {b_} = {a - b_}.")

    def multiplication(rng: random.Random) -> dict:
        a, b_ = rng.randint(2, 12), rng.randint(2, 25)
        if rng.random() < 0.5:
            a, b_ = b_, a
        return record(*pick(rng, mul_templates, a=a, b=b_), f"{a} × {b_} = {a * b_}.")

    def division(rng: random.Random) -> dict:
        b_, quotient = rng.randint(2, 12), rng.randint(2, 15)
        a = b_ * quotient
        return record(*pick(rng, div_templates, a=a, b=b_), f"{a} ÷ {b_} = {quotient}.")

    b.fill("arithmetic: addition", 45, addition)
    b.fill("arithmetic: subtraction", 30, subtraction)
    b.fill("arithmetic: subtraction", 8, negative_subtraction)
    b.fill("arithmetic: multiplication", 40, multiplication)
    b.fill("arithmetic: division", 20, division)

    def word_problem(rng: random.Random) -> dict:
        name, items = rng.choice(FIRST_NAMES), rng.choice(COUNTABLE_ITEMS)
        kind = rng.randrange(8)
        if kind == 0:
            a, b_ = rng.randint(2, 40), rng.randint(2, 40)
            return record(f"{name} has {a} {items} and gets {b_} more. How many {items} does {name} have now?", "",
                          f"{name} now has {a + b_} {items} ({a} + {b_} = {a + b_}).")
        if kind == 1:
            a, b_ = rng.randint(2, 60), rng.randint(2, 60)
            return record("Solve this word problem.",
                          f"A basket holds {a} {items}. Someone adds {b_} more. How many {items} are in the basket?",
                          f"There are {a + b_} {items} in the basket ({a} + {b_} = {a + b_}).")
        if kind == 2:
            a = rng.randint(5, 60)
            b_ = rng.randint(1, a - 2)
            return record(f"{name} had {a} {items} and gave {b_} to a friend. "
                          f"How many {items} does {name} have left?", "",
                          f"{name} has {a - b_} {items} left ({a} - {b_} = {a - b_}).")
        if kind == 3:
            a = rng.randint(10, 60)
            b_ = rng.randint(2, a - 2)
            return record("Answer the question.",
                          f"A bus has {a} passengers. At the next stop, {b_} get off. "
                          "How many passengers are still on the bus?",
                          f"There are {a - b_} passengers still on the bus ({a} - {b_} = {a - b_}).")
        if kind == 4:
            a, b_ = rng.randint(2, 12), rng.randint(2, 12)
            return record(f"There are {a} boxes with {b_} {items} in each box. "
                          f"How many {items} are there altogether?", "",
                          f"There are {a * b_} {items} altogether ({a} × {b_} = {a * b_}).")
        if kind == 5:
            a, b_ = rng.randint(2, 14), rng.randint(5, 40)
            return record(f"{name} reads {b_} pages every day. How many pages does {name} read in {a} days?", "",
                          f"{name} reads {a * b_} pages in {a} days ({b_} × {a} = {a * b_}).")
        if kind == 6:
            b_, share = rng.randint(2, 8), rng.randint(2, 12)
            a = b_ * share
            return record("Solve this word problem.",
                          f"{a} {items} are shared equally among {b_} friends. How many {items} does each friend get?",
                          f"Each friend gets {share} {items} ({a} ÷ {b_} = {share}).")
        b_, piece = rng.randint(2, 10), rng.randint(2, 15)
        a = b_ * piece
        return record(f"A rope {a} meters long is cut into {b_} equal pieces. How long is each piece?", "",
                      f"Each piece is {piece} meters long ({a} ÷ {b_} = {piece}).")
    b.fill("arithmetic: word problems", 60, word_problem)


def add_letters(b: Builder) -> None:
    words = spelling_vocabulary()
    vowel_words = [w for w in words if "y" not in w]  # "y" is sometimes a vowel; leave it out of the question

    def length(rng: random.Random) -> dict:
        w = rng.choice(words)
        templates = [("How many letters are in the word \"{w}\"?", ""), ("Count the letters in this word.", "{w}"),
                     ("How long is the word \"{w}\", in letters?", ""),
                     ("Tell me the number of letters in \"{w}\".", "")]
        return record(*pick(rng, templates, w=w), f"The word {q(w)} has {len(w)} letters.")
    b.fill("letters: word length", 25, length)

    def letter_count(rng: random.Random) -> dict:
        w = rng.choice(words)
        absent = [x for x in "abcdefghijklmnopqrstuvwxyz" if x not in w]
        c = rng.choice(w) if rng.random() < 0.75 else rng.choice(absent)
        k = w.count(c)
        templates = [("How many times does the letter \"{c}\" appear in \"{w}\"?", ""),
                     ("Count how many times the letter \"{c}\" occurs in the word below.", "{w}"),
                     ("How often does the letter \"{c}\" occur in the word \"{w}\"?", "")]
        how_often = {1: "once", 2: "twice"}.get(k, f"{k} times")
        answer = (f"The letter {q(c)} appears {how_often} in {q(w)}." if k
                  else f"The letter {q(c)} does not appear in {q(w)}.")
        return record(*pick(rng, templates, c=c, w=w), answer)
    b.fill("letters: count a letter", 25, letter_count)

    def reverse(rng: random.Random) -> dict:
        w = rng.choice(words)
        templates = [("Reverse the word \"{w}\".", ""), ("Write \"{w}\" backwards.", ""),
                     ("Spell the following word backwards.", "{w}"),
                     ("What is the word below written in reverse?", "{w}")]
        return record(*pick(rng, templates, w=w), f"The word {q(w)} backwards is {q(w[::-1])}.")
    b.fill("letters: reverse a word", 25, reverse)

    def first_last(rng: random.Random) -> dict:
        w = rng.choice(words)
        which = rng.choice(["first", "last"])
        templates = [("What is the {which} letter of \"{w}\"?", ""),
                     ("What is the {which} letter of the word below?", "{w}")]
        letter = w[0] if which == "first" else w[-1]
        return record(*pick(rng, templates, which=which, w=w), f"The {which} letter of {q(w)} is {q(letter)}.")
    b.fill("letters: first/last letter", 15, first_last)

    def alphabetical(rng: random.Random) -> dict:
        chosen = rng.sample(words, rng.randint(3, 6))
        instruction = rng.choice(["Sort these words in alphabetical order.",
                                  "Put the following words in alphabetical order.",
                                  "Arrange the words alphabetically.", "List these words from A to Z."])
        return record(instruction, ", ".join(chosen), ", ".join(sorted(chosen)))
    b.fill("letters: alphabetical order", 25, alphabetical)

    def spell(rng: random.Random) -> dict:
        w = rng.choice(words)
        templates = [("Spell the word \"{w}\" letter by letter.", ""),
                     ("Spell out the following word, separating the letters with hyphens.", "{w}")]
        return record(*pick(rng, templates, w=w), f"The word {q(w)} is spelled {'-'.join(w)}.")
    b.fill("letters: spell out", 15, spell)

    def vowels(rng: random.Random) -> dict:
        w = rng.choice(vowel_words)
        k = sum(c in "aeiou" for c in w)
        templates = [("How many vowels are in the word \"{w}\"?", ""),
                     ("Count the vowels (a, e, i, o, u) in this word.", "{w}")]
        return record(*pick(rng, templates, w=w), f"The word {q(w)} has {k} {plural_s(k, 'vowel', 'vowels')}.")
    b.fill("letters: count vowels", 15, vowels)

    palindrome_templates = [("Is \"{w}\" a palindrome?", ""),
                            ("Does the following word read the same forwards and backwards?", "{w}"),
                            ("Check whether this word is a palindrome.", "{w}")]
    for w in PALINDROMES:
        b.add("letters: palindromes", record(*pick(b.rng, palindrome_templates, w=w),
                                             f"Yes, {q(w)} is a palindrome: it reads the same backwards."))

    def not_palindrome(rng: random.Random) -> dict:
        w = rng.choice([w for w in words if w != w[::-1]])
        return record(*pick(rng, palindrome_templates, w=w),
                      f"No, {q(w)} is not a palindrome: backwards it reads {q(w[::-1])}.")
    b.fill("letters: palindromes", 12, not_palindrome)


def add_lists(b: Builder) -> None:
    def numbers(rng: random.Random, low: int = 3, high: int = 7) -> list[int]:
        return rng.sample(range(1, 100), rng.randint(low, high))

    def sort_ascending(rng: random.Random) -> dict:
        ns = numbers(rng)
        templates = [("Sort these numbers from smallest to largest.", "{ns}"),
                     ("Arrange the numbers in ascending order.", "{ns}"),
                     ("Put the following numbers in increasing order.", "{ns}"), ("Sort {ns} in ascending order.", "")]
        return record(*pick(rng, templates, ns=join_numbers(ns)), join_numbers(sorted(ns)))

    def sort_descending(rng: random.Random) -> dict:
        ns = numbers(rng)
        templates = [("Sort these numbers from largest to smallest.", "{ns}"),
                     ("Arrange the numbers in descending order.", "{ns}"),
                     ("Put the following numbers in decreasing order.", "{ns}")]
        return record(*pick(rng, templates, ns=join_numbers(ns)), join_numbers(sorted(ns, reverse=True)))

    def largest(rng: random.Random) -> dict:
        ns = numbers(rng)
        templates = [("What is the largest number in this list?", "{ns}"), ("Find the biggest number.", "{ns}"),
                     ("Which number is the greatest?", "{ns}"), ("Which is the largest of {ns}?", "")]
        return record(*pick(rng, templates, ns=join_numbers(ns)), f"The largest number is {max(ns)}.")

    def smallest(rng: random.Random) -> dict:
        ns = numbers(rng)
        templates = [("What is the smallest number in this list?", "{ns}"), ("Find the lowest number.", "{ns}"),
                     ("Which number is the smallest?", "{ns}"), ("Which is the smallest of {ns}?", "")]
        return record(*pick(rng, templates, ns=join_numbers(ns)), f"The smallest number is {min(ns)}.")

    vocabulary = spelling_vocabulary()

    def count_items(rng: random.Random) -> dict:
        items = rng.sample(vocabulary, rng.randint(2, 9))
        instruction = rng.choice(["How many items are in this list?", "Count the items in the list.",
                                  "How many words does this list contain?"])
        return record(instruction, ", ".join(items), f"There are {len(items)} items in the list.")

    def total(rng: random.Random) -> dict:
        ns = numbers(rng, 3, 5)
        instruction = rng.choice(["Add up the numbers in this list.", "What is the sum of these numbers?",
                                  "Find the total of the numbers below."])
        return record(instruction, join_numbers(ns), f"{' + '.join(map(str, ns))} = {sum(ns)}.")

    def remove_duplicates(rng: random.Random) -> dict:
        unique = rng.sample(range(1, 30), rng.randint(3, 5))
        ns = unique + rng.sample(unique, rng.randint(1, len(unique) - 1))
        rng.shuffle(ns)
        kept = list(dict.fromkeys(ns))  # first occurrence of each, in order
        instruction = rng.choice(["Remove the duplicates from this list, keeping the first of each.",
                                  "Delete the repeated numbers, keeping each number's first appearance."])
        return record(instruction, join_numbers(ns), join_numbers(kept))

    def spread(rng: random.Random) -> dict:
        ns = numbers(rng)
        instruction = rng.choice(["What is the difference between the largest and the smallest number in the list?",
                                  "Find the range of these numbers."])
        return record(instruction, join_numbers(ns), f"The largest number is {max(ns)} and the smallest is {min(ns)}, "
                                                     f"so the difference is {max(ns) - min(ns)}.")

    b.fill("lists: sort ascending", 20, sort_ascending)
    b.fill("lists: sort descending", 15, sort_descending)
    b.fill("lists: largest", 20, largest)
    b.fill("lists: smallest", 20, smallest)
    b.fill("lists: count items", 15, count_items)
    b.fill("lists: sum", 15, total)
    b.fill("lists: remove duplicates", 10, remove_duplicates)
    b.fill("lists: range", 10, spread)


def add_multi_turn(b: Builder) -> None:
    """Follow-up questions that only make sense after the earlier turns, which are stored in "history".

    The first turns are worded differently from every single-turn template, so no earlier turn repeats a
    record that might sit in another split.
    """
    rng = b.rng

    def arithmetic_chain(rng: random.Random) -> dict:
        a, b_ = rng.randint(2, 50), rng.randint(2, 50)
        first = record(f"Please add {a} and {b_}.", "", f"{a} + {b_} = {a + b_}.")
        s, k = a + b_, rng.randint(2, 30)
        op = rng.randrange(3)
        if op == 0:
            k = rng.randint(2, 9)
            text = rng.choice(["Now multiply that result by {k}.", "Multiply the answer by {k}."]).format(k=k)
            return record(text, "", f"{s} × {k} = {s * k}.", [first])
        if op == 1:
            text = rng.choice(["Now add {k} to it.", "Add {k} to that number."]).format(k=k)
            return record(text, "", f"{s} + {k} = {s + k}.", [first])
        k = rng.randint(1, s - 1)
        text = rng.choice(["Now subtract {k} from the result.", "Take away {k} from that."]).format(k=k)
        return record(text, "", f"{s} - {k} = {s - k}.", [first])

    follow_ups = ["And {x}?", "What about {x}?", "How about {x}?"]

    def elliptical(items: list, ask: Callable, answer: Callable, rng: random.Random) -> dict:
        """First turn asks fully; the later turns name only the new item and rely on the history."""
        chosen = rng.sample(items, 3 if rng.random() < 0.3 else 2)
        history = [record(ask(chosen[0]), "", answer(chosen[0]))]
        for item in chosen[1:-1]:
            history.append(record(rng.choice(follow_ups).format(x=label(item)), "", answer(item)))
        return record(rng.choice(follow_ups).format(x=label(chosen[-1])), "", answer(chosen[-1]), history)

    def label(item) -> str:
        return item[0] if isinstance(item, tuple) else item

    capitals = [(the(c, t), cap_) for c, cap_, t in CAPITALS]
    b.fill("multi-turn: arithmetic follow-up", 20, arithmetic_chain)
    b.fill("multi-turn: capitals", 15, lambda r: elliptical(
        capitals, lambda x: f"Tell me the capital of {x[0]}.", lambda x: f"The capital of {x[0]} is {x[1]}.", r))
    elements = [(e, s) for e, s, _ in ELEMENTS]
    b.fill("multi-turn: chemical symbols", 12, lambda r: elliptical(
        elements, lambda x: f"Tell me the chemical symbol for {x[0]}.",
        lambda x: f"The chemical symbol for {x[0]} is {x[1]}.", r))
    antonyms = [(q(w), q(o)) for w, o in ANTONYMS]
    b.fill("multi-turn: antonyms", 8, lambda r: elliptical(
        antonyms, lambda x: f"Tell me the opposite of {x[0]}.", lambda x: f"The opposite of {x[0]} is {x[1]}.", r))
    plurals = [(q(n), q(p)) for n, p in PLURALS.items() if n != p]
    b.fill("multi-turn: plurals", 8, lambda r: elliptical(
        plurals, lambda x: f"Tell me the plural of {x[0]}.", lambda x: f"The plural of {x[0]} is {x[1]}.", r))
    pasts = [(q(v), q(VERBS[v][0])) for v in PAST_TENSE_QUESTIONS if VERBS[v][0] != v]
    b.fill("multi-turn: past tense", 8, lambda r: elliptical(
        pasts, lambda x: f"Tell me the past tense of {x[0]}.", lambda x: f"The past tense of {x[0]} is {x[1]}.", r))

    def conversion_chain(rng: random.Random) -> dict:
        conv = rng.choice(CONVERSIONS[:4])
        v1, v2 = rng.sample(range(2, 100), 2)
        first = record(f"Please convert {v1} {conv[1]} to {conv[3]}.", "", conversion_answer(conv, Fraction(v1)))
        follow_up = rng.choice(["And {v} {u}?", "What about {v} {u}?", "Now do the same for {v} {u}."])
        text = follow_up.format(v=v2, u=conv[1])
        return record(text, "", conversion_answer(conv, Fraction(v2)), [first])
    b.fill("multi-turn: conversions", 12, conversion_chain)

    def voice_chain(rng: random.Random) -> dict:
        one, two = rng.sample(VOICE_SENTENCES, 2)
        past = rng.random() < 0.5
        first = record("Please turn this sentence into the passive voice.", voice_sentence(one, False, past),
                       voice_sentence(one, True, past))
        return record(rng.choice(["Now do the same for this sentence.", "Do the same with this one."]),
                      voice_sentence(two, False, past), voice_sentence(two, True, past), [first])
    b.fill("multi-turn: rewriting", 8, voice_chain)

    words = spelling_vocabulary()

    def reverse_chain(rng: random.Random) -> dict:
        w1, w2 = rng.sample(words, 2)
        first = record(f"Tell me the word {q(w1)} spelled backwards.", "",
                       f"The word {q(w1)} backwards is {q(w1[::-1])}.")
        return record(rng.choice(["Now do the same with {w}.", "And {w}?"]).format(w=q(w2)), "",
                      f"The word {q(w2)} backwards is {q(w2[::-1])}.", [first])
    b.fill("multi-turn: letters", 8, reverse_chain)

    def prime_chain(rng: random.Random) -> dict:
        n1, n2 = rng.sample(range(2, 100), 2)
        def answer(n: int) -> str:
            return f"Yes, {n} is a prime number." if is_prime(n) else f"No, {n} is not a prime number."
        first = record(f"Check whether {n1} is a prime number.", "", answer(n1))
        return record(rng.choice(follow_ups).format(x=n2), "", answer(n2), [first])
    b.fill("multi-turn: primes", 6, prime_chain)


FAMILIES = [add_rewriting, add_grammar, add_conversions, add_classification, add_extraction, add_facts,
            add_arithmetic, add_letters, add_lists, add_multi_turn]
FAMILY_ORDER = ["rewriting", "grammar", "conversion", "classification", "extraction", "facts", "arithmetic",
                "letters", "lists", "multi-turn"]


# ---------------------------------------------------------------------------------------------------------
# Splitting, writing, checking
# ---------------------------------------------------------------------------------------------------------

def build(seed: int = SEED) -> dict[str, list[tuple[str, dict]]]:
    """All records, shuffled with the seed and cut 85/5/10 into train/validation/test."""
    builder = Builder(seed)
    for add_family in FAMILIES:
        add_family(builder)
    records = list(builder.records)
    random.Random(seed).shuffle(records)
    n_validation = round(len(records) * SPLITS[1][1])
    n_test = round(len(records) * SPLITS[2][1])
    n_train = len(records) - n_validation - n_test
    return {"train": records[:n_train], "validation": records[n_train:n_train + n_validation],
            "test": records[n_train + n_validation:]}


def to_json(records: list[tuple[str, dict]]) -> bytes:
    return (json.dumps([rec for _, rec in records], ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def summary(splits: dict[str, list[tuple[str, dict]]]) -> str:
    """A Markdown table of records per task family and split (the README's table comes from here)."""
    names = list(splits)
    families: dict[str, list[int]] = {}
    for column, name in enumerate(names):
        for task, _ in splits[name]:
            family = task.split(":")[0]
            families.setdefault(family, [0] * len(names))[column] += 1
    rows = ["| family | " + " | ".join(names) + " | total |", "|---" * (len(names) + 2) + "|"]
    for family, counts in sorted(families.items(), key=lambda item: FAMILY_ORDER.index(item[0])):
        rows.append(f"| {family} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    totals = [len(splits[n]) for n in names]
    rows.append("| **all** | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    with_history = sum("history" in rec for records in splits.values() for _, rec in records)
    rows.append(f"\n{with_history} records carry a \"history\" of earlier turns.")
    return "\n".join(rows)


def task_counts(splits: dict[str, list[tuple[str, dict]]]) -> str:
    counts: dict[str, int] = {}
    for records in splits.values():
        for task, _ in records:
            counts[task] = counts.get(task, 0) + 1
    return "\n".join(f"  {task}: {n}" for task, n in sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the chapter 9 instruction dataset "
                                                 "(train/validation/test JSON) from templates, deterministically.")
    parser.add_argument("--out", type=Path, default=HERE,
                        help="folder for the JSON files (default: the folder this script is in)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; verify that the files in --out match what this script generates "
                             "byte for byte, and exit with status 1 if any differs")
    parser.add_argument("--tasks", action="store_true", help="also print the count of every task, not only families")
    args = parser.parse_args(argv)

    splits = build(SEED)
    if args.check:
        bad = []
        for name, records in splits.items():
            path = args.out / f"{name}.json"
            if not path.exists():
                bad.append(f"{path} (missing)")
            elif path.read_bytes() != to_json(records):
                bad.append(f"{path} (differs)")
        if bad:
            print("These files do not match what make_instructions.py generates (run it without --check "
                  "to rewrite them):\n  " + "\n  ".join(bad))
            return 1
        print(f"All {len(splits)} files in {args.out} match the generator (seed {SEED}).")
        return 0

    for name, records in splits.items():
        write_atomic(args.out / f"{name}.json", to_json(records))
        print(f"Wrote {len(records)} records to {args.out / (name + '.json')}.")
    print(summary(splits))
    if args.tasks:
        print("Records per task:\n" + task_counts(splits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
