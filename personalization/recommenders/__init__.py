"""The recommenders: pure modules over arrays (no Django), one interface (``base.Recommender``)."""

from personalization.recommenders.base import Recommender
from personalization.recommenders.buy_again import BuyAgain
from personalization.recommenders.content import ContentBased
from personalization.recommenders.cooccurrence import BoughtTogether, ViewedTogether
from personalization.recommenders.ease import ItemRegression
from personalization.recommenders.hybrid import Hybrid
from personalization.recommenders.hybrid_factors import LightFMHybrid
from personalization.recommenders.popularity import Popular, Trending

RECOMMENDERS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        Popular,
        Trending,
        ContentBased,
        BoughtTogether,
        ViewedTogether,
        ItemRegression,
        BuyAgain,
        LightFMHybrid,
        Hybrid,
    )
}
