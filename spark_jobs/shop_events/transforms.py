"""shop_events transformations: REES46 clickstream lines -> typed events -> three tables (pure).

Input lines are the CSV text of one day's export (`value`, header already checked and dropped by
the framework):

    event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
    2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d7...

event_time is UTC (stamped " UTC"): it is parsed with its zone, so the instant does not depend on
the session's time zone, and event_date is the UTC day of that text. Ids are BIGINT (REES46
category ids have 19 digits). Prices are decimal(12,2): a price with more decimals is refused,
never rounded. An empty category_code or brand is NULL (the source leaves many empty).

Decisions (docs: warehouse/migrations/V004__analytics_shop_events.sql):
* a session is a user_session; an event without one cannot be attributed to a funnel and is
  refused (the source's last line, cut short, is such a line);
* event types other than view, cart and purchase (REES46's other exports have
  remove_from_cart) are refused with the type named, not silently dropped from the funnel;
* sessions are counted per UTC day, over the events of that day;
* cart_abandonment: a session counts in the category of every item it carted; it "purchased"
  when it has any purchase that day; a purchase without a cart that day (the window cuts
  sessions, or a buy-now) is in session_funnel but in no cart_abandonment row.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.common.outputs import GroupedOutput, LineOutput, Output, RunId
from spark_jobs.common.raw_job import other_day_reason

HEADER = ("event_time", "event_type", "product_id", "category_id", "category_code", "brand",
          "price", "user_id", "user_session")
# Raw fields keep a prefix: the typed columns reuse some of the header's names.
RAW_COLUMNS = tuple(f"raw_{name}" for name in HEADER)
EXTRA_FIELD = "_extra"  # the text of a tenth field, if a line has one
# RFC 4180 quoting (the real export quotes nothing, but a brand may hold a comma).
CSV_OPTIONS = {"sep": ",", "quote": '"', "escape": '"', "mode": "PERMISSIVE"}

EVENT_TYPES = ("view", "cart", "purchase")
TIME_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} UTC$"
TIME_FORMAT = "yyyy-MM-dd HH:mm:ss VV"  # VV: the zone id, here always "UTC"
DIGITS = r"^[0-9]+$"
# A plain decimal number: digits, an optional fraction (no exponent, no sign, no thousands).
PRICE_TEXT = r"^[0-9]+(?:\.[0-9]+)?$"
PRICE_TYPE = "decimal(12,2)"
PRICE_MAX = "9999999999.99"
UNKNOWN_CATEGORY = "unknown"
SHOWN = 80  # characters of a bad value a reason repeats

TYPED_COLUMNS = ("event_ts", "event_date", "event_type", "product_id", "category_id",
                 "category_code", "brand", "price", "user_id", "user_session")
NULL_COUNT_COLUMNS = ("event_ts", "event_type", "product_id", "category_id", "category_code",
                      "brand", "price", "user_id", "user_session")
RANGE_COLUMNS = ("event_ts", "product_id", "category_id", "price", "user_id")
EVENT_COLUMNS = (*TYPED_COLUMNS, "run_id")
FUNNEL_COLUMNS = ("event_date", "sessions", "sessions_viewed", "sessions_carted",
                  "sessions_purchased", "run_id")
ABANDONMENT_COLUMNS = ("event_date", "category", "sessions_with_cart", "sessions_with_purchase",
                       "abandoned_sessions", "abandonment_rate", "run_id")
ID_FIELDS = ("product_id", "category_id", "user_id")

MORE_FIELDS = f"line has more fields than the header's {len(HEADER)}"


def _text(column: Column) -> Column:
    """Trimmed text, NULL when blank."""
    trimmed = F.trim(column)
    return F.when(trimmed != "", trimmed)


def _raw(name: str) -> Column:
    return _text(F.col(f"raw_{name}"))


def _shown(field: str, suffix: str) -> Column:
    """"<field> '<its text, cut to SHOWN characters>' <suffix>"."""
    return F.concat(F.lit(f"{field} '"), F.substring(_raw(field), 1, SHOWN), F.lit(f"' {suffix}"))


def split_fields(lines: DataFrame) -> DataFrame:
    """Adds RAW_COLUMNS and `_extra` (the raw CSV fields, as text) parsed from `value`."""
    ddl = ", ".join(f"`{c}` STRING" for c in (*RAW_COLUMNS, EXTRA_FIELD))
    parsed = F.from_csv(F.col("value"), ddl, CSV_OPTIONS).alias("_fields")
    return lines.withColumn("_fields", parsed).select(
        "*", *[F.col(f"_fields.`{c}`").alias(c) for c in (*RAW_COLUMNS, EXTRA_FIELD)]
    ).drop("_fields")


def _id(name: str) -> Column:
    """A non-negative whole number as BIGINT; NULL if not digits or out of BIGINT's range."""
    text = _raw(name)
    return F.when(text.rlike(DIGITS), text.try_cast("bigint"))


