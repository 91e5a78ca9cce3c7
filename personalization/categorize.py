"""Derive a browsable two-level category ("Top > Sub") from a UCI Online Retail product description.

Pure module: standard library only. The descriptions are short upper-case gift-ware names such as
"WHITE HANGING HEART T-LIGHT HOLDER" or "SET OF 3 CAKE TINS PANTRY DESIGN" and the source data has no
category, so one is derived from the words. ``SEASONAL_RULES`` and ``TAXONOMY`` are the data (one
``Rule`` per subcategory, with the words that select it); ``category_for_description`` is the logic.

Method:

0. Words. The description is upper-cased, apostrophes and quoted single letters (LETTER "W") are
   dropped, and it is split on every non-letter, so "T-LIGHT" gives T LIGHT and "SET/3" gives SET.
   ``ALIASES`` expands truncated and run-together words ("NECKLAC" -> NECKLACE, "TEALIGHT" -> T LIGHT).
   LIGHT directly before a colour ("LIGHT BLUE") is dropped. Simple plurals are folded: -IES -> -Y
   (DOILIES -> DOILY), -XES/-SSES/-CHES/-SHES lose -ES (BOXES -> BOX), any other final -S goes
   (CANDLES -> CANDLE, CASES -> CASE), except in words of at most 3 letters, words ending in
   -SS/-US/-IS (GLASS, CACTUS) and CHRISTMAS/XMAS/CANVAS/ATLAS. Table keywords are folded the same way.
1. Seasonal words win first: a seasonal noun anywhere (CHRISTMAS, XMAS, ADVENT, SANTA, REINDEER,
   SNOWFLAKE, BAUBLE, ... / EASTER / VALENTINE / HALLOWEEN) gives "Seasonal > ...", whatever the
   product: a "CHRISTMAS TREE T-LIGHT HOLDER" is bought and merchandised as Christmas stock.
2. Multi-word phrases next ("T LIGHT HOLDER", "CAKE STAND", "HOT WATER BOTTLE", "LUNCH BOX",
   "BAG CHARM", ...). If several occur, the one ending furthest right wins, and of those ending at
   the same word the longest ("PLANT POT HOLDER" beats "POT HOLDER").
3. Otherwise the head noun: English noun phrases put the head last, so the words are scanned from
   the last one backwards and the first product noun decides ("SET OF 3 CAKE TINS PANTRY DESIGN"
   skips DESIGN and PANTRY and stops at TIN). Colours, materials, sizes, patterns (RETROSPOT,
   POLKADOT, VINTAGE, ...) and SET/PACK are not product nouns. Only if there is no product noun are
   motifs looked for the same way: words that are usually a shape or a print (HEART, STAR, BIRD,
   BALL, CHICK, ...) but name the product when nothing else does ("WOODLAND LARGE RED FELT HEART").
   Steps 2 and 3 first read only the words before the first IN/WITH/W, which introduce packaging or
   an accessory ("DIAMANTE PEN IN GIFT BOX", "SHELF WITH 4 HOOKS"), and the whole description only
   if those words name nothing.
4. Anything else ("", "?", "check", "damaged", postage lines) gets ``FALLBACK_CATEGORY``.
"""

import re
from typing import NamedTuple, TypeVar

CATEGORY_SEPARATOR = " > "
FALLBACK_CATEGORY = "Gifts > Other Gifts"
"""Returned when no rule matches: unnamed novelties, odd stock lines, empty descriptions."""


class Rule(NamedTuple):
    """One subcategory ("Top > Sub") and the words that select it.

    ``terms``: comma-separated; a single word is a product noun (step 3, or step 1 in
    ``SEASONAL_RULES``), several words are a phrase (step 2). ``motifs``: space-separated words used
    only when the description names no product noun (end of step 3).
    """

    category: str
    terms: str
    motifs: str = ""


