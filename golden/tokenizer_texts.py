"""Texts that stress a BERT WordPiece tokenizer, in named categories: the tokenizer conformance
fixture (``golden/tokenizer_conformance.py``) records what the bundle's tokenizer makes of each, so
an app's Swift tokenizer can be held to the same ids.

Categories follow the places tokenizers are known to part ways: the BERT normalizer (lower-casing,
accent stripping after NFD, control and whitespace cleaning, CJK spacing), WordPiece's [UNK] and
its 100-character word limit, and truncation at the contract's 256 tokens.
"""

from __future__ import annotations

import unicodedata

_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "I would like to book a table for two at eight.",
    "Machine learning models run on phones now.",
    "She said: it's not what you think, it's what you do!",
    "Please don't forget the meeting tomorrow morning.",
    "Tokenizers split words into smaller pieces.",
    "Can you recommend a good book about history?",
    "The weather is lovely today, isn't it?",
    "unbelievably, the unaffordable undertaking succeeded",
    "He plays guitar; she plays piano.",
    "What a wonderful surprise party that was.",
    "Our team ships two models to every phone.",
)

_ACCENTED = (
    "café crème brûlée",
    "naïve façade",
    "Ångström and Øresund",
    "Zürich über München",
    "São Paulo não é Lisboa",
    "El niño pidió jalapeños",
    "Dvořák wrote symphonies",
    "Łódź is in Poland",
    "résumé déjà vu",
    "Ça va très bien",
    "İstanbul ve Şişli",
    "Crème fraîche à la carte",
)

_COMBINING = (
    "e\u0301",  # e + combining acute
    "a\u0300\u0323",  # two marks on one base
    "n\u0303o",
    "Z\u0351\u0352a\u0353l\u0354g\u0355o",  # zalgo-style stacking
    "\u0301 leading mark",
    "x\u20dd",  # enclosing circle
    "o\u0308\u0304",
    "q\u0307\u0323",
    "A\u030a",
    "i\u0307",
    "u\u031b\u0309",
    "c\u0327",
)

_CJK = (
    "我喜欢机器学习",
    "今天天气很好",
    "北京欢迎你",
    "中文分词测试",
    "你好，世界！",
    "模型在手机上运行",
    "漢字と中文",
    "我们有两个模型",
    "这是一个句子。",
    "学习使我快乐",
    "苹果手机",
    "数据科学家",
)

_KANA = (
    "こんにちは",
    "ありがとうございます",
    "カタカナのテスト",
    "ひらがなとカタカナ",
    "東京に行きます",
    "ラーメンが好きです",
    "すし と てんぷら",
    "コンピューター",
    "おはようございます",
    "ｶﾀｶﾅ半角",  # half-width katakana
    "ゲーム",
    "日本語のテキスト",
)

_SCRIPTS = {
    "thai": (
        "สวัสดีครับ",
        "ภาษาไทย",
        "ขอบคุณมาก",
        "กรุงเทพมหานคร",
        "ฉันรักคุณ",
        "อาหารไทยอร่อย",
        "วันนี้อากาศดี",
        "โทรศัพท์มือถือ",
        "เรียนภาษา",
        "แมวและสุนัข",
        "หนังสือ",
        "ประเทศไทย",
    ),
    "arabic": (
        "مرحبا بالعالم",
        "اللغة العربية",
        "شكرا جزيلا",
        "كيف حالك؟",
        "الذكاء الاصطناعي",
        "مدينة القاهرة",
        "أحب القراءة",
        "السلام عليكم",
        "كتاب جديد",
        "هاتف ذكي",
        "مُحَمَّد",  # with harakat (combining)
        "الرقم ٣٤٥",
    ),
    "hebrew": (
        "שלום עולם",
        "עברית",
        "תודה רבה",
        "מה שלומך?",
        "ירושלים",
        "בינה מלאכותית",
        "ספר חדש",
        "אני אוהב מוזיקה",
        "טלפון חכם",
        "בוקר טוב",
        "שָׁלוֹם",  # with niqqud
        "תל אביב",
    ),
    "devanagari": (
        "नमस्ते",
        "हिन्दी भाषा",
        "धन्यवाद",
        "आप कैसे हैं?",
        "भारत",
        "कृत्रिम बुद्धिमत्ता",
        "नई किताब",
        "मुंबई शहर",
        "स्मार्टफोन",
        "सुप्रभात",
        "संस्कृत",
        "क्षत्रिय",
    ),
    "cyrillic_greek": (
        "Привет, мир",
        "Москва",
        "Ёлка и ёж",
        "Добрый день",
        "Καλημέρα κόσμε",
        "Αθήνα",
        "ΑΒΓΔ αβγδ",
        "Київ",
        "Σοφία",
        "Ελληνικά",
        "Спасибо",
        "Україна",
    ),
}