def type_fields(raw: DataFrame) -> DataFrame:
    """Adds TYPED_COLUMNS (and `_price_too_precise`) to a frame holding RAW_COLUMNS."""
    time_text = _raw("event_time")
    time_ok = time_text.rlike(TIME_TEXT)
    price_text = _raw("price")
    return raw.select(
        "*",
        F.when(time_ok, F.try_to_timestamp(time_text, F.lit(TIME_FORMAT))).alias("event_ts"),
        F.when(time_ok, F.try_to_date(F.substring(time_text, 1, 10), "yyyy-MM-dd")
               ).alias("event_date"),
        _raw("event_type").alias("event_type"),
        *[_id(name).alias(name) for name in ("product_id", "category_id")],
        _raw("category_code").alias("category_code"),
        _raw("brand").alias("brand"),
        F.when(price_text.rlike(PRICE_TEXT), price_text.try_cast(PRICE_TYPE)).alias("price"),
        _id("user_id").alias("user_id"),
        _raw("user_session").alias("user_session"),
        # decimal(12,2) rounds a third decimal away: keep whether the text had one.
        price_text.rlike(r"\.[0-9]{2}0*[1-9]").alias("_price_too_precise"),
    )


def _missing_or(field: str, bad: Column, reason: Column) -> list[tuple[Column, Column]]:
    return [(_raw(field).isNull(), F.lit(f"missing {field}")), (bad, reason)]


def _checks() -> list[tuple[Column, Column]]:
    """(the line is refused, why) in the order the reasons win."""
    price_text = _raw("price")
    checks = [(F.col(EXTRA_FIELD).isNotNull(), F.lit(MORE_FIELDS))]
    checks += _missing_or("event_time", F.col("event_ts").isNull(),
                          _shown("event_time", "is not a valid yyyy-MM-dd HH:mm:ss UTC time"))
    checks += _missing_or("event_type", ~F.col("event_type").isin(*EVENT_TYPES),
                          _shown("event_type", "is not " + ", ".join(EVENT_TYPES[:-1])
                                 + " or " + EVENT_TYPES[-1]))
    for name in ID_FIELDS[:2]:
        checks += _missing_or(name, F.col(name).isNull(), _shown(
            name, "is not a whole number from 0 to 9223372036854775807"))
    checks += _missing_or("price", ~price_text.rlike(PRICE_TEXT),
                          _shown("price", "is not a plain non-negative decimal number"))
    checks += [
        (F.col("_price_too_precise"), _shown("price", "has more than 2 decimals")),
        (F.col("price").isNull(), _shown("price", f"is over {PRICE_MAX}")),
    ]
    checks += _missing_or("user_id", F.col("user_id").isNull(), _shown(
        "user_id", "is not a whole number from 0 to 9223372036854775807"))
    checks.append((F.col("user_session").isNull(),
                   F.lit("missing user_session (the event belongs to no session)")))
    return checks


def _reason() -> Column:
    """Why the job refuses a typed line (NULL: it is fine); the first problem wins."""
    checks = _checks()
    chain = F.when(checks[0][0], checks[0][1])
    for condition, reason in checks[1:]:
        chain = chain.when(condition, reason)
    return chain


def parse(lines: DataFrame) -> DataFrame:
    """Every input column (`value`, `_line`, the framework's bookkeeping), TYPED_COLUMNS,
    `category` (cart_abandonment's group) and `_reason`."""
    typed = type_fields(split_fields(lines))
    return typed.select(*lines.columns, *TYPED_COLUMNS,
                        top_category(F.col("category_code")).alias("category"),
                        _reason().alias("_reason"))


