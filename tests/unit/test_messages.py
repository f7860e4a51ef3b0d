"""The calendar file and the mail as RFC 5545 and HTML readers take them, in both languages.

The calendar checks come from RFC 5545 itself (content lines, folding, escaping, required
properties, time zones), not from what the code happens to write; the mail checks read the
HTML back with a parser and compare it with the text part."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from uuid import uuid4
from zoneinfo import ZoneInfo

import icalendar
import pytest

from app.booking.schemas import BookingLineOut, BookingOut, ContactOut, PickupOut
from app.booking.tables import BookingStatus
from app.catalogue.tables import PassengerType
from app.core import clock
from app.core.i18n import use_locale
from app.core.money import PriceOut
from app.notifications.channels import Email
from app.notifications.messages import booking_email, calendar_event, waitlist_offer_email

NOW = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
# Summer time in Berlin: the offset differs from the zone's winter one, so a VTIMEZONE
# that only carried standard time would put the trip an hour off.
DEPARTS = datetime(2026, 7, 20, 6, 0, tzinfo=UTC)
RETURNS = DEPARTS + timedelta(hours=9)
LONG_ROUTE = "黄河故道梨花节专列：郑州东站—开封—兰考—商丘，含午餐、讲解与果园采摘体验"
LONG_STOP = "郑州市金水区金水路与未来路交叉口东北角公交站台（请提前十五分钟到达）"
NASTY = "<b>&\"Tom's; a,b\\c</b>"


def booking(
    *,
    name: str = "王小明",
    route: str = LONG_ROUTE,
    stop: str | None = LONG_STOP,
    seats: int = 24,
    zone: str = "Europe/Berlin",
) -> BookingOut:
    """A booking as `booking_out` gives it: times in the departure's zone."""
    price = PriceOut(amount=12000, currency="CNY", formatted="¥120.00")
    local = ZoneInfo(zone)
    return BookingOut(
        reference="AB12CD34",
        status=BookingStatus.confirmed,
        departure_id=uuid4(),
        route_slug="pear-blossom",
        route_name=route,
        departs_at=DEPARTS.astimezone(local),
        time_zone=zone,
        expires_at=None,
        pickup_stop=(
            PickupOut(id=uuid4(), name=stop, at=(DEPARTS - timedelta(minutes=40)).astimezone(local))
            if stop
            else None
        ),
        contact=ContactOut(name=name, email="x@example.cn", phone="+86 138", locale="zh_Hans"),
        lines=[
            BookingLineOut(
                position=i,
                seat_label=f"{i // 4 + 1}{'ABCD'[i % 4]}",
                seat_class="standard",
                passenger_type=PassengerType.adult,
                price=price,
                passenger_name=name,
                has_id_document=False,
                checked_in_at=None,
            )
            for i in range(seats)
        ],
        total=price,
        refund=None,
        balance_due=None,
        created_at=NOW - timedelta(days=3),
    )


# ---------------------------------------------------------------- RFC 5545 by hand

# contentline = name *(";" param ) ":" value CRLF (section 3.1); a quoted parameter value
# may hold ":" and ";".
CONTENT_LINE = re.compile(
    r'^[A-Za-z0-9-]+(;[A-Za-z0-9-]+=("[^"]*"|[^";:,]*)(,("[^"]*"|[^";:,]*))*)*:'
)


def physical_lines(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n"), "every content line ends with CRLF"
    lines = data[:-2].split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines), "bare CR or LF"
    return lines


def unfold(data: bytes) -> list[str]:
    """Content lines: a CRLF followed by one space or tab continues the line (3.1)."""
    return data.replace(b"\r\n ", b"").replace(b"\r\n\t", b"").decode().split("\r\n")[:-1]