SEASONAL_RULES: tuple[Rule, ...] = (
    Rule(
        "Seasonal > Christmas",
        "CHRISTMAS, XMAS, ADVENT, SANTA, REINDEER, SNOWFLAKE, SNOWMAN, SNOWMEN, NOEL, YULETIDE, BAUBLE, NATIVITY, "
        "TINSEL, MISTLETOE, SLEIGH, PANNETONE, POINSETTIA, RUDOLPH, JINGLE, STOCKING",
    ),
    Rule("Seasonal > Easter", "EASTER, EGG BOX", "CHICK BUNNY EGG"),
    Rule("Seasonal > Valentine's Day", "VALENTINE"),
    Rule("Seasonal > Halloween", "HALLOWEEN, PUMPKIN, GHOST"),
)

TAXONOMY: tuple[Rule, ...] = (
    # Home Decor
    Rule(
        "Home Decor > Candles & Holders",
        "CANDLE, CANDLEHOLDER, CANDLESTICK, CANDLESTAND, CANDLEPOT, CANDELABRA, VOTIVE, MATCH, T LIGHT, "
        "T LIGHT HOLDER, T LIGHT GLASS, TEA LIGHT, CANDLE HOLDER, CANDLE STICK, VOTIVE HOLDER, CANDLE PLATE, "
        "CANDLE JEWELLED BOX, CANDLE JEWEL BOX, CANDLE JEWELLED DRAWER, CANDLE FLOWERPOT, CANDLE GARDEN POT, "
        "CANDLE POT, CANDLE BOWL, CANDLE LETTER",
    ),
    Rule("Home Decor > Home Fragrance", "INCENSE, BURNER, DIFFUSER, POTPOURRI, SACHET, FRAGRANCE, OIL BURNER"),
    Rule(
        "Home Decor > Lights & Lanterns",
        "LIGHT, LAMP, LAMPSHADE, SHADE, LANTERN, CHANDELIER, LIGHTBULB, NIGHTLIGHT, FAIRY LIGHT, LIGHT CHAIN, "
        "LIGHT GARLAND, NIGHT LIGHT, PAPER LANTERN, STRING LIGHT",
    ),
    Rule("Home Decor > Clocks", "CLOCK"),
    Rule("Home Decor > Photo Frames & Albums", "FRAME, ALBUM, PHOTO FRAME, PICTURE FRAME, PHOTO CUBE, PAGE PHOTO"),
    Rule("Home Decor > Mirrors", "MIRROR, WALL MIRROR"),
    Rule(
        "Home Decor > Signs & Wall Art",
        "SIGN, DOORSIGN, PLAQUE, POSTER, PRINT, CANVAS, LETTER, WALL ART, DOOR SIGN, DOOR HANGER, WALL PLAQUE, "
        "NUMBER TILE, SLATE TILE",
    ),
    Rule(
        "Home Decor > Decorations & Ornaments",
        "DECORATION, ORNAMENT, MOBILE, CHIME, WINDCHIME, SUNCATCHER, FIGURINE, ROSETTE, WIND CHIME, TREE DECORATION, "
        "HANGING DECORATION, DISCO BALL, BELL JAR",
        "HEART STAR BIRD BUTTERFLY ANGEL WREATH BELL DOVE FEATHER OWL CHICKEN HORSE TOADSTOOL HOUSE JEWEL ICICLE "
        "FLOWER ROSE DAISY CAT RABBIT HEN DUCK MOUSE MICE PONY SHEEP MUSHROOM SHELL BUDDHA CLOCHE",
    ),
    Rule("Home Decor > Vases & Artificial Flowers", "VASE, BOUQUET, ART FLOWER, ARTIFICIAL FLOWER, PAPER FLOWER"),
    Rule(
        "Home Decor > Cushions & Textiles",
        "CUSHION, THROW, BLANKET, QUILT, CURTAIN, BEDSPREAD, CUSHION COVER, C COVER, FILLER PAD",
    ),
    Rule("Home Decor > Doormats & Doorstops", "DOORMAT, DOORSTOP, MAT, DOOR MAT, DOOR STOP"),
    Rule("Home Decor > Hooks, Knobs & Hangers", "HOOK, HANGER, COATHANGER, KNOB, COAT RACK, KEY HOLDER, DRAWER KNOB"),
    Rule(
        "Home Decor > Small Furniture",
        "CABINET, CUPBOARD, SHELF, SHELVING, STOOL, CHAIR, SEAT, POUFFE, TABLE, DRAWER, SCREEN, PANEL, UMBRELLA STAND",
    ),
    # Kitchen & Dining
    Rule("Kitchen & Dining > Mugs & Cups", "MUG, CUP, BEAKER, TEACUP, SAUCER, MUG COSY, MUG WARMER"),
    Rule(
        "Kitchen & Dining > Plates & Bowls",
        "PLATE, BOWL, DISH, PLATTER, BASIN, CHARGER, SUNDAE DISH, CONDIMENT TRAY",
    ),
    Rule("Kitchen & Dining > Cake Stands", "CAKE STAND, CAKE PLATE, CAKE CARRIER, CAKE COVER, CAKE DOME"),
    Rule(
        "Kitchen & Dining > Baking & Preserving",
        "MOULD, CUTTER, CAKE CASE, BAKING CASE, PETIT FOUR CASE, CAKE TIN, BAKING TIN, LOAF TIN, COOKIE CUTTER, "
        "BAKING MOULD, BAKING SET, COOKING SET, JAM MAKING SET, ROLLING PIN",
    ),
    Rule(
        "Kitchen & Dining > Tea Time & Breakfast",
        "TEAPOT, CAFETIERE, TEA COSY, TEA SET, TEA STRAINER, TEA INFUSER, TEA CADDY, TEA GLASS, TEA FOR ONE, "
        "COFFEE POT, COFFEE SET, EGG CUP, EGG COSY, EGG WARMER, EGG HOLDER, TOAST RACK, BREAKFAST SET",
    ),
    Rule(
        "Kitchen & Dining > Cutlery & Utensils",
        "CUTLERY, SPOON, FORK, KNIFE, TEASPOON, CHOPSTICK, LADLE, SPATULA, WHISK, TONG, SCOOP, CAKE SLICE, CUTLERY BOX",
    ),
    Rule(
        "Kitchen & Dining > Tins & Jars",
        "TIN, JAR, POT, CANISTER, CANNISTER, CADDY, CONTAINER, BARREL, BREAD BIN, BISCUIT BIN, STORAGE JAR, "
        "STORAGE TIN, JAM POT, TEA COFFEE SUGAR",
    ),
    Rule(
        "Kitchen & Dining > Lunch & Picnic",
        "HAMPER, LUNCH BOX, LUNCH BAG, SNACK BOX, PICNIC BAG, PICNIC BASKET, PICNIC BOX, PICNIC HAMPER, PICNIC CUTLERY",
    ),
    Rule(
        "Kitchen & Dining > Glassware & Bottles",
        "JUG, TUMBLER, GOBLET, CHALICE, CARAFE, DECANTER, BOTTLE, FLASK, WINE GLASS, CHAMPAGNE GLASS, APERITIF GLASS, "
        "MILKSHAKE GLASS, D O F GLASS, DRINKING GLASS",
    ),
    Rule(
        "Kitchen & Dining > Kitchen Textiles",
        "APRON, TABLECLOTH, TEA TOWEL, CAKE TOWEL, OVEN GLOVE, OVEN MITT, WASHING UP GLOVE, POT HOLDER, TABLE CLOTH, "
        "TABLE RUN, TABLE RUNNER, DISH CLOTH",
    ),
    Rule(
        "Kitchen & Dining > Placemats & Coasters",
        "PLACEMAT, COASTER, TRIVET, PLACE MAT, PLACE SETTING, BEAD COASTER, NAPKIN RING, NAPKIN CHARM",
    ),
    Rule(
        "Kitchen & Dining > Kitchen Tools",
        "SCALE, THERMOMETER, TIMER, COLANDER, GRATER, SIEVE, PAN, SAUCEPAN, BRUSH, SQUEEZER, CORER, DISPENSER, "
        "GRINDER, CHOPPING BOARD, BREAD BOARD, CHEESE BOARD, SPOON REST, MEASURING JUG, MEASURING SPOON, "
        "MEASURING CUP, FRYING PAN, FOOD COVER, KITCHEN ROLL HOLDER, UTENSIL HOLDER, POPCORN HOLDER, BOTTLE OPENER, "
        "WINE BOTTLE DRESSING, WASHING UP BRUSH, FLY SWAT, ICE CUBE TRAY, LOLLY MAKER, SALT AND PEPPER",
    ),
    Rule("Kitchen & Dining > Trays", "TRAY, TV DINNER TRAY, SNACK TRAY"),
    # Bags & Accessories
    Rule(
        "Bags & Accessories > Shopping & Jumbo Bags",
        "BAG, SHOPPER, TOTE, JUMBO BAG, JUMBO STORAGE BAG, SHOPPING BAG, SHOPPER BAG, TOTE BAG, CHARLOTTE BAG, "
        "RECYCLING BAG",
    ),
    Rule(
        "Bags & Accessories > Handbags & Travel Bags",
        "HANDBAG, BACKPACK, RUCKSACK, SATCHEL, HAND BAG, SHOULDER BAG, EVENING BAG, BEACH BAG, CABIN BAG, "
        "AIRLINE BAG, WEEKEND BAG, OVERNIGHT BAG, BUM BAG, KIDS BAG",
    ),
    Rule("Bags & Accessories > Purses & Wallets", "PURSE, WALLET, CARD WALLET"),
    Rule("Bags & Accessories > Travel Accessories", "PASSPORT COVER, LUGGAGE TAG, GLASSES CASE"),
    Rule("Bags & Accessories > Umbrellas & Parasols", "UMBRELLA, PARASOL, RAIN HAT"),
    Rule(
        "Bags & Accessories > Hair Accessories",
        "HAIRBAND, HAIRCLIP, SLIDE, COMB, SCRUNCHIE, TIARA, HEADBAND, HAIR CLIP, HAIR GRIP, HAIR SLIDE, HAIR BAND, "
        "HAIR COMB, HAIR TIE",
    ),
    Rule(
        "Bags & Accessories > Keyrings & Charms",
        "KEYRING, FOB, KEY RING, KEY CHAIN, KEY FOB, BAG CHARM, PHONE CHARM",
    ),
    Rule(
        "Bags & Accessories > Clothing & Accessories",
        "SCARF, HAT, GLOVE, MITTEN, SOCK, SLIPPER, SHOE, SUNGLASSES, EARMUFF, BIB, SKIRT, PONCHO, FAN, SOMBRERO, "
        "RAIN MAC",
        "DRESS",
    ),
    # Jewellery
    Rule("Jewellery > Necklaces", "NECKLACE, PENDANT, LARIAT, CHOKER, CHAIN"),
    Rule("Jewellery > Bracelets & Bangles", "BRACELET, BANGLE, ANKLET"),
    Rule("Jewellery > Earrings", "EARRING"),
    Rule("Jewellery > Rings", "RING"),
    Rule("Jewellery > Brooches, Badges & Charms", "BROOCH, BADGE, CORSAGE, HAT PIN", "CHARM"),
    Rule(
        "Jewellery > Jewellery Sets & Storage",
        "JEWELLERY SET, NECKLACE BRACELET, JEWELLERY BOX, JEWEL BOX, JEWELLERY STAND, JEWEL STAND, JEWELLERY DRAWER",
    ),
    # Stationery
    Rule(
        "Stationery > Notebooks & Journals",
        "NOTEBOOK, SKETCHBOOK, JOURNAL, DIARY, NOTEPAD, JOTTER, SCRAPBOOK, NOTE BOOK, POCKET BOOK, SCRAP BOOK, "
        "ADDRESS BOOK, EXERCISE BOOK, MEMO PAD",
    ),
    Rule(
        "Stationery > Cards & Invitations",
        "CARD, INVITE, INVITATION, POSTCARD, NOTELET, ENVELOPE, MINICARD, GREETING CARD",
    ),
    Rule(
        "Stationery > Gift Wrap & Ribbons",
        "WRAP, RIBBON, TAG, WRAPPING PAPER, GIFT WRAP, GIFT TAG, GIFT BAG, GIFT BOX, PAPER BAG, TISSUE PAPER, "
        "TISSUE REAM, RIBBON REEL",
    ),
    Rule("Stationery > Stickers & Tape", "STICKER, TAPE, STICKER SHEET, FRAME STICKER"),
    Rule(
        "Stationery > Pens & Pencils",
        "PEN, PENCIL, CRAYON, CHALK, ERASER, RUBBER, SHARPENER, RULER, HIGHLIGHTER, PENCIL CASE, PEN CASE",
    ),
    Rule(
        "Stationery > Desk & Office",
        "CALENDAR, PAPERWEIGHT, STAPLER, CLIPBOARD, FOLDER, STATIONERY, BOOKMARK, BOOKEND, CLIP, LETTER RACK, "
        "LETTER TRAY, LETTER HOLDER, WALL TIDY, DESK TIDY, HOLE PUNCH, TAPE DISPENSER, STAMP SET, WRITING SET, "
        "STATIONERY BOX, PAPER CLIP, SHOPPING LIST, BOOK MARK, RECIPE BOOK STAND",
    ),
    Rule(
        "Stationery > Magnets & Memo Boards",
        "MAGNET, CHALKBOARD, BLACKBOARD, NOTICEBOARD, CARDHOLDER, FRIDGE MAGNET, MEMO BOARD, BLACK BOARD, "
        "CARD HOLDER, MEMO HOLDER, PHOTO CLIP",
    ),
    # Party & Celebration
    Rule(
        "Party & Celebration > Party Supplies",
        "CONFETTI, CRACKER, PINATA, LEI, PARTY BAG, CANDY BAG, PARTY HAT, PARTY CHARM, PARTY CONE, PARTY SUNGLASSES, "
        "COCKTAIL PARASOL, COCKTAIL STICK, COCKTAIL SWORD, BARRIER TAPE",
    ),
    Rule(
        "Party & Celebration > Party Tableware",
        "NAPKIN, STRAW, DOILY, PAPER PLATE, PAPER CUP, NAPKIN BOX, CAKE DECORATION, CAKE FRILL, LACE PAPER",
    ),
    Rule(
        "Party & Celebration > Bunting & Garlands",
        "BUNTING, GARLAND, BANNER, PENNANT, FLAG, PAPER CHAIN, PAPER CHAIN KIT, HONEYCOMB PAPER, HONEYCOMB FAN, "
        "HONEYCOMB PAPER FAN, HONEYCOMB PAPER BALL",
    ),
    Rule("Party & Celebration > Balloons", "BALLOON PUMP", "BALLOON"),
    # Toys & Games
    Rule(
        "Toys & Games > Soft Toys & Dolls",
        "TEDDY, DOLL, PUPPET, SOFT TOY, RAG DOLL, TEDDY BEAR, FARM ANIMAL",
        "BEAR",
    ),
    Rule(
        "Toys & Games > Toys",
        "TOY, YOYO, WINDMILL, HELICOPTER, KITE, MARBLE, HARMONICA, WHISTLE, GLOBE, PLAYHOUSE, INFLATABLE, BLOCK, "
        "BUBBLE, GLIDER, TATTOO, SPINNING TOP, ROCKING HORSE, WATER PISTOL, WATER BOMB, STRESS BALL, FLYING DISC, "
        "SKIPPING ROPE, CREEPY CRAWLIE, CREEPY CRAWLY, FARMYARD ANIMAL, RATTLE SNAKE",
        "BALL DINOSAUR SNAKE MONSTER",
    ),
    Rule(
        "Toys & Games > Games & Puzzles",
        "GAME, JIGSAW, PUZZLE, DOMINO, BINGO, CHESS, LUDO, DICE, SKITTLE, CROQUET, ROUNDERS, PLAYING CARD, "
        "SNAKES LADDERS, NAUGHTS CROSSES, NOUGHTS CROSSES, GARDEN SET",
    ),
    Rule(
        "Toys & Games > Kids' Crafts",
        "MAGIC DRAWING SLATE, COLOURING BOOK, COLOURING SET, PAINT SET, PAINT YOUR OWN, MAKE YOUR OWN, KIT CARD, "
        "MODELLING CLAY",
    ),
    # Crafts & Sewing
    Rule(
        "Crafts & Sewing > Sewing & Knitting",
        "NEEDLE, THIMBLE, SCISSOR, SEWING KIT, SEWING BOX, SEWING SET, SEW ON, KNITTING KIT, KNITTING NANCY, "
        "PIN CUSHION, TAPE MEASURE, MEASURING TAPE, REPAIR KIT, BUTTON BOX",
        "BUTTON",
    ),
    Rule("Crafts & Sewing > Craft Kits & Supplies", "KIT, PATCH, STENCIL, GEM, CRAFT"),
    # Garden & Outdoor
    Rule(
        "Garden & Outdoor > Planters & Pots",
        "PLANTER, FLOWERPOT, PLANT POT, FLOWER POT, PLANTER POT, PLANT POT HOLDER, PLANT HOLDER, PLANT CAGE, "
        "PLANT LADDER, HERB GARDEN, WINDOW BOX, WALL PLANTER",
    ),
    Rule(
        "Garden & Outdoor > Garden Tools & Growing",
        "TROWEL, SPADE, RAKE, SECATEURS, WHEELBARROW, TWINE, SEED, FLYTRAP, WATERING CAN, GARDEN FORK, GARDEN TOOL, "
        "GARDEN GLOVE, GARDEN BRUSH, GARDEN THERMOMETER, KNEELING PAD, KNEELING MAT, HERB MARKER, GARDEN MARKER, "
        "PLANT LABEL, POLE SUPPORT, GROW YOUR OWN, SOW N GROW, GROW KIT",
    ),
    Rule("Garden & Outdoor > Birds & Wildlife", "BIRDHOUSE, FEEDER, BIRD FEEDER, BIRD TABLE, BIRD HOUSE, BIRD BATH"),
    Rule("Garden & Outdoor > Garden Decor", "GNOME, WINDSOCK, GARDEN DECORATION, GARDEN ORNAMENT"),
    Rule("Garden & Outdoor > Outdoor Living", "HAMMOCK, DECKCHAIR, PICNIC BLANKET"),
    # Bath & Beauty
    Rule(
        "Bath & Beauty > Soap, Towels & Bath",
        "SOAP, SPONGE, FLANNEL, TOWEL, LOOFAH, SOAP DISH, SOAP HOLDER, SOAP RACK, BATH SALTS, BATH BOMB, "
        "BATHROOM BOTTLE, TOILETTE BOTTLE, HAND TOWEL",
    ),
    Rule(
        "Bath & Beauty > Bathroom Accessories",
        "TOILET ROLL HOLDER, TOOTHBRUSH HOLDER, BATHROOM SCALE, BATHROOM CABINET, MEDICINE CABINET, BATHROOM HOOK, "
        "BATHROOM SET, SHOWER CAP",
    ),
    Rule(
        "Bath & Beauty > Cosmetic & Wash Bags",
        "WASHBAG, WASH BAG, COSMETIC BAG, COSMETICS BAG, MAKE UP BAG, TOILETRY BAG, VANITY CASE",
    ),
    Rule(
        "Bath & Beauty > Beauty Accessories",
        "PERFUME, LIPSTICK, BALM, COMPACT MIRROR, POCKET MIRROR, NAIL FILE, LIP GLOSS, LIP BALM, HAND CREAM",
    ),
    Rule("Bath & Beauty > Tissues & First Aid", "TISSUE, PLASTER, TISSUE BOX, FIRST AID, PILL BOX"),
    Rule(
        "Bath & Beauty > Hot Water Bottles & Warmers",
        "HOTTIE, HOT WATER BOTTLE, HAND WARMER, POCKET WARMER, WHEAT BAG",
    ),
    # Storage & Organisation
    Rule(
        "Storage & Organisation > Storage Boxes & Baskets",
        "BOX, BASKET, CRATE, BUCKET, BIN, CHEST, TRUNK, CASE, CUBE, STORAGE BOX, STORAGE BAG, NESTING BOX, BOOK BOX, "
        "HAT BOX, WASTE BIN, WASTE PAPER BIN",
    ),
    Rule(
        "Storage & Organisation > Trinket & Keepsake Boxes",
        "TRINKET BOX, TRINKET TRAY, TRINKET POT, KEEPSAKE BOX, MUSICAL BOX, MUSIC BOX, TREASURE CHEST",
    ),
    Rule("Storage & Organisation > Money Boxes", "MONEY BOX, MONEY BANK, PIGGY BANK"),
    Rule(
        "Storage & Organisation > Organisers & Racks",
        "ORGANISER, RACK, TIDY, LINER, MAGAZINE RACK, NEWSPAPER STAND, TOY TIDY",
    ),
    Rule(
        "Storage & Organisation > Laundry & Pegs",
        "PEG, PEG BAG, CLOTHES PEG, LAUNDRY BAG, WASHING LINE, IRONING BOARD",
    ),
    # Gifts (FALLBACK_CATEGORY is the last subcategory)
    Rule(
        "Gifts > Gadgets & Novelties",
        "ASHTRAY, CALCULATOR, HEADPHONE, SPEAKER, RADIO, TORCH, LIGHTER, DOORBELL, SCREWDRIVER, TOOL, BOOM BOX, "
        "BICYCLE BELL, SPIRIT LEVEL, PUNCTURE REPAIR",
    ),
    Rule("Gifts > Gift Sets", "GIFT SET"),
    Rule("Gifts > Pet Accessories", "COLLAR, DOG BOWL, CAT BOWL, DOG FOOD, CAT FOOD"),
)