_EMOJI = (
    "I love it 😀",
    "🔥🔥🔥",
    "party 🎉 time",
    "❤️",
    "thumbs up 👍",
    "☕ and 🍰",
    "🚀 launch",
    "weather: ☀️🌧️",
    "😂😂",
    "🐶🐱",
    "✅ done",
    "⭐ rating",
)

_EMOJI_SEQUENCES = (
    "👨\u200d👩\u200d👧\u200d👦",  # family, ZWJ
    "👩\u200d💻 coding",
    "🏳️\u200d🌈",
    "👍🏽",  # skin tone
    "👋🏿 hello",
    "🇫🇷 🇯🇵 🇺🇸",  # flags: regional indicator pairs
    "🇬🇧",
    "🧑🏻\u200d🚀",
    "❤️\u200d🔥",
    "👩🏾\u200d🔬",
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland, tag sequence
    "1️⃣ keycap",
)

_CONTROL = (
    "bell\x07here",
    "null\x00byte",
    "escape\x1b[0m code",
    "tab\tseparated\tvalues",
    "line\nbreak",
    "carriage\r\nreturn",
    "delete\x7fchar",
    "form\x0cfeed",
    "vertical\x0btab",
    "unit\x1fseparator",
    "\x01\x02\x03 start",
    "backspace\x08x",
)

_ZERO_WIDTH = (
    "zero\u200bwidth",
    "non\u200cjoiner",
    "joiner\u200dhere",
    "\ufeffbyte order mark",
    "word\u2060joiner",
    "soft\u00adhyphen",
    "left\u200eto right",
    "right\u200fto left",
    "in\u2061visible",
    "combining\u034fgrapheme joiner",
    "mongolian\u180evowel",
    "tag\U000e0041char",
)

_WHITESPACE = (
    "non\u00a0breaking",
    "en\u2002space",
    "ideographic\u3000space",
    "line\u2028separator",
    "ogham\u1680space",
    "thin\u2009space",
    "narrow\u202fno-break",
    "   leading and trailing   ",
    "many     spaces",
    "em\u2003space",
    "paragraph\u2029separator",
    "figure\u2007space",
)

_URLS = (
    "https://www.example.com/path?query=1&x=y",
    "mail me at jane.doe@example.org",
    "http://localhost:8080/api/v1/users",
    "ftp://files.example.net/pub/file.tar.gz",
    "www.apple.com/iphone",
    "first.last+tag@sub.domain.co.uk",
    "See https://en.wikipedia.org/wiki/Tokenization_(lexical_analysis)",
    "git@github.com:owner/repo.git",
    "user_name123@gmail.com",
    "https://example.com/#fragment",
    "@handle and #hashtag",
    "C:\\Users\\me\\Documents\\file.txt",
)

_NUMBERS = (
    "1,234,567.89",
    "3.14159",
    "1e-5 and 6.02e23",
    "½ cup and ¾ tsp",
    "x² + y³",
    "Ⅻ o'clock",
    "٣٤٥ Arabic-Indic",
    "१२३ Devanagari digits",
    "+1 (555) 123-4567",
    "2026-12-02T10:30:00Z",
    "50% off, $19.99, €5, £3, ¥100",
    "007 and 0x1F",
)

