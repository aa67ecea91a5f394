"""What a question asks for: its expected answer type and its key terms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from bm25s.tokenization import STOPWORDS_EN_PLUS

from index.lexical import tokenize


class AnswerType(StrEnum):
    """The kind of fact a question asks for."""

    NUMBER = "number"
    PERSON = "person"
    DATE = "date"
    PLACE = "place"
    REASON = "reason"
    ORGANIZATION = "organization"
    OTHER = "other"


_TYPE_PATTERNS: list[tuple[AnswerType, re.Pattern[str]]] = [
    (AnswerType.NUMBER, re.compile(
        r"\b(how\s+(many|much|large|big|long|far)|what\s+(number|percentage|share|proportion|"
        r"amount|figure|size|sum|quantity)|number\s+of|how\s+strong|what\s+(was|is)\s+the\s+"
        r"(estimated\s+)?(size|number|strength|count|total|amount|figure|percentage))\b", re.I)),
    (AnswerType.DATE, re.compile(
        r"\b(when|what\s+(year|date|month|day|time)|which\s+(year|date|month|day)|since\s+when|"
        r"how\s+long\s+ago)\b", re.I)),
    (AnswerType.PERSON, re.compile(
        r"\b(who|whom|whose|which\s+(official|person|minister|president|general|leader|"
        r"spokesman|spokesperson|expert|researcher|journalist|ambassador|commander|analyst)|"
        r"what\s+is\s+the\s+name\s+of\s+the\s+(official|person|minister|president|general|"
        r"spokesman|expert|researcher|ambassador))\b", re.I)),
    (AnswerType.PLACE, re.compile(
        r"\b(where|which\s+(country|countries|province|provinces|city|cities|region|regions|"
        r"border|area|capital|town|place|valley)|what\s+(country|province|city|region|area|"
        r"capital|place))\b", re.I)),
    (AnswerType.REASON, re.compile(r"\b(why|what\s+(reason|caused|prompted|led)|for\s+what\s+"
                                   r"reason|how\s+come)\b", re.I)),
    (AnswerType.ORGANIZATION, re.compile(
        r"\b(which|what)\s+(organi[sz]ation|group|groups|alliance|agency|institute|outlet|"
        r"think\s+tank|movement|body|ministry|newspaper)\b", re.I)),
]

# Words that carry no topic: question scaffolding and reporting verbs.
_SCAFFOLDING = {
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "many", "much",
    "did", "does", "do", "is", "are", "was", "were", "the", "a", "an", "of", "to", "in", "on",
    "say", "said", "says", "according", "article", "articles", "report", "reported", "reports",
    "tell", "told", "mention", "mentioned", "describe", "described", "name", "named", "give",
    "number", "amount", "figure", "exactly", "there", "their", "they", "its", "it", "has",
    "have", "had", "be", "been", "being", "about", "any", "some", "kind", "sort", "also",
    "year", "date", "time", "reason", "person", "official", "call", "called", "happen",
    "happened", "take", "took", "make", "made", "estimated", "estimate", "total", "approximately",
    "would", "could", "should", "might", "get", "got", "go", "went", "come", "came", "back",
    "still", "currently", "actually", "really", "now", "roughly", "around",
}

NUMBER_PATTERN = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:\s*(thousand|million|billion|k|%|percent))?"
    r"|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|dozens?|hundreds|thousands)\b",
    re.I,
)
YEAR_PATTERN = re.compile(r"\b(19|20)\d\d\b")
MONTH_PATTERN = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|"
    r"December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\b"
)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z]+(?:[-\s][A-Z][a-z]+)*|[A-Z]{2,})\b")
_PERSON_TITLE = re.compile(
    r"\b(President|Minister|General|Colonel|spokesman|spokesperson|Mr\.|Ms\.|Dr\.|Chairman|"
    r"chairman|head|Secretary|Ambassador|researcher|expert|journalist|Director|Commander|"
    r"Major|Doctor|leader)\b"
)
_PLACE_WORDS = re.compile(
    r"\b(Afghanistan|Tajikistan|Uzbekistan|Turkmenistan|Kyrgyzstan|Kazakhstan|Russia|Iran|"
    r"China|India|Pakistan|Syria|Iraq|Kabul|Dushanbe|Tashkent|Moscow|Astana|Islamabad|"
    r"Badakhshan|Ferghana|province|border|capital|city|valley|region)\b|\b(in|at|near|from)\s+"
    r"[A-Z][a-z]+"
)
_REASON_WORDS = re.compile(
    r"\b(because|due\s+to|owing\s+to|since|as\s+a\s+result|in\s+order\s+to|to\s+(?:[a-z]+\s+){0,2}"
    r"(?:avoid|prevent|protect|strengthen|isolate|destabili[sz]e|stop|counter|fight)|"
    r"fears?\s+of|amid|so\s+that|aimed|intended|in\s+an\s+attempt)\b",
    re.I,
)
# A named organisation: "Robert Lansing Institute", "Collective Security Treaty Organization",
# "Jamaat Ansarullah", or an acronym of three or more letters ("CSTO", "UNODC").
_ORG_WORDS = re.compile(
    r"\b(?:[A-Z][\w'’-]+\s+(?:(?:of|for|and|the)\s+)*){1,6}(?:Institute|Organi[sz]ation|"
    r"Ministry|Movement|Front|Council|Office|Committee|Cent(?:er|re)|Agency|Service|Group|"
    r"Army|Party|Union|Alliance|Foundation|Bank|Fund|Police|Directorate|Department|State|"
    r"Province|Emirate|Post|Times|News|Gazeta)\b"
    r"|\b(?:Institute|Organi[sz]ation|Ministry|Council|Office|Committee|Cent(?:er|re)|Agency|"
    r"Service|Union|Foundation|Department|Directorate)\s+(?:of|for|on)\s+(?:the\s+)?[A-Z]"
    r"|\b[A-Z]{3,}\b|\b(?:Taliban|al-Qaeda|Al-Qaeda|Ansarullah|Jamaat\s+\w+)\b"
)

_WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "hundred": 100,
}
_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "billion": 1e9}


@dataclass(frozen=True)
class NumberMention:
    """A number found in text, with its normalised value and its span."""

    value: float
    text: str
    start: int
    end: int
    is_year: bool  # a year or a day of a date: not a figure
    is_percent: bool


def find_numbers(text: str) -> list[NumberMention]:
    """Numbers in ``text`` with normalised values ("6.5 thousand" and "6,500" are equal)."""
    mentions = []
    for match in NUMBER_PATTERN.finditer(text):
        if match.group(3):
            word = match.group(3).lower()
            if word not in _WORD_NUMBERS:
                continue  # "dozens", "thousands": vague quantities, not figures
            value = float(_WORD_NUMBERS[word])
            mentions.append(NumberMention(value, match.group(0), match.start(), match.end(),
                                          False, False))
            continue
        digits = match.group(1).replace(",", "")
        try:
            value = float(digits)
        except ValueError:
            continue
        unit = (match.group(2) or "").lower()
        value *= _SCALE.get(unit, 1.0)
        is_year = (unit == "" and "," not in match.group(1) and "." not in match.group(1)
                   and 1900 <= value <= 2100)
        # "February 15", "15 February", "April 18th": a day of a date, not a figure.
        before, after = text[max(0, match.start() - 12):match.start()], text[match.end():]
        if unit == "" and value <= 31 and (MONTH_PATTERN.search(before + "$") is not None
                                           or MONTH_PATTERN.match(after.lstrip()) is not None
                                           or re.match(r"(st|nd|rd|th)\b", after)):
            is_year = True
        mentions.append(NumberMention(value, match.group(0).strip(), match.start(), match.end(),
                                      is_year, unit in ("%", "percent")))
    return mentions


def has_type_evidence(text: str, answer_type: AnswerType) -> bool:
    """Whether ``text`` contains something of the kind the question asks for."""
    if answer_type == AnswerType.NUMBER:
        return any(not m.is_year for m in find_numbers(text))
    if answer_type == AnswerType.DATE:
        return bool(YEAR_PATTERN.search(text) or MONTH_PATTERN.search(text)
                    or re.search(r"\b(last|this|next)\s+(week|month|year)|\b(yesterday|"
                                 r"today|earlier\s+this)\b", text, re.I))
    if answer_type == AnswerType.PERSON:
        return len(_proper_names(text)) >= 1
    if answer_type == AnswerType.PLACE:
        return bool(_PLACE_WORDS.search(text))
    if answer_type == AnswerType.REASON:
        return bool(_REASON_WORDS.search(text))
    if answer_type == AnswerType.ORGANIZATION:
        return bool(_ORG_WORDS.search(text))
    return True


_NOT_PERSON_WORDS = {
    "Ministry", "Organization", "Organisation", "Institute", "State", "States", "Council",
    "Committee", "Center", "Centre", "Front", "Movement", "Office", "Service", "Union", "Army",
    "Federation", "Republic", "Treaty", "Security", "Province", "Emirate", "Post", "News",
    "Troops", "Border", "Forces", "Affairs", "Sciences", "Studies", "Asia", "East", "Valley",
    "Nations", "Agency", "Department", "Directorate", "Relations", "International", "Islamic",
    "Central", "Foreign", "Interior", "Defence", "Defense", "Joint", "Staff", "Summit",
    "Railway", "Crime", "Drugs", "Meeting", "Heads", "Consultative", "Northern",
    "Southern", "Western", "Eastern", "Middle", "Soviet", "Caliphate", "Khorasan", "Persian",
}
_TITLE_WORDS = {"President", "Minister", "General", "Colonel", "Major", "Chairman", "Secretary",
                "Ambassador", "Director", "Commander", "Doctor", "Deputy", "Acting", "Foreign",
                "Interior", "Prime", "Lieutenant", "Special", "Representative"}


def _proper_names(text: str) -> list[str]:
    """Runs of two or more capitalised words that look like a person's name.

    Runs with institution or place words ("Russian Interior Ministry", "Central Asia") are
    not names of people; titles ("Minister", "General") are dropped from the run first.
    """
    names = []
    for run in re.findall(r"(?<![.!?]\s)\b([A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+)+)", text):
        words = [w for w in run.split() if w not in _TITLE_WORDS]
        # "Tajikistan John Mark Pommersheim": a place next to the name is not part of it.
        while words and _PLACE_WORDS.fullmatch(words[0]):
            words.pop(0)
        while words and _PLACE_WORDS.fullmatch(words[-1]):
            words.pop()
        if len(words) < 2 or any(w in _NOT_PERSON_WORDS for w in words):
            continue
        names.append(" ".join(words))
    return names


@dataclass(frozen=True)
class QuestionAnalysis:
    """A question's answer type, its key term stems and the named terms among them."""

    text: str
    answer_type: AnswerType
    key_terms: tuple[str, ...]
    named_terms: tuple[str, ...]  # stems of capitalised words (names, places, groups)
    numbers: tuple[float, ...]
    acronyms: tuple[str, ...] = ()  # "IS", "US": matched case-sensitively, never stopwords
    source_terms: tuple[str, ...] = ()  # from "according to X": who says it, not what is said
    focus_terms: tuple[str, ...] = ()  # the role asked about: "Who is the *leader* of …"