ALIASES: dict[str, str] = {
    # truncated in the source data
    "NECKL": "NECKLACE",
    "NECKLAC": "NECKLACE",
    "CANDL": "CANDLE",
    "CAND": "CANDLE",
    "HLDR": "HOLDER",
    "DEC": "DECORATION",
    "CHAR": "CHARM",
    "PWEIGHT": "PAPERWEIGHT",
    # misspelt
    "BRACLET": "BRACELET",
    "ARTIIFCIAL": "ARTIFICIAL",
    "SKIPPPING": "SKIPPING",
    # run together
    "TEALIGHT": "T LIGHT",
    "TLIGHT": "T LIGHT",
    "CAKESTAND": "CAKE STAND",
    "PHOTOFRAME": "PHOTO FRAME",
    "HAIRSLIDE": "HAIR SLIDE",
    "WASTEPAPER": "WASTE PAPER",
    "TOASTRACK": "TOAST RACK",
    "FRUITBOWL": "FRUIT BOWL",
    "MEMOBOARD": "MEMO BOARD",
    "DRAWERKNOB": "DRAWER KNOB",
    "SQUARECUSHION": "SQUARE CUSHION",
    "VIPPASSPORT": "VIP PASSPORT",
    "BLACKCHRISTMAS": "BLACK CHRISTMAS",
    "CHOCOLATECANDLE": "CHOCOLATE CANDLE",
}
"""Words of the source data that stand for other words (step 0)."""