def partition_reason(partition: Column) -> Column:
    """An event of another UTC day than its partition (a date column): the load replaces
    the days its rows carry, so it would replace a day this run does not own."""
    return other_day_reason("event_date", "event_date", partition)


def shop_events(valid: DataFrame, run_id: RunId) -> DataFrame:
    """Accepted events in the column order and types of analytics.shop_events."""
    return valid.select(*TYPED_COLUMNS, F.lit(run_id).alias("run_id"))


def _has(event_type: str) -> Column:
    """Aggregate: whether the group holds an event of `event_type`."""
    return F.max(F.col("event_type") == event_type)


def _sessions(valid: DataFrame) -> DataFrame:
    """One row per (event_date, user_session): whether it viewed, carted, purchased."""
    return valid.groupBy("event_date", "user_session").agg(
        *[_has(kind).alias(f"_{kind}") for kind in EVENT_TYPES])


def session_funnel(valid: DataFrame, run_id: RunId) -> DataFrame:
    """One row per UTC day (analytics.session_funnel): sessions with any accepted event, and
    of those, sessions with at least one view, cart, purchase."""
    return (
        _sessions(valid).groupBy("event_date")
        .agg(F.count(F.lit(1)).alias("sessions"),
             *[F.count_if(F.col(f"_{kind}")).alias(name) for kind, name in (
                 ("view", "sessions_viewed"), ("cart", "sessions_carted"),
                 ("purchase", "sessions_purchased"))])
        .select(*FUNNEL_COLUMNS[:-1], F.lit(run_id).alias("run_id"))
    )


def top_category(category_code: Column) -> Column:
    """The text before the first "." of a category code; 'unknown' when there is none."""
    return F.coalesce(F.substring_index(category_code, ".", 1), F.lit(UNKNOWN_CATEGORY))


def abandonment_rate() -> Column:
    """abandoned_sessions / sessions_with_cart rounded half up to 4 decimals, exactly: in
    whole numbers, floor((20000 a + c) / 2c) is a/c in ten-thousandths rounded half up (a
    decimal division would round to its own scale first, and round again)."""
    ten_thousandths = F.expr("(abandoned_sessions * 20000 + sessions_with_cart)"
                             " div (2 * sessions_with_cart)")
    return (ten_thousandths.cast("decimal(20,0)") / F.lit(10000)).cast("decimal(5,4)")


def cart_abandonment(valid: DataFrame, run_id: RunId) -> DataFrame:
    """One row per UTC day and top-level category of a carted item
    (analytics.cart_abandonment): sessions that carted an item of the category, those of them
    with a purchase that day, those without (abandoned) and abandonment_rate."""
    carts = valid.where(is_cart()).select("event_date", "user_session", "category").distinct()
    purchased = (_sessions(valid).where(F.col("_purchase"))
                 .select("event_date", "user_session", F.lit(True).alias("_purchased")))
    with_cart = F.count(F.lit(1))
    with_purchase = F.count_if(F.coalesce(F.col("_purchased"), F.lit(False)))
    return (
        carts.join(purchased, ["event_date", "user_session"], "left")
        .groupBy("event_date", "category")
        .agg(with_cart.alias("sessions_with_cart"),
             with_purchase.alias("sessions_with_purchase"))
        .withColumn("abandoned_sessions",
                    F.col("sessions_with_cart") - F.col("sessions_with_purchase"))
        .select(*ABANDONMENT_COLUMNS[:-2], abandonment_rate().alias("abandonment_rate"),
                F.lit(run_id).alias("run_id"))
    )


def is_cart() -> Column:
    """The lines that reach cart_abandonment (its category is checked on those)."""
    return F.col("event_type") == "cart"


# Counts cannot overflow BIGINT and the rate is within 0..1: no totals to check.
OUTPUTS: dict[str, Output] = {
    "shop_events": LineOutput(shop_events),
    "session_funnel": GroupedOutput(session_funnel, keys=("event_date",),
                                    day="event_date"),
    "cart_abandonment": GroupedOutput(cart_abandonment, keys=("event_date", "category"),
                                      lines=is_cart, day="event_date"),
}