def property_of(lines: list[str], name: str, component: str = "VEVENT") -> list[str]:
    """The raw values of `name` inside `component` (parameters dropped)."""
    inside, found = False, []
    for line in lines:
        if line == f"BEGIN:{component}":
            inside = True
        elif line == f"END:{component}":
            inside = False
        elif inside and re.match(rf"^{name}[;:]", line):
            found.append(line)
    return found


def text_value(raw_line: str) -> str:
    """A TEXT value (3.3.11) unescaped, failing on what the grammar forbids: a bare ";" or
    ",", a backslash before anything but \\ ; , n N, and control characters."""
    value = raw_line.split(":", 1)[1]
    out, i = [], 0
    while i < len(value):
        char = value[i]
        if char == "\\":
            following = value[i + 1 : i + 2]
            assert following in {"\\", ";", ",", "n", "N"}, f"bad escape in {raw_line!r}"
            out.append("\n" if following in "nN" else following)
            i += 2
            continue
        assert char not in ";,", f"unescaped {char!r} in {raw_line!r}"
        assert ord(char) >= 0x20, f"control character in {raw_line!r}"
        assert ord(char) != 0x7F, f"control character in {raw_line!r}"
        out.append(char)
        i += 1
    return "".join(out)


def offset_of_vtimezone(lines: list[str], tzid: str, local: datetime) -> timedelta:
    """The UTC offset the VTIMEZONE gives to a local time: the observance whose latest
    onset (DTSTART or RDATE) is at or before it wins (3.6.5)."""
    onsets: list[tuple[datetime, timedelta]] = []
    inside, current_tzid = False, None
    starts: list[datetime] = []
    offset_to = None
    for line in lines:
        if line == "BEGIN:VTIMEZONE":
            inside, current_tzid = True, None
        elif line == "END:VTIMEZONE":
            inside = False
        elif inside and line.startswith("TZID:"):
            current_tzid = line[5:]
        elif inside and line in ("BEGIN:STANDARD", "BEGIN:DAYLIGHT"):
            starts, offset_to = [], None
        elif inside and line.startswith(("DTSTART:", "RDATE:")):
            starts += [datetime.strptime(v, "%Y%m%dT%H%M%S") for v in line.split(":")[1].split(",")]
        elif inside and line.startswith("TZOFFSETTO:"):
            sign, hours, minutes = line[11], int(line[12:14]), int(line[14:16])
            offset_to = timedelta(hours=hours, minutes=minutes) * (-1 if sign == "-" else 1)
        elif inside and line in ("END:STANDARD", "END:DAYLIGHT") and current_tzid == tzid:
            assert offset_to is not None
            onsets += [(start, offset_to) for start in starts]
    before = [onset for onset in onsets if onset[0] <= local]
    assert before, f"the VTIMEZONE of {tzid} does not reach {local}"
    return max(before)[1]


# ---------------------------------------------------------------- the calendar file


