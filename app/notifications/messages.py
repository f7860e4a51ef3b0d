"""What each notification says, in the reader's language, with a calendar event attached."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from babel.dates import format_datetime
from babel.numbers import format_decimal

from app.booking.calendar import calendar_event
from app.booking.schemas import BookingOut
from app.core.i18n import _, current_locale, localize
from app.core.links import booking_url, find_booking_url
from app.core.money import PriceOut
from app.notifications.channels import Attachment, Email

# The mail's markup, apart from what it says; autoescaped, so that a name or a message
# from an operator is shown as written and never read as HTML.
_MAIL = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def _when(moment: datetime, time_zone: str) -> str:
    return (
        format_datetime(
            moment, format="medium", tzinfo=moment.tzinfo or UTC, locale=current_locale()
        )
        + f" ({time_zone})"
    )


def _html(subject: str, paragraphs: list[str]) -> str:
    return _MAIL.get_template("mail.html").render(
        lang=current_locale().replace("_", "-"), subject=subject, paragraphs=paragraphs
    )


def _crew_contact(member: dict[str, str]) -> str:
    """Whom to call on the way: the train steward (列车管家) or the medical staff."""
    if member["role"] == "steward":
        text = _("Your train steward: {name}, phone {phone}")
    else:
        text = _("Medical staff on board: {name}, phone {phone}")
    return text.format(name=member["name"], phone=member["phone"])


def booking_email(
    kind: str,
    to: str,
    booking: BookingOut,
    returns_at: datetime,
    meeting_point: str | None,
    extra: dict[str, Any],
) -> Email:
    """The email for a booking event; call inside `use_locale(booking's locale)`."""
    when = _when(booking.departs_at, booking.time_zone)
    seats = ", ".join(line.seat_label for line in booking.lines)
    reference = booking.reference
    greeting = _("Hello {name},").format(name=booking.contact.name if booking.contact else "")
    attach_calendar = False
    if kind == "booking.confirmed":
        subject = _("Booking {reference} confirmed: {route}").format(
            reference=reference, route=booking.route_name
        )
        body = [
            _("your booking {reference} is confirmed.").format(reference=reference),
            _("Departure: {when}").format(when=when),
            _("Seats: {seats}").format(seats=seats),
            _("Total paid: {amount}").format(amount=booking.total.formatted),
            _("To see, move or cancel it, open your booking's link; lost it? {url}").format(
                url=find_booking_url(reference, current_locale())
            ),
        ]
        attach_calendar = True
    elif kind == "booking.cancelled":
        subject = _("Booking {reference} cancelled").format(reference=reference)
        body = [_("your booking {reference} has been cancelled.").format(reference=reference)]
        if extra.get("reason") == "departure_cancelled":
            body.append(_("The operator cancelled this departure; you get a full refund."))
        if booking.refund:
            body.append(_("Refund: {amount}").format(amount=booking.refund.formatted))
    elif kind == "booking.link":
        subject = _("Your link to booking {reference}").format(reference=reference)
        body = [
            _("here is your booking {reference}: {url}").format(
                reference=reference, url=extra.get("link", "")
            ),
            _("Earlier links to it no longer open it. Do not share this one."),
        ]
    elif kind == "booking.expired":
        subject = _("Your hold on {reference} has run out").format(reference=reference)
        body = [
            _(
                "the seats held for booking {reference} were released: it was not paid in time."
            ).format(reference=reference)
        ]
    elif kind == "reminder":
        subject = _("Reminder: {route} departs {when}").format(route=booking.route_name, when=when)
        body = [
            _("your trip is coming up. Departure: {when}").format(when=when),
            _("Seats: {seats}").format(seats=seats),
        ]
        if booking.pickup_stop:
            body.append(
                _("Board at {stop} at {time}").format(
                    stop=booking.pickup_stop.name,
                    time=_when(booking.pickup_stop.at, booking.time_zone),
                )
            )
        elif meeting_point:
            body.append(_("Meeting point: {place}").format(place=meeting_point))
        if extra.get("what_to_bring"):
            body.append(_("What to bring: {items}").format(items=extra["what_to_bring"]))
        if extra.get("guide_phone"):
            body.append(_("Your guide's phone: {phone}").format(phone=extra["guide_phone"]))
        body.extend(_crew_contact(member) for member in extra.get("crew_contacts") or [])
        attach_calendar = True
    elif kind == "advisory":
        subject = _("Notice about your trip {reference}").format(reference=reference)
        message = extra.get("message")
        body = [localize(message) if isinstance(message, dict) else str(message or "")]
        if extra.get("advisory_kind") == "heat" and extra.get("max_temperature_c") is not None:
            body.append(
                _("Forecast maximum: {degrees} °C. Bring water, a hat and sun protection.").format(
                    degrees=format_decimal(extra["max_temperature_c"], locale=current_locale())
                )
            )
    elif kind == "payment.reminder":
        subject = _("Pay now to keep your seats: {reference}").format(reference=reference)
        expires = booking.expires_at
        body = [
            _("your seats are held until {moment}; pay before then to keep them.").format(
                moment=_when(expires, booking.time_zone) if expires else ""
            )
        ]
    elif kind == "departure.changed":
        subject = _("Your departure has changed: {reference}").format(reference=reference)
        body = [
            _("the operator changed your departure. It now leaves {when}.").format(when=when),
            _("Seats: {seats}").format(seats=seats),
        ]
        attach_calendar = True
    elif kind == "booking.changed":
        subject = _("Booking {reference} changed: {route}").format(
            reference=reference, route=booking.route_name
        )
        body = [
            _("your booking {reference} has been moved.").format(reference=reference),
            _("Departure: {when}").format(when=when),
            _("Seats: {seats}").format(seats=seats),
            _("Total: {amount}").format(amount=booking.total.formatted),
        ]
        refunded = extra.get("refund_amount")
        if isinstance(refunded, int) and refunded > 0:
            body.append(
                _("The difference of {amount} is refunded to you.").format(
                    amount=PriceOut.minor(refunded, booking.total.currency).formatted
                )
            )
        body.append(_("The calendar file attached replaces the one sent before."))
        attach_calendar = True
    elif kind == "booking.change_reverted":
        subject = _("Booking {reference} was not changed").format(reference=reference)
        body = [
            _(
                "the difference for moving booking {reference} was not paid in time, so the "
                "new seats were released and the booking stays as it was."
            ).format(reference=reference),
            _("Departure: {when}").format(when=when),
            _("Seats: {seats}").format(seats=seats),
        ]
    elif kind == "feedback":
        subject = _("How was your trip? {route}").format(route=booking.route_name)
        body = [
            _("thank you for travelling with us. Tell the operator how it went by replying "
              "to this message.")
        ]  # fmt: skip
    elif kind == "payment.refunded_late":
        subject = _("Payment for {reference} refunded").format(reference=reference)
        if extra.get("why") == "paid_twice":
            body = [
                _(
                    "booking {reference} was already paid when your payment arrived; your "
                    "payment has been refunded in full and the booking stands."
                ).format(reference=reference)
            ]
        elif extra.get("why") == "change_lapsed":
            body = [
                _(
                    "your payment for moving booking {reference} arrived after the change "
                    "had lapsed; it has been refunded in full and the booking stays as it was."
                ).format(reference=reference)
            ]
        else:
            body = [
                _(
                    "your payment arrived after the hold on booking {reference} had run out "
                    "and its seats were taken; it has been refunded in full."
                ).format(reference=reference)
            ]
    else:
        subject = _("About your booking {reference}").format(reference=reference)
        body = [_("There is news about your booking {reference}.").format(reference=reference)]
    paragraphs = [greeting, *body, _("Booking reference: {reference}").format(reference=reference)]
    attachments = []
    if attach_calendar:
        attachments.append(
            Attachment(
                filename=f"{reference}.ics",
                content=calendar_event(booking, returns_at, meeting_point),
                maintype="text",
                subtype="calendar",
            )
        )
    return Email(
        to=to,
        subject=subject,
        text="\n\n".join(paragraphs),
        html=_html(subject, paragraphs),
        attachments=attachments,
    )


def waitlist_offer_email(to: str, reference: str, token: str, expires_at: str | None) -> Email:
    subject = _("Seats are free for you: booking {reference}").format(reference=reference)
    paragraphs = [
        _("seats you were waiting for are held for you as booking {reference}.").format(
            reference=reference
        ),
        _("Add the travellers and pay here: {url}").format(
            url=booking_url(reference, token, current_locale())
        ),
        _("Access token: {token}").format(token=token),
        _("The hold runs out at {moment}.").format(moment=expires_at or ""),
    ]
    return Email(
        to=to, subject=subject, text="\n\n".join(paragraphs), html=_html(subject, paragraphs)
    )