_COLOURS = frozenset(
    {"BLUE", "PINK", "GREEN", "RED", "YELLOW", "PURPLE", "ORANGE", "BROWN", "GREY", "GOLD", "SILVER", "IVORY"}
    | {"CREAM", "WHITE", "BLACK", "LILAC"}
)
_CUT_WORDS = frozenset({"IN", "WITH", "W"})
_IRREGULAR_PLURALS = {"COOKIES": "COOKIE", "DOMINOES": "DOMINO"}
_NOT_PLURALS = frozenset({"CHRISTMAS", "XMAS", "CANVAS", "ATLAS"})
_QUOTED_LETTER = re.compile(r'"+[A-Z]"+')
_Key = TypeVar("_Key", str, tuple[str, ...])


def _fold(word: str) -> str:
    """Fold a simple English plural to its singular (step 0)."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if len(word) <= 3 or not word.endswith("S") or word.endswith(("SS", "US", "IS")) or word in _NOT_PLURALS:
        return word
    if word.endswith("IES") and len(word) > 4:
        return word[:-3] + "Y"
    if word.endswith(("XES", "SSES", "CHES", "SHES")):
        return word[:-2]
    return word[:-1]


def _words(text: str) -> list[str]:
    """Step 0: the normalised, singular upper-case words of a description or of a table keyword."""
    text = _QUOTED_LETTER.sub(" ", text.upper().replace("'", "").replace("\u2019", ""))
    words = [part for word in re.findall(r"[A-Z]+", text) for part in ALIASES.get(word, word).split()]
    return [
        _fold(word)
        for i, word in enumerate(words)
        if not (word == "LIGHT" and i + 1 < len(words) and words[i + 1] in _COLOURS)
    ]


class _Index(NamedTuple):
    seasonal: dict[str, str]
    nouns: dict[str, str]
    motifs: dict[str, str]
    phrases: dict[tuple[str, ...], str]


def _add(index: dict[_Key, str], key: _Key, category: str) -> None:
    if index.setdefault(key, category) != category:
        raise ValueError(f"{key!r} is listed under both {index[key]!r} and {category!r}")


def _single_word(word: str) -> str:
    words = _words(word)
    if len(words) != 1:
        raise ValueError(f"{word!r} is not one word once normalised; write it as a phrase")
    return words[0]


def _build_index() -> _Index:
    """Index the tables by normalised words; refuse a malformed category path or a term listed twice."""
    index = _Index({}, {}, {}, {})
    for rules, nouns in ((SEASONAL_RULES, index.seasonal), (TAXONOMY, index.nouns)):
        for rule in rules:
            levels = rule.category.split(CATEGORY_SEPARATOR)
            if len(levels) != 2 or not all(0 < len(level.strip()) <= 100 and ">" not in level for level in levels):
                raise ValueError(f"{rule.category!r} is not a two-level category path")
            for term in filter(None, (part.strip() for part in rule.terms.split(","))):
                if " " in term:
                    phrase = tuple(_words(term))
                    if len(phrase) < 2:
                        raise ValueError(f"{term!r} is one word once normalised; write it as a noun")
                    _add(index.phrases, phrase, rule.category)
                else:
                    _add(nouns, _single_word(term), rule.category)
            for word in rule.motifs.split():
                _add(index.motifs, _single_word(word), rule.category)
    return index


_INDEX = _build_index()
_LONGEST_PHRASE = max(len(phrase) for phrase in _INDEX.phrases)


def _match(words: list[str]) -> str | None:
    """Steps 2 and 3 on a word list: rightmost (then longest) phrase, else last product noun, else last motif."""
    for end in range(len(words), 0, -1):
        for size in range(min(_LONGEST_PHRASE, end), 1, -1):
            category = _INDEX.phrases.get(tuple(words[end - size : end]))
            if category:
                return category
    for lookup in (_INDEX.nouns, _INDEX.motifs):
        for word in reversed(words):
            if word in lookup:
                return lookup[word]
    return None


def category_for_description(description: str) -> str:
    """Return a category path "Top > Sub" for a description; FALLBACK_CATEGORY when nothing matches."""
    words = _words(description or "")
    for word in words:
        if word in _INDEX.seasonal:
            return _INDEX.seasonal[word]
    cut = next((i for i, word in enumerate(words) if word in _CUT_WORDS), len(words))
    return _match(words[:cut]) or _match(words) or FALLBACK_CATEGORY