@pytest.mark.parametrize("locale", ["zh_Hans", "en"])
def test_the_calendar_file_follows_rfc_5545(locale: str) -> None:
    trip = booking(name=NASTY, route=LONG_ROUTE + NASTY)
    with use_locale(locale), clock.frozen(NOW):
        data = calendar_event(trip, RETURNS, meeting_point=None)

    # 3.1: CRLF line ends, at most 75 octets a line, folded between characters only.
    physical = physical_lines(data)
    for line in physical:
        assert len(line) <= 75, line
        line.decode()  # a split multi-octet character would not decode on its own
    # The long Chinese route name is folded inside its Chinese text.
    assert any(line.startswith(b" ") and line[1] >= 0x80 for line in physical), physical
    lines = unfold(data)
    for line in lines:
        assert CONTENT_LINE.match(line), line

    # 3.4, 3.6: one VCALENDAR with PRODID and VERSION 2.0 once, one VEVENT with UID and
    # DTSTAMP once, balanced components.
    assert lines[0] == "BEGIN:VCALENDAR"
    assert lines[-1] == "END:VCALENDAR"
    begins = [line[6:] for line in lines if line.startswith("BEGIN:")]
    ends = [line[4:] for line in lines if line.startswith("END:")]
    assert sorted(begins) == sorted(ends)
    assert begins.count("VEVENT") == 1
    assert property_of(lines, "VERSION", "VCALENDAR") == ["VERSION:2.0"]
    assert len(property_of(lines, "PRODID", "VCALENDAR")) == 1
    for name in ("UID", "DTSTAMP", "DTSTART", "DTEND", "SEQUENCE", "SUMMARY"):
        assert len(property_of(lines, name)) == 1, name

    # 3.8.7.2: DTSTAMP in UTC; 3.8.4.7: the UID is the booking's, the same in every file.
    assert property_of(lines, "DTSTAMP") == [f"DTSTAMP:{NOW:%Y%m%dT%H%M%SZ}"]
    assert property_of(lines, "UID") == ["UID:AB12CD34@tourline"]
    # 3.8.7.4: a non-negative INTEGER that grows with each newer file.
    [sequence] = property_of(lines, "SEQUENCE")
    assert 0 <= int(sequence.split(":")[1]) < 2**31
    with use_locale(locale), clock.frozen(NOW + timedelta(hours=1)):
        later = unfold(calendar_event(trip, RETURNS, meeting_point=None))
    [later_sequence] = property_of(later, "SEQUENCE")
    assert int(later_sequence.split(":")[1]) > int(sequence.split(":")[1])
    assert property_of(later, "UID") == property_of(lines, "UID")

    # 3.2.19, 3.6.5: times in the departure's zone, whose VTIMEZONE gives the right offset.
    berlin = ZoneInfo("Europe/Berlin")
    pickup = DEPARTS - timedelta(minutes=40)
    local_start = pickup.astimezone(berlin).replace(tzinfo=None)
    local_end = RETURNS.astimezone(berlin).replace(tzinfo=None)
    assert property_of(lines, "DTSTART") == [
        f"DTSTART;TZID=Europe/Berlin:{local_start:%Y%m%dT%H%M%S}"
    ]
    assert property_of(lines, "DTEND") == [f"DTEND;TZID=Europe/Berlin:{local_end:%Y%m%dT%H%M%S}"]
    assert property_of(lines, "TZID", "VTIMEZONE") == ["TZID:Europe/Berlin"]
    assert offset_of_vtimezone(lines, "Europe/Berlin", local_start) == timedelta(hours=2)
    assert local_start - offset_of_vtimezone(lines, "Europe/Berlin", local_start) == (
        pickup.replace(tzinfo=None)
    )

    # 3.3.11: TEXT escaped; the values read back are the ones given.
    [summary] = property_of(lines, "SUMMARY")
    [location] = property_of(lines, "LOCATION")
    [description] = property_of(lines, "DESCRIPTION")
    assert text_value(summary) == LONG_ROUTE + NASTY
    assert text_value(location) == LONG_STOP
    seats = ", ".join(line.seat_label for line in trip.lines)
    expected_description = {
        "zh_Hans": f"订单 AB12CD34\n座位：{seats}",
        "en": f"Booking AB12CD34\nSeats: {seats}",
    }[locale]
    assert text_value(description) == expected_description

    # And icalendar, as a calendar client, reads the same event.
    parsed = icalendar.Calendar.from_ical(data)
    [event] = parsed.walk("VEVENT")
    assert event.decoded("DTSTART") == pickup
    assert event.decoded("DTEND") == RETURNS
    assert event.decoded("DTSTAMP") == NOW
    assert str(event["SUMMARY"]) == LONG_ROUTE + NASTY
    assert str(event["LOCATION"]) == LONG_STOP
    assert str(event["DESCRIPTION"]) == expected_description
    assert parsed.get_missing_tzids() == set()