# "Who is the leader of X?", "Which minister denied …?": the evidence must name that role.
_ROLE_FOCUS = re.compile(
    r"\b(?i:who)\s+(?i:is|was|are|were|has\s+been)\s+(?i:the\s+|a\s+|an\s+)?"
    r"(?:(?:new|current|former|acting|top)\s+)?(?:[A-Z][\w'’-]*\s+)*([a-z][a-z-]+)\b"
    r"|\b(?i:which)\s+(?:[A-Z][\w'’-]*\s+)*([a-z][a-z-]+)\b",
)
_ROLE_WORDS = {
    "leader", "head", "chief", "spokesman", "spokesperson", "minister", "president", "general",
    "commander", "director", "chairman", "chair", "secretary", "ambassador", "founder", "emir",
    "governor", "mayor", "envoy", "representative", "researcher", "expert", "journalist",
    "official", "deputy", "prime", "king", "analyst", "coordinator", "editor", "owner",
}

# "…, according to the Lansing Institute note?" names the source, not part of the fact.
_SOURCE_CLAUSE = re.compile(
    r"[,;]?\s*\b(?:according\s+to|in\s+the\s+(?:view|opinion|words)\s+of|as\s+reported\s+by|"
    r"as\s+named\s+by|named\s+by|as\s+cited\s+by|cited\s+by|per)\s+([^,;?]+)",
    re.IGNORECASE,
)


