"""Demo data from the Zhengzhou Daily of 2026-05-11: the Y359 tourist train and three bus lines.

Everything goes through the catalogue services, as an operator would enter it. Loading twice
changes nothing: an operator that already exists is left as it is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from app.accounts import operators
from app.accounts.schemas import OperatorCreate, OperatorPrincipal, StaffCreate
from app.accounts.services import create_staff
from app.accounts.tables import Staff, StaffRole
from app.booking.rows import BookingRow
from app.booking.schemas import AllotmentCreate, BookingCreate
from app.booking.services import allotments, hold, seat_blocks
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingStatus
from app.catalogue.schemas.crew import CrewIn
from app.catalogue.schemas.departures import (
    BulkScheduleIn,
    DepartureBlocksIn,
    DepartureCreate,
    FaresIn,
)
from app.catalogue.schemas.routes import ItineraryIn, RouteCreate, SeasonalOfferIn
from app.catalogue.schemas.vehicles import VehicleCreate
from app.catalogue.services import (
    crew,
    departure_edits,
    departure_status,
    fares,
    itineraries,
    offers,
    routes,
    seasons,
    vehicles,
)
from app.catalogue.tables import Departure, DepartureStatus, RouteStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.settings import Settings
from app.excursions.schemas import AssignmentsIn, CoachIn, ExcursionIn
from app.excursions.services import assignments, excursions
from app.partners import services as partners
from app.partners.schemas import AgencyCreate

DEMO_PASSWORD = "tourline-demo-password"
# The demo agency's OCTO API key (demo data is refused in production).
DEMO_PARTNER_KEY = "tl_demo0001.zz-youth-travel-demo-key"
TZ = "Asia/Shanghai"
T = TypeVar("T")


@dataclass
class DemoSummary:
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"created: {item}" for item in self.created]
        lines += [f"already there: {item}" for item in self.skipped]
        lines.append(f"demo logins (password {DEMO_PASSWORD!r}): {', '.join(DEMO_LOGINS)}")
        return "\n".join(lines)


DEMO_LOGINS = ("admin@tourline.example", "ops@zy-rail.example", "ops@zz-bus.example")


def _convert(payload: dict[str, Any], kind: type[T]) -> T:
    return msgspec.convert(payload, kind)


def _t(zh: str, en: str) -> dict[str, str]:
    return {"zh_Hans": zh, "en": en}


async def _operator_admin(slug: str, payload: dict[str, Any], email: str) -> OperatorPrincipal:
    operator = await operators.create_operator(_convert(payload, OperatorCreate))
    staff = await create_staff(
        _convert(
            {
                "email": email,
                "name": f"{slug} admin",
                "password": DEMO_PASSWORD,
                "role": "operator_admin",
            },
            StaffCreate,
        ),
        operator.id,
    )
    return OperatorPrincipal(
        staff_id=staff.id, role=StaffRole.operator_admin, operator_id=operator.id
    )


# ---------------------------------------------------------------- the Y359 tourist train

TRAIN_ITINERARY: list[
    tuple[
        str, str, bool, list[tuple[str, str, str | None, str | None, list[tuple[str, str]], bool]]
    ]
] = [
    # (title zh, title en, night on train,
    #  stops: (place zh, place en, arrive, depart, activities, by coach))
    (
        "郑州出发",
        "Leaving Zhengzhou",
        True,
        [
            (
                "郑州站",
                "Zhengzhou Station",
                None,
                "05:30",
                [("登车、领取卧铺", "Boarding and berth allocation")],
                False,
            ),
        ],
    ),
    (
        "穿越河西走廊",
        "Through the Hexi Corridor",
        True,
        [
            (
                "列车上",
                "On board",
                None,
                None,
                [("列车长讲解西北风物", "The train steward's talk on the north-west")],
                False,
            ),
        ],
    ),
    (
        "天山天池",
        "Tianshan Heavenly Lake",
        True,
        [
            ("乌鲁木齐站", "Ürümqi Station", "07:00", "07:40", [], True),
            (
                "天山天池",
                "Tianshan Heavenly Lake",
                "09:30",
                "16:00",
                [("环湖步行", "Lakeside walk")],
                True,
            ),
        ],
    ),
    (
        "那拉提草原",
        "Nalati Grassland",
        True,
        [
            ("那拉提站", "Nalati Station", "06:30", "07:00", [], True),
            (
                "那拉提草原",
                "Nalati Grassland",
                "08:30",
                "17:00",
                [("空中草原", "The sky meadow"), ("哈萨克族毡房做客", "Visiting a Kazakh yurt")],
                True,
            ),
        ],
    ),
    (
        "赛里木湖",
        "Sayram Lake",
        True,
        [
            ("博乐站", "Bole Station", "07:00", "07:30", [], True),
            (
                "赛里木湖",
                "Sayram Lake",
                "09:30",
                "17:30",
                [("湖畔骑行", "Cycling by the lake")],
                True,
            ),
        ],
    ),
    (
        "前往阿勒泰",
        "On to Altay",
        True,
        [
            (
                "列车上",
                "On board",
                None,
                None,
                [("随车医生健康讲座", "Health talk by the on-board doctor")],
                False,
            ),
        ],
    ),
    (
        "喀纳斯",
        "Kanas",
        False,
        [
            ("北屯站", "Beitun Station", "06:00", "06:30", [], True),
            (
                "喀纳斯湖",
                "Kanas Lake",
                "11:00",
                None,
                [
                    ("观鱼台", "Fish-viewing platform"),
                    ("卧龙湾、月亮湾", "Wolong Bay and Moon Bay"),
                ],
                True,
            ),
        ],
    ),
    (
        "禾木古村落",
        "Hemu Village",
        True,
        [
            (
                "禾木古村落",
                "Hemu Village",
                "09:00",
                "15:00",
                [("图瓦人村落晨雾", "Morning mist over the Tuvan village")],
                True,
            ),
            ("北屯站", "Beitun Station", "20:00", "21:00", [], True),
        ],
    ),
    (
        "南下天山",
        "South across the Tianshan",
        True,
        [
            (
                "列车上",
                "On board",
                None,
                None,
                [("新疆民歌联欢", "Xinjiang folk song evening")],
                False,
            ),
        ],
    ),
    (
        "天山神秘大峡谷",
        "Tianshan Mysterious Grand Canyon",
        True,
        [
            ("库车站", "Kuqa Station", "07:30", "08:00", [], True),
            (
                "天山神秘大峡谷",
                "Tianshan Mysterious Grand Canyon",
                "09:30",
                "15:30",
                [("峡谷徒步", "Canyon hike")],
                True,
            ),
        ],
    ),
    (
        "喀什古城",
        "Kashgar Old Town",
        False,
        [
            ("喀什站", "Kashgar Station", "07:00", "07:30", [], True),
            (
                "喀什古城",
                "Kashgar Old Town",
                "09:00",
                None,
                [
                    ("古城开城仪式", "Old Town opening ceremony"),
                    ("艾提尕尔清真寺外观", "Id Kah Mosque from outside"),
                ],
                True,
            ),
        ],
    ),
    (
        "慕士塔格峰",
        "Muztagh Ata",
        True,
        [
            (
                "卡拉库里湖",
                "Karakul Lake",
                "11:00",
                "15:00",
                [("远眺慕士塔格峰", "Views of Muztagh Ata")],
                True,
            ),
            ("喀什站", "Kashgar Station", "20:00", "21:00", [], True),
        ],
    ),
    (
        "东返",
        "Heading east",
        True,
        [
            ("列车上", "On board", None, None, [("旅途分享会", "Sharing the journey")], False),
        ],
    ),
    (
        "东返",
        "Heading east",
        True,
        [
            ("列车上", "On board", None, None, [], False),
        ],
    ),
    (
        "抵达郑州",
        "Back in Zhengzhou",
        False,
        [
            ("郑州站", "Zhengzhou Station", "16:00", None, [("散团", "Farewell")], False),
        ],
    ),
]


ALL_MEALS = ["breakfast", "lunch", "dinner"]
KANAS_HOTEL = {
    "name": _t("喀纳斯贾登峪度假山庄", "Jiadengyu Resort, Kanas"),
    "address": _t(
        "新疆阿勒泰地区布尔津县喀纳斯景区贾登峪",
        "Jiadengyu, Kanas Scenic Area, Burqin County, Altay",
    ),
    "phone": "+86 906 6326 8899",
}
KASHGAR_HOTEL = {
    "name": _t("喀什古城吾斯塘博依客栈", "Ostangboyi Inn, Kashgar Old Town"),
    "address": _t("新疆喀什市吾斯塘博依路 128 号", "128 Ostangboyi Road, Kashgar"),
    "phone": "+86 998 2822 3359",
}
# The plan of each day of the Y359 trip: (where the night is spent, meals included, the
# time to be back on the train after a day of sightseeing).
TRAIN_DAY_PLANS: dict[int, tuple[Any, list[str], str | None]] = {
    1: ("train", ["lunch", "dinner"], None),
    2: ("train", ALL_MEALS, None),
    3: ("train", ALL_MEALS, "19:30"),
    4: ("train", ALL_MEALS, "20:00"),
    5: ("train", ALL_MEALS, "20:30"),
    6: ("train", ALL_MEALS, None),
    7: (KANAS_HOTEL, ALL_MEALS, None),
    8: ("train", ALL_MEALS, "20:30"),
    9: ("train", ALL_MEALS, None),
    10: ("train", ALL_MEALS, "18:30"),
    11: (KASHGAR_HOTEL, ALL_MEALS, None),
    12: ("train", ALL_MEALS, "20:30"),
    13: ("train", ALL_MEALS, None),
    14: ("train", ALL_MEALS, None),
    15: (None, ["breakfast", "lunch"], None),
}
# Who travels with every Y359 run: the train steward (列车管家), the doctor and nurse (in
# car 3, by the medical berths), guides, a narrator, the lead coach driver and a safety
# officer.
TRAIN_CREW = [
    {"name": "李建华", "role": "steward", "phone": "+86 138 0371 3590", "car": 1},
    {"name": "王秀兰（随车医生）", "role": "medical", "phone": "+86 138 0371 3591", "car": 3},
    {"name": "张敏（护士）", "role": "medical", "phone": "+86 138 0371 3592", "car": 3},
    {"name": "陈晓东", "role": "guide", "phone": "+86 138 0371 3593", "car": 1, "coach": "1号车"},
    {"name": "阿依古丽", "role": "guide", "phone": "+86 139 9901 3594", "car": 2, "coach": "2号车"},
    {"name": "刘文博", "role": "narrator", "phone": "+86 138 0371 3595", "car": 4},
    {"name": "买买提·艾力", "role": "driver", "phone": "+86 139 9902 3596", "coach": "新A·3K591"},
    {"name": "赵磊（安全员）", "role": "other", "phone": "+86 138 0371 3597", "car": 5},
]


def _itinerary(days: list[Any], plans: dict[int, tuple[Any, list[str], str | None]]) -> ItineraryIn:
    return _convert(
        {
            "days": [
                {
                    "day_number": number,
                    "title": _t(title_zh, title_en),
                    "night_on_train": night,
                    "overnight": plans[number][0] if number in plans else None,
                    "meals": plans[number][1] if number in plans else [],
                    "back_on_board_at": plans[number][2] if number in plans else None,
                    "stops": [
                        {
                            "place": _t(place_zh, place_en),
                            "arrive_time": arrive,
                            "depart_time": depart,
                            "activities": [_t(zh, en) for zh, en in activities],
                            "coach_transfer": coach,
                        }
                        for place_zh, place_en, arrive, depart, activities, coach in stops
                    ],
                }
                for number, (title_zh, title_en, night, stops) in enumerate(days, start=1)
            ]
        },
        ItineraryIn,
    )


async def _load_train(summary: DemoSummary) -> None:
    principal = await _operator_admin(
        "zy-rail",
        {
            "slug": "zy-rail",
            "name": _t("中原铁道旅游", "Zhongyuan Rail Tours"),
            "contact_email": "service@zy-rail.example",
            "contact_phone": "+86 371 6000 1359",
        },
        "ops@zy-rail.example",
    )
    route = await routes.create_route(
        principal,
        _convert(
            {
                "slug": "y359-henan-xinjiang",
                "kind": "train",
                "themes": ["sightseeing", "nature", "culture"],
                "name": _t("中原铁道·大河之南号（Y359）", "Dahe Zhinan tourist train (Y359)"),
                "description": _t(
                    "15天全卧铺专列：白天游览、夜间行车，旅游大巴在各站接驳。北疆天山天池、"
                    "那拉提草原、赛里木湖、喀纳斯、禾木古村落，南疆喀什古城、慕士塔格峰、"
                    "天山神秘大峡谷。随车列车长、导游和医护人员全程陪同。",
                    "A 15-day all-sleeper tourist train: sightseeing by day, travelling by "
                    "night, with coaches meeting the train at each station. Northern Xinjiang "
                    "(Tianshan Heavenly Lake, Nalati Grassland, Sayram Lake, Kanas, Hemu "
                    "Village) and southern Xinjiang (Kashgar Old Town, Muztagh Ata, the "
                    "Tianshan Mysterious Grand Canyon). A train steward, guides and medical "
                    "staff travel with you.",
                ),
                "duration_days": 15,
                "what_to_bring": _t(
                    "身份证、常用药品、防晒用品、保暖外套（草原与高原早晚温差大）",
                    "ID card or passport, your usual medicines, sun protection and a warm "
                    "jacket (mornings and evenings on the grasslands and plateau are cold)",
                ),
                "meeting_point": _t("郑州站西广场", "Zhengzhou Station, west square"),
                "cancellation_policy": [
                    {"hours_before": 30 * 24, "refund_percent": 100},
                    {"hours_before": 7 * 24, "refund_percent": 70},
                    {"hours_before": 72, "refund_percent": 30},
                    {"hours_before": 0, "refund_percent": 0},
                ],
            },
            RouteCreate,
        ),
    )
    await itineraries.replace_itinerary(
        principal, route.id, _itinerary(TRAIN_ITINERARY, TRAIN_DAY_PLANS)
    )
    await routes.change_route_status(principal, route.id, RouteStatus.published)
    await offers.create_offer(
        principal,
        route.id,
        _convert(
            {
                "name": _t("那拉提草原花期", "Nalati wildflowers"),
                "description": _t("六七月草原野花盛开", "Meadows in flower in June and July"),
                "months": [6, 7],
            },
            SeasonalOfferIn,
        ),
    )
    await offers.create_offer(
        principal,
        route.id,
        _convert(
            {
                "name": _t("喀纳斯秋色", "Kanas in autumn colours"),
                "months": [9, 10],
            },
            SeasonalOfferIn,
        ),
    )
    train = await vehicles.create_vehicle(
        principal,
        _convert(
            {
                "kind": "train",
                "name": "Y359 旅游专列",
                "code": "Y359",
                "description": "2 soft-sleeper and 3 hard-sleeper cars",
                "layout": {
                    "type": "train",
                    "cars": [
                        {
                            "car": 1,
                            "seat_class": "soft_sleeper",
                            "compartments": 9,
                            "berths_per_compartment": 4,
                        },
                        {
                            "car": 2,
                            "seat_class": "soft_sleeper",
                            "compartments": 9,
                            "berths_per_compartment": 4,
                        },
                        {
                            "car": 3,
                            "seat_class": "hard_sleeper",
                            "compartments": 11,
                            "berths_per_compartment": 6,
                        },
                        {
                            "car": 4,
                            "seat_class": "hard_sleeper",
                            "compartments": 11,
                            "berths_per_compartment": 6,
                        },
                        {
                            "car": 5,
                            "seat_class": "hard_sleeper",
                            "compartments": 11,
                            "berths_per_compartment": 6,
                        },
                    ],
                },
            },
            VehicleCreate,
        ),
    )
    # The crew's compartment, kept on every run.
    for label, reason in (
        ("01-01L", "steward"),
        ("01-02U", "steward"),
        ("01-03L", "guide"),
        ("01-04U", "guide"),
    ):
        await seat_blocks.set_vehicle_seat_block(principal, train.id, label, reason)
    train_fares = [
        ("soft_sleeper", "adult", 1_598_000),
        ("soft_sleeper", "child", 1_298_000),
        ("soft_sleeper", "senior", 1_498_000),
        ("hard_sleeper", "adult", 1_298_000),
        ("hard_sleeper", "child", 998_000),
        ("hard_sleeper", "senior", 1_198_000),
    ]
    await fares.replace_route_fares(
        principal,
        route.id,
        _convert(
            {
                "fares": [
                    {"seat_class": c, "passenger_type": t, "amount": a} for c, t, a in train_fares
                ]
            },
            FaresIn,
        ),
    )
    blocks = _convert(
        {
            "blocks": [
                {"label": "03-01L", "reason": "medical"},
                {"label": "03-02M", "reason": "medical"},
            ]
        },
        DepartureBlocksIn,
    )

    async def train_departure(local_day: date, status: DepartureStatus) -> UUID:
        departs_at = datetime.combine(
            local_day, datetime.min.time(), tzinfo=clock.zone(TZ)
        ).replace(hour=5, minute=30)
        returns_at = departs_at + timedelta(days=14, hours=10, minutes=30)
        created = await departure_edits.create_departure(
            principal,
            _convert(
                {
                    "route_id": str(route.id),
                    "vehicle_id": str(train.id),
                    "departs_at": departs_at.isoformat(),
                    "returns_at": returns_at.isoformat(),
                    "sales_open_at": (departs_at - timedelta(days=240)).isoformat(),
                    "sales_close_at": (departs_at - timedelta(days=2)).isoformat(),
                    "guide_phone": "+86 371 6000 1360",
                    "stops": [
                        {
                            "kind": "boarding",
                            "name": _t("郑州站", "Zhengzhou Station"),
                            "address": _t("郑州站西广场集合", "Meet at the west square"),
                            "at": (departs_at - timedelta(minutes=60)).isoformat(),
                        }
                    ],
                },
                DepartureCreate,
            ),
        )
        await seat_blocks.replace_departure_blocks(principal, created.id, blocks)
        await crew.replace_crew(principal, created.id, _convert({"members": TRAIN_CREW}, CrewIn))
        if status == DepartureStatus.departed:
            # The first run left on 2026-05-10: publish it as of its sales season, then depart it.
            with clock.frozen(departs_at - timedelta(days=30)):
                await departure_status.change_departure_status(
                    principal, created.id, DepartureStatus.published
                )
            await departure_status.change_departure_status(
                principal, created.id, DepartureStatus.departed
            )
        else:
            await departure_status.change_departure_status(principal, created.id, status)
        return created.id

    await train_departure(date(2026, 5, 10), DepartureStatus.departed)
    upcoming = [
        await train_departure(next_run, DepartureStatus.published)
        for next_run in _next_train_runs()
    ]
    await _load_coach_plan(principal, upcoming[0])
    summary.created.append("operator zy-rail with the Y359 大河之南号 tourist train")
    summary.created.append(
        f"{sum(len(demo_party(p)) for _c, _phone, p in DEMO_TRAVELLERS)} travellers on the next "
        f"Y359 run, with coaches for its {len(DEMO_EXCURSIONS)} excursion days"
    )


# The next run's travellers: (class, contact phone, party as "name:passenger type,...").
DEMO_TRAVELLERS: list[tuple[str, str, str]] = [
    ("soft_sleeper", "+86 138 3710 0001", "张建国:senior,李秀英:senior"),
    ("soft_sleeper", "+86 139 3710 0002", "王磊:adult,刘洋:adult,王子涵:child"),
    ("soft_sleeper", "+86 137 2100 0003", "陈静:adult"),
    ("soft_sleeper", "+86 136 2000 0004", "赵伟:adult,孙丽:adult,赵一诺:child,孙桂兰:senior"),
    ("soft_sleeper", "+86 135 2900 0005", "周明:senior,吴芳:senior"),
    ("soft_sleeper", "+86 131 1000 0006", "Emily Carter:adult,James Carter:adult"),
    ("soft_sleeper", "+86 133 5100 0007",
     "郑强:adult,冯敏:adult,郑小雨:child,郑浩:child,冯秀兰:senior"),
    ("hard_sleeper", "+86 138 3720 0008", "何军:adult,高燕:adult,何佳:child"),
    ("hard_sleeper", "+86 139 3730 0009", "林涛:adult,罗霞:adult"),
    ("hard_sleeper", "+86 137 3740 0010", "梁平:senior"),
    ("hard_sleeper", "+86 136 3750 0011", "宋刚:adult,唐丽:adult"),
    ("hard_sleeper", "+86 135 3760 0012", "许文:adult,韩梅:adult,许晨:child,韩玉珍:senior"),
    ("hard_sleeper", "+86 150 3770 0013", "邓超:adult,曹颖:adult,邓思:child"),
    ("hard_sleeper", "+86 151 3780 0014", "彭飞:adult,曾红:adult"),
    ("hard_sleeper", "+86 152 3710 0015",
     "黄德明:senior,马淑珍:senior,杨秀梅:senior,朱建华:senior,胡桂英:senior,郭志强:senior"),
    ("hard_sleeper", "+86 153 3790 0016", "萧然:adult,田甜:adult"),
    ("hard_sleeper", "+86 155 3700 0017", "董华:adult,袁媛:adult,董乐:child"),
    ("hard_sleeper", "+86 156 3710 0018", "潘石:adult,蒋琳:adult"),
    ("hard_sleeper", "+86 157 3720 0019", "蔡磊:adult"),
    ("hard_sleeper", "+86 158 3730 0020", "余海:adult,杜娟:adult,余欢:child,余乐:child"),
]  # fmt: skip


def demo_party(party: str) -> list[tuple[str, str]]:
    """ "name:type,name:type" as (name, passenger type) pairs: adults, children, seniors."""
    order = {"adult": 0, "child": 1, "senior": 2}
    people = [tuple(person.split(":")) for person in party.split(",")]
    return sorted(((name, kind) for name, kind in people), key=lambda p: order[p[1]])


# The days the coaches meet the train: (day, sight, meeting point, leave, back, coach plates).
DEMO_EXCURSIONS: list[tuple[int, tuple[str, str], tuple[str, str], str, str, tuple[str, str]]] = [
    (3, ("天山天池", "Tianshan Heavenly Lake"),
     ("乌鲁木齐站出站口", "Ürümqi Station, exit"), "07:40", "17:30", ("新A·T3591", "新A·T3592")),
    (4, ("那拉提草原", "Nalati Grassland"),
     ("那拉提站站前广场", "Nalati Station, front square"), "07:00", "18:00",
     ("新F·N3591", "新F·N3592")),
    (5, ("赛里木湖", "Sayram Lake"),
     ("博乐站出站口", "Bole Station, exit"), "07:30", "18:30", ("新E·S3591", "新E·S3592")),
    (7, ("喀纳斯", "Kanas"),
     ("北屯站出站口", "Beitun Station, exit"), "06:30", "19:00", ("新H·K3591", "新H·K3592")),
    (8, ("禾木古村落", "Hemu Village"),
     ("喀纳斯景区酒店门口", "Kanas hotel entrance"), "08:00", "20:00",
     ("新H·K3591", "新H·K3592")),
    (10, ("天山神秘大峡谷", "Tianshan Mysterious Grand Canyon"),
     ("库车站出站口", "Kuqa Station, exit"), "08:00", "16:30", ("新N·Q3591", "新N·Q3592")),
    (11, ("喀什古城", "Kashgar Old Town"),
     ("喀什站出站口", "Kashgar Station, exit"), "07:30", "19:00", ("新Q·G3591", "新Q·G3592")),
    (12, ("慕士塔格峰", "Muztagh Ata"),
     ("喀什市区酒店门口", "Kashgar hotel entrance"), "07:00", "20:00",
     ("新Q·G3591", "新Q·G3592")),
]  # fmt: skip
DEMO_COACHES = [
    # (seats, driver, driver's phone, guide, guide's phone)
    (35, "艾力·买买提", "+86 139 9910 0359", "古丽娜尔", "+86 138 9920 0359"),
    (25, "马建军", "+86 139 9930 0359", "阿依古丽", "+86 138 9940 0359"),
]


async def _load_coach_plan(principal: OperatorPrincipal, departure_id: UUID) -> None:
    """The next run's travellers (confirmed, as if paid at the operator's office), and two
    coaches for each excursion day with everyone assigned."""
    departure = await Departure.select().where(Departure.id == departure_id).first().run()
    assert departure is not None
    # Booked while the run is on sale: now, or (loaded long before) when its sales open.
    booked_at = max(clock.now(), departure["sales_open_at"] + timedelta(hours=1))
    with clock.frozen(booked_at):
        for index, (seat_class, phone, people) in enumerate(DEMO_TRAVELLERS, start=1):
            party = demo_party(people)
            kinds = Counter(kind for _name, kind in party)
            english = party[0][0].isascii()
            created = await hold.create_booking(
                _convert(
                    {
                        "departure_id": str(departure_id),
                        "counts": [
                            {"seat_class": seat_class, "passenger_type": kind, "count": count}
                            for kind, count in kinds.items()
                        ],
                        "contact": {
                            "name": party[0][0],
                            "email": f"traveller{index:02d}@example.com",
                            "phone": phone,
                            "locale": "en" if english else "zh_Hans",
                        },
                        "passengers": [{"name": name} for name, _kind in party],
                    },
                    BookingCreate,
                ),
                actor="demo",
            )
            reference = created.booking.reference
            row = await Booking.select().where(Booking.reference == reference).first().run()
            assert row is not None
            await transition(
                BookingRow.from_row(row), BookingStatus.confirmed, actor="demo",
                reason="paid_at_office",
            )  # fmt: skip
    for day, sight, meeting_point, leave, back, plates in DEMO_EXCURSIONS:
        excursion = await excursions.create_excursion(
            principal,
            departure_id,
            _convert(
                {
                    "day_number": day,
                    "sight": _t(*sight),
                    "meeting_point": _t(*meeting_point),
                    "meet_time": leave,
                    "return_time": back,
                },
                ExcursionIn,
            ),
        )
        for plate, (seats, driver, driver_phone, guide, guide_phone) in zip(
            plates, DEMO_COACHES, strict=True
        ):
            await excursions.create_coach(
                principal,
                excursion.id,
                _convert(
                    {
                        "capacity": seats,
                        "plate": plate,
                        "company": "新疆丝路旅游客运",
                        "driver_name": driver,
                        "driver_phone": driver_phone,
                        "guide_name": guide,
                        "guide_phone": guide_phone,
                    },
                    CoachIn,
                ),
            )
        await assignments.change_assignments(
            principal, excursion.id, _convert({"auto": True}, AssignmentsIn)
        )


def _next_train_runs() -> list[date]:
    """The next spring and autumn runs after today (second Sunday of May and of September)."""
    today = clock.now().astimezone(clock.zone(TZ)).date()
    runs: list[date] = []
    year = today.year
    while len(runs) < 2:
        for month in (5, 9):
            first = date(year, month, 1)
            second_sunday = first + timedelta(days=(6 - first.weekday()) % 7 + 7)
            if second_sunday > today + timedelta(days=7) and len(runs) < 2:
                runs.append(second_sunday)
        year += 1
    return runs


# ---------------------------------------------------------------- Zhengzhou Bus lines

PICKUP_STOPS = [
    (_t("郑州东站东广场", "Zhengzhou East Station, east square"), "07:30"),
    (_t("二七广场", "Erqi Square"), "07:55"),
    (_t("郑州市民中心", "Zhengzhou Civic Centre"), "08:15"),
]


def _bus_season() -> tuple[date, date]:
    """The weekend buses run from two days after the demo is loaded to the end of the
    coming summer (30 August): there are departures within a week whatever the date, so
    that an agency can try every OCTO call right after `tourline demo`."""
    today = clock.now().astimezone(clock.zone(TZ)).date()
    year = today.year if today < date(today.year, 8, 20) else today.year + 1
    return today + timedelta(days=2), date(year, 8, 30)


BUS_WHAT_TO_BRING = _t(
    "遮阳帽、饮用水、便于下地的鞋子",
    "A sun hat, drinking water and shoes you can wear in the fields",
)

BUS_LINES: list[dict[str, Any]] = [
    {
        "route": {
            "slug": "caizhai-picking",
            "kind": "bus",
            "themes": ["picking", "family", "rural"],
            "name": _t("采摘号", "Picking Line"),
            "description": _t(
                "周末采摘专线：樱桃、葡萄、桑葚，孔雀菜、冰菜、田七、紫甘蓝，还有小吊瓜。",
                "Weekend picking bus: cherries, grapes and mulberries; peacock greens, ice "
                "plant, tianqi and purple cabbage; and little hanging melons.",
            ),
            "meeting_point": PICKUP_STOPS[0][0],
            "what_to_bring": BUS_WHAT_TO_BRING,
        },
        "itinerary": [
            (
                "采摘一日",
                "A day of picking",
                False,
                [
                    ("郑州东站", "Zhengzhou East Station", None, "07:30", [], False),
                    (
                        "樱桃沟采摘园",
                        "Cherry Valley orchards",
                        "09:00",
                        "11:30",
                        [("采摘时令水果", "Pick the fruit in season")],
                        False,
                    ),
                    (
                        "蔬菜大棚",
                        "Vegetable greenhouses",
                        "13:30",
                        "15:30",
                        [
                            (
                                "认识并采摘孔雀菜、冰菜、田七、紫甘蓝",
                                "Pick peacock greens, ice plant, tianqi and purple cabbage",
                            ),
                            ("小吊瓜长廊", "The hanging-melon arbour"),
                        ],
                        False,
                    ),
                    ("郑州东站", "Zhengzhou East Station", "17:30", None, [], False),
                ],
            ),
        ],
        "offers": [
            (_t("樱桃", "Cherries"), [5, 6]),
            (_t("桑葚", "Mulberries"), [5, 6]),
            (_t("葡萄", "Grapes"), [7, 8, 9]),
            (_t("孔雀菜", "Peacock greens"), [5, 6, 7, 8]),
            (_t("冰菜", "Ice plant"), [5, 6, 7]),
            (_t("田七", "Tianqi greens"), [6, 7, 8]),
            (_t("紫甘蓝", "Purple cabbage"), [5, 6]),
            (_t("小吊瓜", "Little hanging melons"), [6, 7, 8]),
        ],
        "weekdays": [6, 7],
        "bus": "豫A·采摘号",
    },
    {
        "route": {
            "slug": "huatian-flower-fields",
            "kind": "bus",
            "themes": ["flower_field", "family", "nature"],
            "name": _t("花田号", "Flower Field Line"),
            "description": _t(
                "周六花海专线：漫步花田，亲子寻宝，手作花环。",
                "Saturday flower-field bus: walk the fields in bloom, a parent-child treasure "
                "hunt and flower-crown making.",
            ),
            "meeting_point": PICKUP_STOPS[0][0],
            "what_to_bring": BUS_WHAT_TO_BRING,
        },
        "itinerary": [
            (
                "花田一日",
                "A day in the flower fields",
                False,
                [
                    ("郑州东站", "Zhengzhou East Station", None, "07:30", [], False),
                    (
                        "花海田园",
                        "Flower-sea farm",
                        "09:00",
                        "15:30",
                        [
                            ("花田漫步", "Walk the flower fields"),
                            ("亲子寻宝", "Parent-child treasure hunt"),
                            ("手作花环", "Make a flower crown"),
                        ],
                        False,
                    ),
                    ("郑州东站", "Zhengzhou East Station", "17:30", None, [], False),
                ],
            ),
        ],
        "offers": [
            (_t("薰衣草", "Lavender"), [6, 7]),
            (_t("向日葵", "Sunflowers"), [7, 8]),
        ],
        "weekdays": [6],
        "bus": "豫A·花田号",
    },
    {
        "route": {
            "slug": "tianyuan-farm-day",
            "kind": "bus",
            "themes": ["rural", "family"],
            "name": _t("田园号", "Farm Day Line"),
            "description": _t(
                "周日田园专线：亲子农事体验、喂养小动物、田间寻宝。",
                "Sunday farm bus: parent-child farm work, feeding the animals and a treasure "
                "hunt in the fields.",
            ),
            "meeting_point": PICKUP_STOPS[0][0],
            "what_to_bring": BUS_WHAT_TO_BRING,
        },
        "itinerary": [
            (
                "田园一日",
                "A day on the farm",
                False,
                [
                    ("郑州东站", "Zhengzhou East Station", None, "07:30", [], False),
                    (
                        "亲子农场",
                        "Family farm",
                        "09:00",
                        "15:30",
                        [
                            (
                                "亲子农事：播种、浇水、拔萝卜",
                                "Farm work together: sowing, watering, pulling radishes",
                            ),
                            ("田间寻宝", "Treasure hunt in the fields"),
                            ("喂养小动物", "Feeding the animals"),
                        ],
                        False,
                    ),
                    ("郑州东站", "Zhengzhou East Station", "17:30", None, [], False),
                ],
            ),
        ],
        "offers": [(_t("甜玉米", "Sweet corn"), [7, 8])],
        "weekdays": [7],
        "bus": "豫A·田园号",
    },
]


async def _load_buses(summary: DemoSummary) -> None:
    principal = await _operator_admin(
        "zz-bus",
        {
            "slug": "zz-bus",
            "name": _t("郑州公交", "Zhengzhou Bus"),
            "contact_email": "service@zz-bus.example",
            "contact_phone": "+86 371 6000 0096",
        },
        "ops@zz-bus.example",
    )
    start, end = _bus_season()
    for line in BUS_LINES:
        route = await routes.create_route(principal, _convert(line["route"], RouteCreate))
        await itineraries.replace_itinerary(principal, route.id, _itinerary(line["itinerary"], {}))
        await routes.change_route_status(principal, route.id, RouteStatus.published)
        for name, months in line["offers"]:
            await offers.create_offer(
                principal, route.id, _convert({"name": name, "months": months}, SeasonalOfferIn)
            )
        bus = await vehicles.create_vehicle(
            principal,
            _convert(
                {
                    "kind": "bus",
                    "name": line["bus"],
                    "code": line["route"]["slug"],
                    "description": "45-seat coach",
                    "layout": {
                        "type": "bus",
                        "rows": 11,
                        "seat_letters": "ABCD",
                        "last_row_letters": "ABCDE",
                    },
                },
                VehicleCreate,
            ),
        )
        await fares.replace_route_fares(
            principal,
            route.id,
            _convert(
                {
                    "fares": [
                        {"seat_class": "standard", "passenger_type": "adult", "amount": 6800},
                        {"seat_class": "standard", "passenger_type": "child", "amount": 3800},
                        {"seat_class": "standard", "passenger_type": "senior", "amount": 5800},
                    ]
                },
                FaresIn,
            ),
        )
        await seasons.schedule_season(
            principal,
            route.id,
            _convert(
                {
                    "vehicle_id": str(bus.id),
                    "start_date": start.isoformat(),
                    "end_date": end.isoformat(),
                    "weekdays": line["weekdays"],
                    "departure_time": "07:30",
                    "return_time": "17:30",
                    "stops": [{"name": name, "time": at} for name, at in PICKUP_STOPS],
                    "sales_close_minutes_before": 60,
                    "publish": True,
                },
                BulkScheduleIn,
            ),
        )
    summary.created.append("operator zz-bus with 采摘号, 花田号 and 田园号")
    await _load_agency(principal, summary)


async def _load_agency(principal: OperatorPrincipal, summary: DemoSummary) -> None:
    """A travel agency reselling the buses on account, with a well-known key and ten seats
    kept on the first 采摘号 bus."""
    agency = await partners.create_agency(
        principal,
        _convert(
            {
                "name": "郑州青年国际旅行社",
                "contact_email": "ops@zzyouth-travel.example",
                "commission_bp": 1000,
                "payment_terms": "on_account",
                "credit_limit": 2_000_000,
                "cancellation_cutoff_hours": 24,
            },
            AgencyCreate,
        ),
    )
    await partners.add_known_key(agency.id, "demo", DEMO_PARTNER_KEY)
    first_bus = (
        await Departure.select(Departure.id)
        .where(
            (Departure.operator == principal.operator_id)
            & (Departure.status == DepartureStatus.published.value)
            & (Departure.departs_at > clock.now() + timedelta(days=4))
        )
        .order_by(Departure.departs_at)
        .first()
        .run()
    )
    if first_bus is not None:
        await allotments.create_allotment(
            principal,
            agency.id,
            _convert(
                {"departure_id": str(first_bus["id"]), "seat_class": "standard", "seats": 10},
                AllotmentCreate,
            ),
        )
    summary.created.append(f"agency 郑州青年国际旅行社 (OCTO key {DEMO_PARTNER_KEY})")


async def _operator_exists(slug: str) -> bool:
    return await operators.find_operator_id(slug) is not None


async def load_demo(settings: Settings) -> DemoSummary:
    """Load the demo operators, routes, vehicles and departures, and demo logins."""
    if settings.is_production:
        raise RuntimeError("demo data (with its well-known passwords) is refused in production")
    summary = DemoSummary()
    if not await Staff.exists().where(Staff.email == DEMO_LOGINS[0]).run():
        await create_staff(
            _convert(
                {
                    "email": DEMO_LOGINS[0],
                    "name": "Platform admin",
                    "password": DEMO_PASSWORD,
                    "role": "platform_admin",
                },
                StaffCreate,
            ),
            None,
        )
        summary.created.append(f"platform admin {DEMO_LOGINS[0]}")
    for slug, loader in (("zy-rail", _load_train), ("zz-bus", _load_buses)):
        if await _operator_exists(slug):
            summary.skipped.append(f"operator {slug}")
            continue
        # One transaction per operator: a failed load leaves nothing half-written.
        async with write_transaction():
            await loader(summary)
    return summary


__all__ = ["DEMO_PASSWORD", "DemoSummary", "load_demo"]