def test_a_meeting_point_is_the_location_when_there_is_no_pickup_stop() -> None:
    trip = booking(stop=None, zone="Asia/Shanghai", seats=2)
    with use_locale("en"), clock.frozen(NOW):
        data = calendar_event(trip, RETURNS, meeting_point="Zhengzhou East Station, Gate 3")
    lines = unfold(data)
    assert text_value(property_of(lines, "LOCATION")[0]) == "Zhengzhou East Station, Gate 3"
    local = DEPARTS.astimezone(ZoneInfo("Asia/Shanghai"))
    assert property_of(lines, "DTSTART") == [f"DTSTART;TZID=Asia/Shanghai:{local:%Y%m%dT%H%M%S}"]
    assert offset_of_vtimezone(lines, "Asia/Shanghai", local.replace(tzinfo=None)) == timedelta(
        hours=8
    )
    [event] = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert event.decoded("DTSTART") == DEPARTS


# ---------------------------------------------------------------- the mail


class MailReader(HTMLParser):
    """The html lang, the title and the text of each paragraph, as a mail client shows
    them (entities decoded), and every tag met."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.title = ""
        self.paragraphs: list[str] = []
        self.tags: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "html":
            self.lang = dict(attrs).get("lang")
        if tag in ("p", "title"):
            self._in = tag
            if tag == "p":
                self.paragraphs.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "p":
            self.paragraphs[-1] += data
        elif self._in == "title":
            self.title += data


def read(mail: Email) -> MailReader:
    reader = MailReader()
    reader.feed(mail.html)
    reader.close()
    return reader


@pytest.mark.parametrize(
    ("locale", "lang", "greeting", "reference_line"),
    [
        ("zh_Hans", "zh-Hans", f"{NASTY}，您好：", "订单号：AB12CD34"),
        ("en", "en", f"Hello {NASTY},", "Booking reference: AB12CD34"),
    ],
)
def test_the_mail_html_says_what_the_text_says_with_everything_escaped(
    locale: str, lang: str, greeting: str, reference_line: str
) -> None:
    trip = booking(name=NASTY, route=f"Line {NASTY}", seats=2)
    with use_locale(locale), clock.frozen(NOW):
        confirmed = booking_email("booking.confirmed", "x@example.cn", trip, RETURNS, None, {})
        advisory = booking_email(
            "advisory", "x@example.cn", trip, RETURNS, None,
            {"message": {"zh_Hans": f"注意{NASTY}", "en": f"Mind {NASTY}"}},
        )  # fmt: skip
    for mail in (confirmed, advisory):
        reader = read(mail)
        assert reader.lang == lang
        assert reader.title == mail.subject
        assert reader.paragraphs == mail.text.split("\n\n")
        # Only the template's own tags: the name's <b> is text, not markup.
        assert set(reader.tags) == {"html", "head", "meta", "title", "body", "p"}
        assert "<b>" not in mail.html
        assert "&lt;b&gt;&amp;&#34;Tom&#39;s" in mail.html
        assert reader.paragraphs[0] == greeting
        assert reader.paragraphs[-1] == reference_line
    assert NASTY in read(advisory).paragraphs[1]
    # The find-booking link keeps its query once read back (its "&" was escaped).
    [link] = [p for p in read(confirmed).paragraphs if "/find-booking?" in p]
    assert "reference=AB12CD34&lang=" in link
    assert "&amp;lang=" in confirmed.html


@pytest.mark.parametrize(
    ("locale", "opening"),
    [("zh_Hans", "您候补的座位已为您保留"), ("en", "seats you were waiting for are held")],
)
def test_the_waiting_list_offer_mail_in_both_languages(locale: str, opening: str) -> None:
    with use_locale(locale):
        mail = waitlist_offer_email("x@example.cn", "AB12CD34", "tok<&>", "2026-07-02 10:00")
    reader = read(mail)
    assert reader.paragraphs == mail.text.split("\n\n")
    assert reader.paragraphs[0].startswith(opening)
    assert any(p.endswith("tok<&>") for p in reader.paragraphs)
    assert "tok&lt;&amp;&gt;" in mail.html