@lru_cache(maxsize=2048)
def analyse_question(question: str) -> QuestionAnalysis:
    """Classify what ``question`` asks for and extract its key terms."""
    # The earliest wh-phrase decides: "Why were the fighters who came back…" asks for a reason.
    answer_type = AnswerType.OTHER
    earliest = len(question) + 1
    for candidate, pattern in _TYPE_PATTERNS:
        match = pattern.search(question)
        if match is not None and match.start() < earliest:
            answer_type, earliest = candidate, match.start()
    source_terms: tuple[str, ...] = ()
    source = _SOURCE_CLAUSE.search(question)
    if source is not None:
        # Only the names in the clause pin the source down; "a European think tank" is
        # a description that the article may word differently.
        names = [w for w in re.findall(r"[\w'-]+", source.group(1)) if w[:1].isupper()]
        source_terms = tuple(dict.fromkeys(tokenize([" ".join(names)])[0])) if names else ()
        question = question[: source.start()] + question[source.end():]
    focus_terms: tuple[str, ...] = ()
    focus = _ROLE_FOCUS.search(question)
    if focus is not None:
        role = (focus.group(1) or focus.group(2) or "").lower()
        if role in _ROLE_WORDS:
            focus_terms = tuple(tokenize([role])[0])
    words = re.findall(r"[\w'-]+", question)
    content = [w for w in words if w.lower() not in _SCAFFOLDING
               and w.lower() not in STOPWORDS_EN_PLUS and len(w) > 1]
    stems = tokenize([" ".join(content)])[0] if content else []
    acronyms = tuple(dict.fromkeys(w for w in words if len(w) >= 2 and w.isupper()
                                   and w.isalpha()))
    named_words = [piece for i, w in enumerate(words) if i > 0 and w[:1].isupper()
                   and w.lower() not in _SCAFFOLDING and w not in acronyms
                   for piece in w.split("-") if piece[:1].isupper()]  # "American-made"
    named = tokenize([" ".join(named_words)])[0] if named_words else []
    numbers = tuple(m.value for m in find_numbers(question))
    return QuestionAnalysis(
        text=question,
        answer_type=answer_type,
        key_terms=tuple(dict.fromkeys(stems)),
        named_terms=tuple(dict.fromkeys(named)),
        numbers=numbers,
        acronyms=acronyms,
        source_terms=source_terms,
        focus_terms=focus_terms,
    )