_MIXED_CASE = (
    "iPhone and MacBook",
    "HELLO WORLD",
    "CamelCaseIdentifier",
    "snake_case_name",
    "McDonald's",
    "NASA's JWST",
    "tHiS iS wEiRd",
    "ÉCOLE NORMALE",
    "DŽungla",  # titlecase digraph
    "ß and ẞ",
    "İi Iı",
    "ΣΊΣΥΦΟΣ",
)

_PUNCTUATION = (
    "Wait—what?!",
    "“Smart quotes” and ‘single’",
    "Ellipsis…",
    "«guillemets» ‹single›",
    "© 2026 ™ ®",
    "§ 4 ¶ 2",
    "a/b\\c|d",
    "[brackets] {braces} <angles>",
    "~tilde` `backtick",
    "•bullet ◦ ‣",
    "→ ← ↑ ↓",
    "¿Qué? ¡Sí!",
)

_UNKNOWN = (
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 fraktur",  # mathematical letters: not in the vocabulary
    "𓀀 hieroglyph",
    "☃ snowman",
    "🀄 mahjong",
    "ꙮ multiocular o",
    "ᚠᚢᚦ runes",
    "⠓⠑⠇⠇⠕ braille",
    "𝄞 clef",
    "ⓐⓑⓒ",
    "♔♕♖",
    "🜁 alchemy",
    "ꓮꓯ lisu",
)

_LONG_WORDS = (
    "a" * 99,
    "b" * 100,
    "c" * 101,  # past WordPiece's 100-character word limit: [UNK]
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Supercalifragilisticexpialidocious",
    "x" * 150 + " short",
    "Donaudampfschifffahrtsgesellschaftskapitän",
    "antidisestablishmentarianism",
    "ab" * 60,
    "hippopotomonstrosesquippedaliophobia",
    "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
    "é" * 120,
)

_MIXED_SCRIPTS = (
    "Hello 世界 and мир",
    "café 東京 🚀",
    "the 猫 sat on the マット",
    "Привет hello שלום",
    "AI 人工智能 ذكاء",
    "Tokyo東京Tokyo",
    "abc123あいう",
    "नमस्ते world",
    "Straße 街道",
    "emoji🙂inside",
    "x中y文z",
    "ΑΙ and AI",
)

_EDGES = (
    "",
    " ",
    "\n\t ",
    "a",
    ".",
    "[CLS]",
    "[SEP] [PAD] [MASK] [UNK]",
    "##ing",
    "don't",
    "A.I.",
    "e-mail",
    "it's 5 o'clock",
)


def _truncated() -> tuple[str, ...]:
    """Texts past 256 tokens: the tokenizer keeps 254 pieces plus [CLS] and [SEP]."""
    return tuple(" ".join(_SENTENCES[i:] + _SENTENCES[:i]) * (3 + i % 4) for i in range(12))


def categories() -> dict[str, tuple[str, ...]]:
    """Category name -> texts, 12 each."""
    return {
        "ascii": _SENTENCES,
        "mixed_case": _MIXED_CASE,
        "accents_nfc": tuple(unicodedata.normalize("NFC", t) for t in _ACCENTED),
        "accents_nfd": tuple(unicodedata.normalize("NFD", t) for t in _ACCENTED),
        "combining_marks": _COMBINING,
        "cjk": _CJK,
        "kana": _KANA,
        **_SCRIPTS,
        "emoji": _EMOJI,
        "emoji_sequences": _EMOJI_SEQUENCES,
        "control": _CONTROL,
        "zero_width": _ZERO_WIDTH,
        "whitespace": _WHITESPACE,
        "urls_emails": _URLS,
        "numbers": _NUMBERS,
        "punctuation": _PUNCTUATION,
        "unknown": _UNKNOWN,
        "long_words": _LONG_WORDS,
        "mixed_scripts": _MIXED_SCRIPTS,
        "special_and_edges": _EDGES,
        "truncated": _truncated(),
    }