# Country names, demonyms and capitals stand for each other in news prose
# ("Washington declared…" is the US speaking). Stems as produced by the BM25 tokenizer.
_ALIASES: list[set[str]] = [
    {"us", "usa", "america", "american", "washington"},
    {"russia", "russian", "moscow", "kremlin"},
    {"china", "chines", "beij"},
    {"afghanistan", "afghan", "kabul"},
    {"tajikistan", "tajik", "dushanb"},
    {"uzbekistan", "uzbek", "tashkent"},
    {"kazakhstan", "kazakh", "astana"},
    {"kyrgyzstan", "kyrgyz", "bishkek"},
    {"turkmenistan", "turkmen", "ashgabat"},
    {"iran", "iranian", "tehran"},
    {"pakistan", "pakistani", "islamabad"},
    {"india", "indian", "delhi"},
    {"isi", "is", "isil", "iskp", "daesh"},
]


def aliases(term: str) -> set[str]:
    """Other names for the same country or group (stems), including ``term`` itself."""
    for group in _ALIASES:
        if term in group:
            return group
    return {term}


# "How strong is X today, and does it still have ties to Y?": two questions in one.
_COMPOUND = re.compile(
    r"\s*[,;]?\s+and\s+(?=(?:what|who|whom|whose|when|where|why|how|which|does|do|did|is|are|"
    r"was|were|has|have|had|can|could|will|would)\b)",
    re.IGNORECASE,
)


def split_compound(question: str) -> list[str]:
    """Split a question that asks two things into standalone parts (one part if it asks one).

    Later parts are rewritten against the first, so "does it still…" names what "it" is.
    """
    from service.rewrite import is_followup, rewrite_against

    pieces = [p.strip(" ,;") for p in _COMPOUND.split(question) if p.strip(" ,;?")]
    if len(pieces) < 2 or any(len(p.split()) < 3 for p in pieces):
        return [question]
    first = pieces[0].rstrip("?.! ") + "?"
    parts = [first]
    for piece in pieces[1:]:
        piece = piece[0].upper() + piece[1:]
        piece = piece if piece.endswith("?") else piece + "?"
        # Only a part that leans on the first ("does it still…") is rewritten against it.
        parts.append(rewrite_against(first, piece) if is_followup(piece) else piece)
    return parts
